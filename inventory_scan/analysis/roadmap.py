"""The migration roadmap a catalog implies: waves of APIs to wrap, events to publish, what to retire.

Waves order the `wrap` interfaces the way a programme takes them on: tier 1 first, within a tier
the most depended-on, then the cheapest; a wave holds at most `wave_units` effort units and never
mixes tiers. The waves are put on a timeline of weeks, one after the other, at the team's
`capacity` in effort units a week (as Azure Migrate and AWS's AIM give each phase an estimate):
a plan a lead can hold the programme to, and change by changing the capacity. Event candidates
name the tables and folders their events would be published from; the retirement list carries the
evidence for each.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from inventory_scan.analysis.dispositions import apply_roadmap
from inventory_scan.analysis.rollup import dependants, units
from inventory_scan.catalog import Catalog, Interface, Kind

WAVE_UNITS = 20
CAPACITY = 4.0  # effort units one team wraps a week: a SOAP operation (2) in two or three days
CSV_COLUMNS = [
    "wave",
    "disposition",
    "tier",
    "business_object",
    "name",
    "kind",
    "entity",
    "system",
    "dependants",
    "effort",
    "publish_from",
    "why",
    "criticality",
    "locator",
    "id",
]


@dataclass(frozen=True)
class Step:
    """One interface's place in the roadmap."""

    interface: Interface
    dependants: int
    effort: int
    wave: int | None = None
    publish_from: tuple[str, ...] = ()

    @property
    def tier(self) -> int:
        return self.interface.criticality.tier if self.interface.criticality else 3

    @property
    def disposition(self) -> str:
        return self.interface.disposition.name if self.interface.disposition else "keep"

    @property
    def why(self) -> list[str]:
        return self.interface.disposition.reasons if self.interface.disposition else []

    def as_json(self) -> dict[str, Any]:
        interface = self.interface
        return {
            "id": interface.id,
            "name": interface.name,
            "kind": interface.kind.value,
            "entity": interface.entity,
            "system": interface.system,
            "locator": interface.locator,
            "business_object": interface.business_object,
            "disposition": self.disposition,
            "why": self.why,
            "tier": self.tier,
            "criticality": interface.criticality.reasons if interface.criticality else [],
            "dependants": self.dependants,
            "effort": self.effort,
            "wave": self.wave,
            "publish_from": list(self.publish_from),
        }


@dataclass
class Wave:
    number: int
    tier: int
    steps: list[Step] = field(default_factory=list)
    first_week: int = 1  # on the timeline: the week it starts, and how many it takes at the team's capacity
    weeks: int = 1

    @property
    def last_week(self) -> int:
        return self.first_week + self.weeks - 1

    @property
    def effort(self) -> int:
        return sum(step.effort for step in self.steps)


@dataclass
class Roadmap:
    waves: list[Wave]
    events: list[Step]
    retire: list[Step]
    keep: list[Step]
    capacity: float = CAPACITY  # effort units a week the timeline assumes

    @property
    def weeks(self) -> int:
        return self.waves[-1].last_week if self.waves else 0

    def steps(self) -> list[Step]:
        return [step for wave in self.waves for step in wave.steps] + self.events + self.retire + self.keep

    def as_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "weeks": self.weeks,
            "waves": [self._wave(wave) for wave in self.waves],
            "events": [step.as_json() for step in self.events],
            "retire": [step.as_json() for step in self.retire],
            "keep": [step.as_json() for step in self.keep],
        }

    @staticmethod
    def _wave(wave: Wave) -> dict[str, Any]:
        return {
            "wave": wave.number,
            "tier": wave.tier,
            "effort": wave.effort,
            "first_week": wave.first_week,
            "weeks": wave.weeks,
            "interfaces": [step.as_json() for step in wave.steps],
        }

    def to_csv(self) -> str:
        """One row per interface, in roadmap order, for a spreadsheet."""
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for step in self.steps():
            row = step.as_json()
            row["why"] = "; ".join(row["why"])
            row["criticality"] = "; ".join(row["criticality"])
            row["publish_from"] = "; ".join(row["publish_from"])
            writer.writerow({column: "" if row[column] is None else row[column] for column in CSV_COLUMNS})
        return out.getvalue()


def publish_from(interface: Interface) -> tuple[str, ...]:
    """Where an event candidate's events would come from: the rows that change, the folder it fills,
    what the flow listens on."""
    if interface.kind is Kind.db_trigger:
        tables = [interface.attributes.get("table"), *interface.writes]
        return tuple(dict.fromkeys(f"table:{t}" for t in tables if t))
    if interface.kind is Kind.file_drop:
        return (f"folder:{interface.attributes.get('folder') or interface.locator.rsplit('/', 1)[0]}",)
    if interface.kind is Kind.esb_flow:
        return tuple(f"endpoint:{locator}" for locator in interface.reads)
    return (interface.locator,)


def plan(catalog: Catalog, wave_units: int = WAVE_UNITS, capacity: float = CAPACITY) -> Roadmap:
    """The roadmap for `catalog`, its waves on a timeline at `capacity` effort units a week; a
    catalog scanned before dispositions existed gets the default rules."""
    if any(interface.disposition is None for interface in catalog.interfaces):
        catalog = apply_roadmap(catalog)
    depends = dependants(catalog)
    steps = [
        Step(interface, len(depends.get(interface.id, ())), units(interface).score) for interface in catalog.interfaces
    ]

    def order(step: Step) -> tuple[Any, ...]:
        return (step.tier, -step.dependants, step.effort, step.interface.name, step.interface.id)

    waves: list[Wave] = []
    for step in sorted((s for s in steps if s.disposition == "wrap"), key=order):
        wave = waves[-1] if waves else None
        if wave is None or wave.tier != step.tier or (wave.steps and wave.effort + step.effort > wave_units):
            wave = Wave(number=len(waves) + 1, tier=step.tier)
            waves.append(wave)
        wave.steps.append(Step(step.interface, step.dependants, step.effort, wave=wave.number))
    events = [
        Step(s.interface, s.dependants, s.effort, publish_from=publish_from(s.interface))
        for s in sorted((s for s in steps if s.disposition == "refactor_to_events"), key=order)
    ]
    week = 1
    for wave in waves:
        wave.first_week, wave.weeks = week, max(1, math.ceil(wave.effort / capacity))
        week = wave.last_week + 1
    retire = sorted((s for s in steps if s.disposition == "retire"), key=order)
    keep = sorted((s for s in steps if s.disposition == "keep"), key=order)
    return Roadmap(waves=waves, events=events, retire=retire, keep=keep, capacity=capacity)
