"""scan.yaml: what to scan, how to log in (by environment variable name), and entity rules.

out: catalog.json              # relative paths are relative to this file
timezone: Europe/Amsterdam     # the clock cadences are read on (default: this machine's)
files:
  - path: ./estate/acme_de
    system: erp_de
  - url: sftp://edi@sftp.acme.example:2222/outbound
    known_hosts: ./known_hosts
    password_env: ACME_SFTP_PASSWORD
entities:
  - entity: ACME-DE
    path: "*/acme_de/*"

esb:
  - path: ./mule-apps              # Mule, Camel, Synapse/WSO2, BizTalk, Spring Integration, WSDL
  - url: http://erp.acme.example/OrderService?wsdl

db:
  - ddl: ./schema/erp_de.sql       # offline; dialect guessed unless given
    dialect: tsql
  - connection_env: ERP_UK_ODBC    # live: the connection string comes from the environment
    system: erp_uk
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inventory_scan.analysis.dispositions import RoadmapSettings
from inventory_scan.analysis.patterns import PatternRule
from inventory_scan.entities import EntityRule
from inventory_scan.errors import ConfigError


class FileSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(default=None, description="a local folder")
    url: str | None = Field(default=None, description="sftp://user@host[:port]/path")
    system: str | None = Field(default=None, description="the system these drops belong to")
    follow_symlinks: bool = False
    known_hosts: Path | None = Field(default=None, description="default ~/.ssh/known_hosts")
    accept_unknown_host: bool = False
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    key_file: Path | None = None
    key_passphrase_env: str | None = None
    allow_agent: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> FileSource:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path (local folder) or url (sftp://…)")
        return self


class EsbSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(default=None, description="a folder or file of ESB configs and WSDLs")
    url: str | None = Field(default=None, description="an http(s) URL of a WSDL")
    system: str | None = Field(default=None, description="the system these flows belong to (default: the product)")

    @model_validator(mode="after")
    def _one_target(self) -> EsbSourceConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path (folder or file) or url (http(s)://…?wsdl)")
        return self


class DbSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ddl: Path | None = Field(default=None, description="a DDL script or a folder of them")
    dialect: str | None = Field(
        default=None, description="tsql, postgres, mysql, oracle or sqlite; guessed when omitted"
    )
    connection_env: str | None = Field(
        default=None, description="environment variable holding an ODBC connection string (password included)"
    )
    dsn: str | None = Field(default=None, description="an ODBC data source name from odbc.ini")
    connection: str | None = Field(default=None, description="an ODBC connection string without a password")
    system: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DbSourceConfig:
        if sum(value is not None for value in (self.ddl, self.connection_env, self.dsn, self.connection)) != 1:
            raise ValueError("give exactly one of ddl (a script or folder), connection_env, dsn or connection")
        if self.connection and re.search(r"(?i)\b(PWD|PASSWORD)\s*=\s*[^;\s]", self.connection):
            raise ValueError("put no password in scan.yaml: name an environment variable with connection_env instead")
        return self


class ScanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: Path = Path("catalog.json")
    timezone: str | None = None
    jobs: int = Field(default=0, description="worker processes for local walks; 0 = one per core")
    watch: float = Field(default=0, description="seconds to watch local drops live after the walk")
    files: list[FileSource] = Field(default_factory=list)
    esb: list[EsbSourceConfig] = Field(default_factory=list)
    db: list[DbSourceConfig] = Field(default_factory=list)
    entities: list[EntityRule] = Field(default_factory=list)
    patterns: list[PatternRule] = Field(default_factory=list, description="pattern rules tried before the defaults")
    roadmap: RoadmapSettings = Field(
        default_factory=RoadmapSettings, description="retiring systems, disposition rules and overrides"
    )

    @classmethod
    def load(cls, path: Path) -> ScanConfig:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the scan config: {exc.strerror or exc}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a scan config is a mapping (out:, files:, entities: …)")
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
            )
            raise ConfigError(f"{path}: {problems}") from None
        return config.relative_to(path.parent)

    def relative_to(self, base: Path) -> ScanConfig:
        """Resolve the config's relative paths against the folder it was read from."""

        def fix(value: Path | None) -> Path | None:
            return None if value is None else (value if value.expanduser().is_absolute() else base / value)

        files = [
            source.model_copy(
                update={
                    "path": fix(source.path),
                    "known_hosts": fix(source.known_hosts),
                    "key_file": fix(source.key_file),
                }
            )
            for source in self.files
        ]
        esb = [source.model_copy(update={"path": fix(source.path)}) for source in self.esb]
        db = [source.model_copy(update={"ddl": fix(source.ddl)}) for source in self.db]
        return self.model_copy(update={"out": fix(self.out), "files": files, "esb": esb, "db": db})
