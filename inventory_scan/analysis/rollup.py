"""Effort and readiness: units per interface, rolled up per system and legal entity.

Database objects carry their scanner's effort score. Other kinds are costed here from a table:
a base per kind plus what makes them harder to replace (formats, endpoints, error stages).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from inventory_scan.catalog import Catalog, Complexity, Interface, Kind

BASE_UNITS = {
    Kind.file_drop: 1,
    Kind.esb_flow: 2,
    Kind.esb_endpoint: 0,  # costed with the flows that use it
    Kind.soap_operation: 2,
    Kind.queue: 1,
    Kind.db_trigger: 4,
    Kind.db_procedure: 3,
}
QUIET_DAYS = 30  # no arrival for this long before the newest activity in the catalog: a retirement candidate


def units(interface: Interface) -> Complexity:
    """The interface's effort: the scanner's score when it gave one, else the table's."""
    if interface.complexity is not None:
        return interface.complexity
    score = BASE_UNITS.get(interface.kind, 1)
    reasons = [f"{interface.kind.value} base {score}"]
    if interface.kind is Kind.file_drop:
        if len(interface.formats) > 1:
            score += len(interface.formats) - 1
            reasons.append(f"{len(interface.formats)} formats +{len(interface.formats) - 1}")
        if "error" in interface.attributes.get("stages", {}):
            score += 1
            reasons.append("files fail into an error folder +1")
    if interface.kind is Kind.esb_flow:
        endpoints = len(interface.attributes.get("endpoints", []))
        if endpoints > 1:
            score += endpoints - 1
            reasons.append(f"{endpoints} endpoints +{endpoints - 1}")
        if interface.side_effects:
            score += 1
            reasons.append(f"calls out ({', '.join(interface.side_effects)}) +1")
    if interface.kind is Kind.soap_operation and len(interface.attributes.get("bindings", [])) > 1:
        score += 1
        reasons.append("several bindings +1")
    return Complexity(score=score, reasons=reasons)


def with_units(catalog: Catalog) -> Catalog:
    interfaces = [i.model_copy(update={"complexity": units(i)}) for i in catalog.interfaces]
    return catalog.model_copy(update={"interfaces": interfaces})


@dataclass
class Group:
    """One system's or one entity's share of the estate."""

    name: str
    interfaces: int = 0
    units: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_pattern: Counter[str] = field(default_factory=Counter)


@dataclass
class Rollup:
    systems: list[Group]
    entities: list[Group]
    most_depended_on: list[tuple[Interface, int]]  # wrap these first
    quiet: list[tuple[Interface, str]]  # retirement candidates, with why


def _groups(catalog: Catalog, key: str) -> list[Group]:
    groups: dict[str, Group] = {}
    for interface in catalog.interfaces:
        name = (interface.system if key == "system" else interface.entity) or "(none)"
        group = groups.setdefault(name, Group(name))
        group.interfaces += 1
        group.units += units(interface).score
        group.by_kind[interface.kind.value] += 1
        group.by_pattern[interface.pattern.name if interface.pattern else "—"] += 1
    return sorted(groups.values(), key=lambda g: (-g.units, g.name))


def dependants(catalog: Catalog) -> dict[str, set[str]]:
    """interface id → ids of the interfaces that depend on it (edges pointing at it)."""
    ids = {interface.id for interface in catalog.interfaces}
    found: dict[str, set[str]] = defaultdict(set)
    for edge in catalog.edges:
        if edge.target in ids and edge.source != edge.target:
            found[edge.target].add(edge.source)
    return found


def quiet_reasons(catalog: Catalog) -> dict[str, str]:
    """interface id → why it looks unused: no files, silent for long, or disabled."""
    newest = max((i.activity.last_seen for i in catalog.interfaces if i.activity.last_seen), default=None)
    quiet: dict[str, str] = {}
    for interface in catalog.interfaces:
        if interface.kind is Kind.file_drop:
            last = interface.activity.last_seen
            if interface.activity.count == 0:
                quiet[interface.id] = "no files seen"
            elif newest and last and newest - last > timedelta(days=QUIET_DAYS):
                quiet[interface.id] = f"no file for {(newest - last).days} days before the newest activity"
        elif interface.kind is Kind.db_trigger and interface.attributes.get("enabled") is False:
            quiet[interface.id] = "trigger disabled"
        elif interface.kind is Kind.esb_endpoint and interface.attributes.get("enabled") is False:
            quiet[interface.id] = "receive location disabled"
    return quiet


def rollup(catalog: Catalog, top: int = 10) -> Rollup:
    depends = dependants(catalog)
    ranked = sorted(
        ((interface, len(depends.get(interface.id, ()))) for interface in catalog.interfaces),
        key=lambda pair: (-pair[1], pair[0].name),
    )
    quiet = quiet_reasons(catalog)
    return Rollup(
        systems=_groups(catalog, "system"),
        entities=_groups(catalog, "entity"),
        most_depended_on=[pair for pair in ranked if pair[1] > 0][:top],
        quiet=sorted(((i, quiet[i.id]) for i in catalog.interfaces if i.id in quiet), key=lambda pair: pair[0].name),
    )
