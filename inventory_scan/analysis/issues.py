"""What an architect should look at per interface, by severity, each with where the scanner saw it.

Issues are read from the catalog, never guessed: files that failed, empty files, content nobody
recognised, a database body only partly understood, an address still a template, a write through
a linked server, a source warning about the file the interface came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from inventory_scan.catalog import Catalog, Direction, Interface, Kind

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")


@dataclass(frozen=True)
class Issue:
    severity: Severity
    message: str
    evidence: str  # a file, folder or query the scanner read; with :line when it knows one


def _where(interface: Interface) -> str:
    first = interface.evidence[0] if interface.evidence else None
    if first is None:
        return interface.locator
    return f"{first.source}:{first.line}" if first.line else first.source


def _own(interface: Interface) -> list[Issue]:
    where = _where(interface)
    found: list[Issue] = []
    attributes = interface.attributes
    if interface.kind is Kind.file_drop:
        error = attributes.get("stages", {}).get("error")
        if error and error.get("files"):
            found.append(Issue("high", f"{error['files']} files failed into {error['folder']}", error["folder"]))
        if attributes.get("zero_byte_files"):
            found.append(Issue("medium", f"{attributes['zero_byte_files']} empty files", where))
        if "unknown" in interface.formats:
            found.append(Issue("medium", "content not recognised as any known format", where))
        elif len(interface.formats) > 1:
            found.append(Issue("low", f"one naming scheme, several formats: {', '.join(interface.formats)}", where))
    if attributes.get("confidence") == "low":
        statements = attributes.get("statements", {})
        parsed = f" ({statements.get('parsed', 0)} of {statements.get('found', 0)} statements parsed)"
        found.append(Issue("medium", "the body was only partly understood" + parsed, where))
    for effect in interface.side_effects:
        kind, _, target = effect.partition(":")
        if kind == "linked_server":
            found.append(Issue("medium", f"writes through the linked server {target}: keep it reachable", where))
        elif kind == "mail":
            found.append(Issue("low", f"sends mail ({target})", where))
    host = interface.locator.partition("://")[2].split("/", 1)[0]
    if "{" in host or "${" in interface.locator:
        found.append(Issue("medium", "its address is still a template: a property was not resolved", where))
    if attributes.get("enabled") is False:
        found.append(Issue("low", "disabled", where))
    if interface.entity is None and interface.kind is not Kind.esb_endpoint:
        found.append(Issue("low", "no legal entity: add an entities: rule to scan.yaml", where))
    if interface.direction is Direction.unknown and interface.kind is Kind.file_drop:
        found.append(Issue("low", "direction unknown: nothing says who writes and who reads", where))
    return found


def issues(catalog: Catalog) -> dict[str, list[Issue]]:
    """interface id → its issues, most severe first; source warnings about a file an interface was
    read from are that interface's issues too."""
    warnings: dict[str, list[str]] = {}
    for source in catalog.sources:
        for warning in source.warnings:
            warnings.setdefault(warning.path, []).append(warning.message)
    found: dict[str, list[Issue]] = {}
    for interface in catalog.interfaces:
        listed = _own(interface)
        read_from = dict.fromkeys(e.source for e in interface.evidence)
        for path in read_from:
            listed += [Issue("low", message, path) for message in warnings.get(path, [])]
        if listed:
            found[interface.id] = sorted(listed, key=lambda issue: SEVERITIES.index(issue.severity))
    return found
