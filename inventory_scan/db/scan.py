"""Scan databases (live over ODBC) and DDL scripts (offline) into `db_trigger` and `db_procedure` interfaces."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inventory_scan.catalog import Catalog, Complexity, Direction, Edge, Evidence, Interface, Kind, ScanWarning, Source
from inventory_scan.db.analysis import Analysis, analyse, complexity
from inventory_scan.db.live import ENGINES, engine_for, read_objects
from inventory_scan.db.objects import DbObject, parse_script
from inventory_scan.db.split import DIALECTS, guess_dialect
from inventory_scan.entities import EntityRule, Subject, resolve
from inventory_scan.errors import ConfigError, SourceError

DDL_SUFFIXES = {".sql", ".ddl", ".pls", ".plsql", ".pkb", ".pks", ".prc", ".fnc", ".trg", ".tab"}
LOGIN_TIMEOUT = 10
# ODBC driver names → the Debian package that provides them
DRIVER_PACKAGES = {
    "postgresql": "odbc-postgresql",
    "mariadb": "odbc-mariadb",
    "mysql": "odbc-mariadb",
    "sqlite": "libsqliteodbc",
    "freetds": "tdsodbc",
    "sql server": "msodbcsql18 (from Microsoft's package repository)",
    "oracle": "Oracle Instant Client ODBC (from Oracle)",
}
_SECRET = re.compile(r"(?i)\b(PWD|PASSWORD)\s*=\s*(\{[^}]*\}|[^;]*)")


@dataclass
class DbSource:
    """A live database (`connection`: an ODBC connection string or DSN name) or a DDL file or folder."""

    connection: str | None = None
    ddl: Path | None = None
    dialect: str | None = None
    system: str | None = None


def redact(connection: str) -> str:
    return _SECRET.sub(lambda m: f"{m.group(1)}=***", connection)


def _secrets(connection: str) -> list[str]:
    return [m.group(2).strip("{}") for m in _SECRET.finditer(connection) if m.group(2).strip("{}")]


def _scrub(message: str, connection: str) -> str:
    for secret in _secrets(connection):
        message = message.replace(secret, "***")
    return redact(message)


def _attributes(connection: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in connection.split(";") if "=" in part)
    return {key.strip().lower(): value.strip().strip("{}") for key, value in pairs}


def _odbc_place(connection: str) -> tuple[str, str]:
    """(host, database) for locators, from the connection string or the DSN name."""
    attributes = _attributes(connection)
    if not attributes:
        return connection, ""
    host = (
        attributes.get("server")
        or attributes.get("host")
        or attributes.get("servername")
        or attributes.get("dsn")
        or "localhost"
    )
    database = attributes.get("database") or attributes.get("db") or attributes.get("dbq") or ""
    return host.split(",")[0], database.strip("/")


def _driver_hint(connection: str, message: str) -> str:
    driver = _attributes(connection).get("driver", "").lower()
    package = next((pkg for key, pkg in DRIVER_PACKAGES.items() if key in driver), None)
    if package:
        return f"the ODBC driver {driver!r} is not installed: apt-get install {package}"
    return f"no such ODBC driver or DSN ({message}); list installed drivers with `odbcinst -q -d`"


@dataclass
class _Found:
    objects: list[DbObject]
    locate: Any  # Callable[[DbObject], str]
    evidence: Any  # Callable[[DbObject], list[Evidence]]
    system: str
    warnings: list[ScanWarning] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    engine: str = ""  # the live database's dialect, part of its locators


def odbc_scheme(engine: str) -> str:
    """`odbc+postgres`: two engines on one host with the same database name stay two sources."""
    return f"odbc+{engine}" if engine else "odbc"


class DbScan:
    def __init__(self, rules: list[EntityRule] | None = None) -> None:
        self.rules = rules or []

    def _entity(self, interface: Interface) -> Interface:
        """Entity rules look at the DDL file's path, or at the live object's locator."""
        where = interface.evidence[0].source if interface.locator.startswith("ddl:") else interface.locator
        rule = resolve(self.rules, Subject(where))
        return interface.model_copy(update={"entity": rule.entity}) if rule else interface

    def run(self, sources: list[DbSource]) -> tuple[Catalog, list[str]]:
        catalog = Catalog()
        errors: list[str] = []
        for source in sources:
            label = str(source.ddl) if source.ddl else redact(source.connection or "")
            reason = None
            found = _Found([], lambda o: "", lambda o: [], source.system or "db")
            try:
                found = self._ddl(source) if source.ddl else self._live(source)
            except SourceError as exc:
                reason = str(exc)
            if reason is None and found.stats.get("unreadable"):
                unread, files = found.stats["unreadable"], found.stats["files"]
                reason = f"{unread} of {files} scripts could not be read (see the warnings)"
            if reason is not None:
                errors.append(f"{label}: {reason}")
            interfaces, edges = build(found)
            interfaces = [self._entity(interface) for interface in interfaces]
            place = f"{odbc_scheme(found.engine)}://" + "/".join(
                part for part in _odbc_place(source.connection or "") if part
            )
            record = Source(
                locator=label if source.ddl else place,
                kind="db",
                scanned_at=datetime.now(UTC),
                complete=reason is None,
                reason=reason,
                warnings=found.warnings,
                stats=found.stats
                | {
                    "triggers": sum(i.kind is Kind.db_trigger for i in interfaces),
                    "routines": sum(i.kind is Kind.db_procedure for i in interfaces),
                },
            )
            catalog = catalog.merge(Catalog(interfaces=interfaces, edges=edges, sources=[record]))
        return catalog, errors

    def _ddl(self, source: DbSource) -> _Found:
        assert source.ddl is not None
        path = source.ddl.expanduser()
        if source.dialect and source.dialect not in DIALECTS:
            raise ConfigError(f"unknown dialect {source.dialect!r}: use one of {', '.join(DIALECTS)}")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DDL_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"{path} is neither a DDL file nor a folder")
        objects: list[DbObject] = []
        origin: dict[int, str] = {}
        warnings: list[ScanWarning] = []
        unreadable = 0
        for file in files:
            text = _read_text(file)
            dialect = source.dialect
            if dialect is None:
                dialect, scores = guess_dialect(text)
                warnings.append(ScanWarning(path=str(file), message=f"dialect guessed: {dialect} ({_marks(scores)})"))
            try:
                parsed = parse_script(text, dialect)
            except RecursionError:
                warnings.append(ScanWarning(path=str(file), message="skipped: the script nests too deeply to read"))
                unreadable += 1
                continue
            for obj in parsed:
                origin[id(obj)] = str(file.absolute())
            objects += parsed
        system = source.system or (path.stem if path.is_file() else path.name)

        def locate(obj: DbObject) -> str:
            anchor = f"{obj.table}#{obj.name}" if obj.kind == "trigger" else obj.name
            return f"ddl:{origin[id(obj)]}/{anchor}"

        def evidence(obj: DbObject) -> list[Evidence]:
            first = obj.definition.strip().split("\n", 1)[0][:120]
            return [Evidence(source=origin[id(obj)], line=obj.line, detail=first)]

        stats = {"files": len(files)} | ({"unreadable": unreadable} if unreadable else {})
        return _Found(objects, locate, evidence, system, warnings, stats)

    def _live(self, source: DbSource) -> _Found:
        assert source.connection is not None
        connection = source.connection
        try:
            import pyodbc
        except ImportError as exc:  # libodbc.so.2 missing
            raise SourceError(f"pyodbc cannot load the ODBC driver manager ({exc}): apt-get install unixodbc") from None
        text = connection if "=" in connection else f"DSN={connection}"
        try:
            handle = pyodbc.connect(text, timeout=LOGIN_TIMEOUT, autocommit=True)
        except pyodbc.Error as exc:
            state = exc.args[0] if exc.args else ""
            message = _scrub(str(exc.args[1] if len(exc.args) > 1 else exc), connection)
            if state == "IM002" or "can't open lib" in message.lower() or "file not found" in message.lower():
                raise SourceError(_driver_hint(text, message)) from None
            if state in ("28000", "28P01") or "password" in message.lower() or "access denied" in message.lower():
                raise SourceError(
                    f"login refused: check the user and the password's environment variable ({message})"
                ) from None
            raise SourceError(f"cannot connect ({state}): {message}") from None
        try:
            dbms = str(handle.getinfo(pyodbc.SQL_DBMS_NAME))
            engine = engine_for(dbms)
            if engine is None:
                known = ", ".join(e.name for e in ENGINES)
                raise SourceError(f"no catalog queries for {dbms!r} yet (known: {known})")

            def run(query: str) -> list[Any]:
                cursor = handle.cursor()
                try:
                    cursor.execute(query)
                    return [tuple(row) for row in cursor.fetchall()]
                except pyodbc.Error as exc:
                    detail = _scrub(str(exc.args[1] if len(exc.args) > 1 else exc), connection)
                    question = "is the user allowed to read the catalog views?"
                    raise SourceError(f"the {engine.name} catalog query failed — {question} ({detail})") from None
                finally:
                    cursor.close()

            objects = read_objects(engine, run)
        finally:
            handle.close()
        host, database = _odbc_place(connection)
        system = source.system or database or host

        def locate(obj: DbObject) -> str:
            anchor = f"{obj.table}#{obj.short_name}" if obj.kind == "trigger" else obj.name
            scheme = odbc_scheme(engine.dialect)
            return f"{scheme}://{host}/{database}/{anchor}" if database else f"{scheme}://{host}/{anchor}"

        def evidence(obj: DbObject) -> list[Evidence]:
            query = engine.triggers if obj.kind == "trigger" else (engine.routines or "")
            return [Evidence(source=f"{engine.name} catalog query", detail=" ".join(query.split())[:200])]

        for obj in objects:
            obj.dialect = engine.dialect
        return _Found(objects, locate, evidence, system, [], {"engine_" + engine.dialect: 1}, engine.dialect)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _direction(obj: DbObject, analysis: Analysis) -> Direction:
    if any(effect.split(":", 1)[0] not in ("dbms", "output") for effect in analysis.side_effects):
        return Direction.out_of
    if analysis.validations and obj.kind == "trigger":
        return Direction.into
    return Direction.unknown


def _analysed(obj: DbObject, found: _Found) -> Analysis:
    """The analysis of one object's body; a body the analysis cannot take costs only its details."""
    try:
        return analyse(obj)
    except Exception as exc:  # sqlglot on an odd body (RecursionError too): keep the object, say why
        found.warnings.append(
            ScanWarning(path=f"{obj.name}", message=f"body not analysed: {type(exc).__name__}: {str(exc)[:200]}")
        )
        return Analysis(low_confidence=["the body could not be analysed"])


def build(found: _Found) -> tuple[list[Interface], list[Edge]]:
    analyses = {id(obj): _analysed(obj, found) for obj in found.objects}
    routines = {obj.short_name.lower(): obj for obj in found.objects if obj.kind != "trigger"}
    # A PostgreSQL trigger runs its function: what the function does, the trigger does.
    for obj in found.objects:
        if obj.kind == "trigger" and obj.executes:
            function = routines.get(obj.executes.rsplit(".", 1)[-1].lower())
            if function is not None:
                mine, theirs = analyses[id(obj)], analyses[id(function)]
                mine.reads |= theirs.reads
                mine.writes |= theirs.writes
                mine.side_effects |= theirs.side_effects
                mine.constructs |= theirs.constructs
                mine.validations += theirs.validations
                mine.lines += theirs.lines
    interfaces: list[Interface] = []
    ids: dict[int, str] = {}
    for obj in found.objects:
        analysis = analyses[id(obj)]
        score, reasons = complexity(obj, analysis)
        details: dict[str, Any] = {
            "object": obj.kind,
            "dialect": obj.dialect,
            "calls": sorted(analysis.calls),
            "validations": analysis.validations,
            "constructs": sorted(analysis.constructs),
            "confidence": "low" if analysis.low_confidence else "high",
            "statements": {"found": analysis.statements, "parsed": analysis.parsed},
        }
        if analysis.low_confidence:
            details["low_confidence"] = analysis.low_confidence[:20]
        if obj.kind == "trigger":
            details |= {
                "table": obj.table,
                "timing": obj.timing,
                "events": obj.events,
                "level": obj.level,
                "enabled": obj.enabled,
            }
            if obj.executes:
                details["executes"] = obj.executes
            if obj.when:
                details["when"] = " ".join(obj.when.split())
        if obj.language:
            details["language"] = obj.language
        interface = Interface.build(
            kind=Kind.db_trigger if obj.kind == "trigger" else Kind.db_procedure,
            system=found.system,
            locator=found.locate(obj),
            name=obj.name,
            protocol="sql",
            direction=_direction(obj, analysis),
            reads=sorted(analysis.reads),
            writes=sorted(analysis.writes),
            side_effects=sorted(analysis.side_effects),
            complexity=Complexity(score=score, reasons=reasons),
            evidence=found.evidence(obj)
            + [Evidence(source="sqlglot", detail=f"low confidence: {s}") for s in analysis.low_confidence[:5]],
            attributes=details,
        )
        ids[id(obj)] = interface.id
        interfaces.append(interface)
    edges = []
    by_name = {obj.short_name.lower(): ids[id(obj)] for obj in found.objects if obj.kind != "trigger"}
    for obj in found.objects:
        for call in sorted(analyses[id(obj)].calls):
            target = by_name.get(call.rsplit(".", 1)[-1].lower())
            if target and target != ids[id(obj)]:
                relation = "executes" if obj.executes and call == obj.executes else "calls"
                edges.append(Edge(source=ids[id(obj)], target=target, relation=relation))
    unique_interfaces = {interface.id: interface for interface in interfaces}
    return list(unique_interfaces.values()), edges


def connection_from_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} (the ODBC connection string) is not set")
    return value


def _marks(scores: dict[str, int]) -> str:
    """What made a dialect the guess, as a person reads it: "marks found: tsql 6, mysql 1"."""
    found = sorted(((count, name) for name, count in scores.items() if count), reverse=True)
    return "marks found: " + ", ".join(f"{name} {count}" for count, name in found) if found else "no dialect's marks"
