"""What changed between two scans: interfaces added, removed and changed, and activity that moved sharply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inventory_scan.catalog import Catalog, Criticality, Disposition, Interface

# Fields compared between two scans of one interface; activity is judged separately.
COMPARED = ("entity", "system", "name", "protocol", "direction", "formats", "reads", "writes", "side_effects")
# … and what the roadmap made of it, when both scans decided it (a catalog from before the roadmap did not).
DECIDED = ("business_object", "disposition", "criticality")
SHARP = 2.0  # activity rose or fell by at least this factor
MIN_COUNT = 10  # … between counts large enough to mean something


@dataclass
class Change:
    id: str
    name: str
    kind: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class Diff:
    added: list[Interface] = field(default_factory=list)
    removed: list[Interface] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    activity: list[Change] = field(default_factory=list)  # rose or fell sharply, or changed cadence

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.activity)

    def as_json(self) -> dict[str, Any]:
        def brief(i: Interface) -> dict[str, str]:
            return {"id": i.id, "kind": i.kind.value, "name": i.name, "locator": i.locator}

        def change(c: Change) -> dict[str, Any]:
            fields = {k: {"old": old, "new": new} for k, (old, new) in c.fields.items()}
            return {"id": c.id, "kind": c.kind, "name": c.name, "fields": fields}

        return {
            "added": [brief(i) for i in self.added],
            "removed": [brief(i) for i in self.removed],
            "changed": [change(c) for c in self.changed],
            "activity": [change(c) for c in self.activity],
        }


def _value(interface: Interface, name: str) -> Any:
    value = getattr(interface, name)
    if isinstance(value, list):
        return sorted(value)
    if isinstance(value, Disposition):
        return value.name
    if isinstance(value, Criticality):
        return f"tier {value.tier}"
    return getattr(value, "value", value)


def _activity(old: Interface, new: Interface) -> dict[str, tuple[Any, Any]]:
    moved: dict[str, tuple[Any, Any]] = {}
    before, after = old.activity.count, new.activity.count
    if max(before, after) >= MIN_COUNT and (after >= before * SHARP or after * SHARP <= before):
        moved["count"] = (before, after)
    old_cadence = old.activity.cadence.label if old.activity.cadence else None
    new_cadence = new.activity.cadence.label if new.activity.cadence else None
    old_kind = old.activity.cadence.kind if old.activity.cadence else None
    new_kind = new.activity.cadence.kind if new.activity.cadence else None
    if old_kind != new_kind:
        moved["cadence"] = (old_cadence, new_cadence)
    return moved


def diff(old: Catalog, new: Catalog) -> Diff:
    before = {i.id: i for i in old.interfaces}
    after = {i.id: i for i in new.interfaces}
    result = Diff(
        added=sorted((after[k] for k in after.keys() - before.keys()), key=lambda i: (i.kind.value, i.name)),
        removed=sorted((before[k] for k in before.keys() - after.keys()), key=lambda i: (i.kind.value, i.name)),
    )
    for key in sorted(before.keys() & after.keys(), key=lambda k: (after[k].kind.value, after[k].name)):
        was, now = before[key], after[key]
        fields = {
            name: (_value(was, name), _value(now, name)) for name in COMPARED if _value(was, name) != _value(now, name)
        }
        decided = [name for name in DECIDED if getattr(was, name) is not None and getattr(now, name) is not None]
        fields |= {
            name: (_value(was, name), _value(now, name)) for name in decided if _value(was, name) != _value(now, name)
        }
        old_pattern = was.pattern.name if was.pattern else None
        new_pattern = now.pattern.name if now.pattern else None
        if old_pattern != new_pattern:
            fields["pattern"] = (old_pattern, new_pattern)
        old_score = was.complexity.score if was.complexity else None
        new_score = now.complexity.score if now.complexity else None
        if old_score != new_score:
            fields["complexity"] = (old_score, new_score)
        if was.attributes.get("enabled") != now.attributes.get("enabled"):
            fields["enabled"] = (was.attributes.get("enabled"), now.attributes.get("enabled"))
        if fields:
            result.changed.append(Change(key, now.name, now.kind.value, fields))
        moved = _activity(was, now)
        if moved:
            result.activity.append(Change(key, now.name, now.kind.value, moved))
    return result
