"""Placeholders in ESB configurations, resolved from the property files the project ships.

Endpoints are often written as templates: `${sftp.host}` and `${p['implementation.host']}` (Mule),
`#[p('orders.dir')]` (Mule 4 expressions), `{{host}}` (Camel), `$(DropRoot)` (BizTalk, .NET), and
`${sys:…}` / `${env:…}` (WSO2: system properties and the environment, not in any file). Values are
read from the project's own files — Mule `*.properties` / `*.yaml` (per-environment ones too),
Camel/Spring `application*.properties|yml`, WSO2 `deployment.toml`, BizTalk binding variables in
`*.properties` or `.env` files — and an endpoint keeps both its template and its resolved address.

A value is used only when it is certain: from a base file (`config.yaml`, `application.yml`), or the
one value every environment's file agrees on. Secret-named properties (`db.password`) and secure
ones (`${secure::…}`, WSO2 `[secrets]`) are never read, so a resolved address carries no secret.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from inventory_scan.redact import is_secret_name

# One pattern per product's syntax; group 1 is the property name.
PLACEHOLDERS = [
    re.compile(r"\$\{p\(\s*['\"]([^'\"]+)['\"]\s*\)\}|\$\{p\[\s*['\"]([^'\"]+)['\"]\s*\]\}"),  # ${p['x']}
    re.compile(r"#\[\s*p\(\s*['\"]([^'\"]+)['\"]\s*\)\s*\]"),  # #[p('x')]
    re.compile(r"\$\{(?!sys:|env:|secure::)([A-Za-z_][\w.\-]*)\}"),  # ${x}
    re.compile(r"\{\{([A-Za-z_][\w.\-]*)\}\}"),  # {{x}}
    re.compile(r"\$\(([A-Za-z_][\w.\-]*)\)"),  # $(x)
]
_SUFFIXES = {".properties", ".yaml", ".yml", ".toml", ".env"}
_SKIP = {".git", ".svn", "node_modules", "target", "bin", "obj", "__pycache__", ".mule"}
_PROJECT_MARKERS = ("pom.xml", "mule-artifact.json", "mule-project.xml", "deployment.toml", "build.gradle")
# `config-dev.yaml`, `application-prod.properties`, `dev.properties`: one environment's values.
_ENVIRONMENT = re.compile(r"(?i)(?:^|[-_.])(dev|develop|test|qa|uat|stage|staging|prod|production|local)$")
MAX_FILE_BYTES = 1 << 20


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        return  # lists are not addressable by a placeholder name
    elif value is not None and prefix:
        yield prefix, str(value).lower() if isinstance(value, bool) else str(value)


def _java_properties(text: str) -> Iterator[tuple[str, str]]:
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if match:
            yield match.group(1), match.group(2).strip()


def _read(path: Path) -> list[tuple[str, str]]:
    """The (name, value) pairs of one property file; secrets and secure sections left out."""
    if path.stat().st_size > MAX_FILE_BYTES:
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in (".yaml", ".yml"):
        pairs = [pair for doc in yaml.safe_load_all(text) for pair in _flatten(doc)]
    elif path.suffix == ".toml":
        data = tomllib.loads(text)
        data.pop("secrets", None)  # WSO2's secure vault
        pairs = list(_flatten(data))
    else:
        pairs = list(_java_properties(text))
    return [(name, value) for name, value in pairs if not is_secret_name(name) and "secure::" not in value]


def _property_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        files += [Path(folder) / name for name in sorted(names) if Path(name).suffix.lower() in _SUFFIXES]
    return [path for path in files if path.is_file()]


def _environment(path: Path) -> str | None:
    match = _ENVIRONMENT.search(path.stem)
    return match.group(1).lower() if match else None


class Properties:
    """The property values of one project, and the templates they resolve."""

    def __init__(self) -> None:
        self.base: dict[str, str] = {}
        self.by_environment: dict[str, dict[str, str]] = defaultdict(dict)
        self.files: list[str] = []

    @classmethod
    def of_project(cls, root: Path, warn: Callable[[str, str], None] | None = None) -> Properties:
        """Every property file under `root` (build output and VCS folders skipped)."""
        found = cls()
        for path in _property_files(root):
            try:
                pairs = _read(path)
            except (OSError, ValueError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
                if warn is not None:
                    warn(str(path), f"property file not read: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not pairs:
                continue
            found.files.append(str(path))
            environment = _environment(path)
            target = found.by_environment[environment] if environment else found.base
            for name, value in pairs:
                target.setdefault(name, value)
        return found

    def value(self, name: str) -> str | None:
        """The value of `name` when it is certain: a base file's, or the one all environments agree on."""
        if is_secret_name(name):
            return None
        if name in self.base:
            return self.base[name]
        values = {values[name] for values in self.by_environment.values() if name in values}
        return values.pop() if len(values) == 1 else None

    def resolve(self, template: str, depth: int = 0) -> str:
        """`template` with every placeholder whose value is certain replaced; the others kept as written."""
        if depth > 5 or not any(mark in template for mark in ("${", "{{", "$(", "#[")):
            return template
        resolved = template
        for pattern in PLACEHOLDERS:
            resolved = pattern.sub(self._substitute, resolved)
        return self.resolve(resolved, depth + 1) if resolved != template else resolved

    def _substitute(self, match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        value = self.value(name)
        return match.group(0) if value is None else value


def project_root(document: Path, source_root: Path) -> Path:
    """The project a document belongs to: the nearest folder with a build or artifact file, or the
    scanned folder itself, so two applications scanned together keep their own values."""
    folder = document.parent
    while True:
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
        if folder == source_root or folder.parent == folder or not folder.is_relative_to(source_root):
            return source_root
        folder = folder.parent
