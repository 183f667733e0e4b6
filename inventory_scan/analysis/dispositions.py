"""What a migration does with each interface (keep, wrap, refactor_to_events, retire), and how much
the business leans on it (criticality tier 1–3). Both come with the reasons that decided them.

The disposition is a table of rules like the pattern table: the first rule that holds decides,
every other rule for the same disposition that holds adds its reason, and rules in scan.yaml come
before these defaults. Criticality starts from the business object an interface carries and is
raised one tier by what makes an outage felt: dependants, share of its entity's traffic, cadence.
An override in scan.yaml has the last word on either, for one interface or a glob of them:

    roadmap:
      retiring_systems: [fax_server]          # interfaces of these systems retire
      rules:
        - disposition: keep
          reason: "partners' EDI stays on the VAN"
          kind: [file_drop]
          path: "*/van/*"
      overrides:
        - match: "dbo.usp_nightly_credit_mail" # an interface id, or a glob on its name or locator
          disposition: retire
          reason: "the cloud ERP's dunning replaces the credit mail"
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inventory_scan.analysis.objects import business_objects
from inventory_scan.analysis.patterns import MESSAGING
from inventory_scan.analysis.rollup import dependants, quiet_reasons
from inventory_scan.analysis.rules import Conditions, Facts, facts_of, fill, names
from inventory_scan.catalog import Catalog, Criticality, Disposition, Interface, Kind

DispositionName = Literal["keep", "wrap", "refactor_to_events", "retire"]

# What each business object means to a distributor, and the tier it starts from.
OBJECT_TIERS = {
    "order": (1, "order-to-cash"),
    "inventory": (1, "inventory availability"),
    "invoice": (1, "invoicing and financial posting"),
    "shipment": (2, "fulfilment"),
    "customer": (2, "master data"),
    "item": (2, "master data"),
    "location": (2, "master data"),
    "acknowledgement": (3, "a technical acknowledgement"),
}
RAISE_DEPENDANTS = 2  # this many interfaces depending on it raise the tier
RAISE_SHARE = 0.25  # so does carrying this share of its entity's observed traffic …
RAISE_SHARE_MIN = 20  # … once the entity has seen this many files or messages
RAISE_INTERVAL = 3600  # and so does running at least hourly


class DispositionRule(Conditions):
    disposition: DispositionName
    reason: str = Field(description="why; may name {quiet}, {duplicate_of}, {system}, {dependants} …")
    pattern: list[str] | None = Field(default=None, description="the interface's integration pattern")
    business_object: list[str] | None = Field(default=None, description="order, inventory, shipment, invoice …")
    direction: list[str] | None = Field(default=None, description="into, out_of, both, unknown")
    system: list[str] | None = Field(default=None, description="globs on the system name")
    quiet: bool | None = Field(default=None, description="no activity, disabled, or silent for long")
    duplicate: bool | None = Field(default=None, description="another interface does the same")
    retiring: bool | None = Field(default=None, description="its system is in retiring_systems")
    min_dependants: int | None = None

    def holds(self, interface: Interface, facts: Facts) -> bool:
        checks = [
            (self.pattern, facts.pattern),
            (self.business_object, facts.business_object),
            (self.direction, interface.direction.value),
        ]
        if any(wanted is not None and value not in wanted for wanted, value in checks):
            return False
        flags = [(self.quiet, facts.quiet is not None), (self.duplicate, facts.duplicate_of is not None)]
        if any(wanted is not None and wanted != value for wanted, value in [*flags, (self.retiring, facts.retiring)]):
            return False
        if self.system is not None and not any(fnmatchcase(interface.system, glob) for glob in self.system):
            return False
        if self.min_dependants is not None and facts.dependants < self.min_dependants:
            return False
        return super().holds(interface, facts)


def _rule(disposition: DispositionName, reason: str, **conditions: Any) -> DispositionRule:
    return DispositionRule(disposition=disposition, reason=reason, **conditions)


FALLBACK = _rule("keep", "stable: nothing marks it for change")
PROPAGATING = ["outbox", "queue_table", "event_table", "queue", "notify", "export_table", "linked_server"]
DEFAULT_RULES: list[DispositionRule] = [
    _rule("retire", "{system} is being switched off", retiring=True),
    _rule("retire", "no sign of use: {quiet}", quiet=True),
    _rule("retire", "{duplicate_of} does the same", duplicate=True),
    _rule(
        "refactor_to_events",
        "the trigger propagates row changes that other systems read",
        kind=["db_trigger"],
        side_effect=PROPAGATING,
    ),
    _rule(
        "refactor_to_events",
        "a drop others poll for {business_object} changes: an event says it when it happens",
        kind=["file_drop"],
        direction=["out_of"],
        business_object=["inventory", "shipment", "order"],
    ),
    _rule(
        "refactor_to_events",
        "the flow hands messages to a queue or topic: an event with a published schema replaces it",
        kind=["esb_flow"],
        endpoint_protocol=MESSAGING,
    ),
    _rule(
        "keep",
        "the ESB's call to an operation its WSDL describes: the operation is wrapped in its place",
        kind=["esb_endpoint"],
        has=["wsdl", "operation"],
    ),
    _rule(
        "keep", "a technical acknowledgement: it goes with the exchange it answers", business_object=["acknowledgement"]
    ),
    _rule(
        "wrap",
        "the trigger validates the rows written and refuses the bad ones: the managed API in front of the writes "
        "makes the same check before the ERP does",
        kind=["db_trigger"],
        has=["validations"],
    ),
    _rule(
        "wrap",
        "consumers call it request/response: a managed API takes its place",
        pattern=["sync_api"],
        kind=["soap_operation", "esb_endpoint", "esb_flow", "db_procedure"],  # a trigger is not called: its rule above
    ),
    _rule(
        "wrap", "an orchestration: the API in front of it lets it be replaced step by step", pattern=["orchestration"]
    ),
    _rule("wrap", "files handed in to the ERP: an API call can write them", kind=["file_drop"], direction=["into"]),
    _rule("keep", "documents sent to partners who read files", kind=["file_drop"], direction=["out_of"]),
    _rule("keep", "an endpoint of a flow or an exchange: it changes with them", kind=["esb_endpoint"]),
    _rule("keep", "moves data between systems and serves no caller: it goes when they move", kind=["esb_flow"]),
    FALLBACK,
]


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: str = Field(description="an interface id, or a glob on its name or locator")
    disposition: DispositionName | None = None
    criticality: Literal[1, 2, 3] | None = None
    business_object: str | None = None
    reason: str = Field(description="why the rules do not decide this one")

    @model_validator(mode="after")
    def _sets_something(self) -> Override:
        if self.disposition is None and self.criticality is None and self.business_object is None:
            raise ValueError(f"the override for {self.match!r} sets none of disposition, criticality, business_object")
        return self

    def matches(self, interface: Interface) -> bool:
        return names(self.match, interface)


class RoadmapSettings(BaseModel):
    """The roadmap: section of scan.yaml."""

    model_config = ConfigDict(extra="forbid")

    retiring_systems: list[str] = Field(default_factory=list, description="systems being switched off (globs)")
    rules: list[DispositionRule] = Field(default_factory=list, description="disposition rules before the defaults")
    overrides: list[Override] = Field(default_factory=list)


def _signature(interface: Interface) -> tuple[Any, ...] | None:
    """What two interfaces share when one does what the other does."""
    attributes = interface.attributes
    same: tuple[Any, ...]
    if interface.kind is Kind.file_drop and interface.formats:
        same = (interface.entity, interface.direction, tuple(interface.formats), attributes.get("pattern"))
    elif interface.kind is Kind.db_trigger:
        same = (
            interface.system,
            attributes.get("table"),
            attributes.get("timing"),
            str(attributes.get("events")),
            attributes.get("when"),
            tuple(sorted(interface.writes)),
        )
    elif interface.kind is Kind.soap_operation and interface.formats:
        same = (interface.entity, tuple(interface.formats))
    else:
        return None
    return (interface.kind, *same)


def _duplicates(catalog: Catalog) -> dict[str, str]:
    """interface id → the name of the busier interface that does the same."""
    groups: dict[tuple[Any, ...], list[Interface]] = defaultdict(list)
    for interface in catalog.interfaces:
        if (signature := _signature(interface)) is not None:
            groups[signature].append(interface)
    found: dict[str, str] = {}
    for members in groups.values():
        if len(members) > 1:
            first, *rest = sorted(members, key=lambda i: (-i.activity.count, i.locator))
            found |= {other.id: first.name for other in rest}
    return found


def _facts(catalog: Catalog, settings: RoadmapSettings) -> dict[str, Facts]:
    objects = business_objects(catalog)
    depends = dependants(catalog)
    quiet = quiet_reasons(catalog)
    duplicates = _duplicates(catalog)
    return {
        interface.id: replace(
            facts_of(interface),
            pattern=interface.pattern.name if interface.pattern else None,
            business_object=objects[interface.id][0] if interface.id in objects else None,
            dependants=len(depends.get(interface.id, ())),
            quiet=quiet.get(interface.id),
            duplicate_of=duplicates.get(interface.id),
            retiring=any(fnmatchcase(interface.system, glob) for glob in settings.retiring_systems),
            extra={"object_evidence": objects[interface.id][1]} if interface.id in objects else {},
        )
        for interface in catalog.interfaces
    }


def dispose(interface: Interface, facts: Facts, rules: list[DispositionRule]) -> Disposition:
    values = facts.values(interface)
    chosen = next(rule for rule in rules if rule.holds(interface, facts))  # the last default always holds
    reasons = [chosen.reason] + [
        rule.reason
        for rule in rules
        if rule is not chosen
        and rule is not FALLBACK
        and rule.disposition == chosen.disposition
        and rule.holds(interface, facts)
    ]
    return Disposition(name=chosen.disposition, reasons=list(dict.fromkeys(fill(r, values) for r in reasons)))


def criticality(interface: Interface, facts: Facts, traffic: Counter[str]) -> Criticality:
    """Tier 1–3 from the business object, raised one tier by dependants, share of traffic or cadence."""
    if facts.business_object in OBJECT_TIERS:
        tier, meaning = OBJECT_TIERS[facts.business_object]
        reasons = [f"{meaning}: {facts.extra.get('object_evidence', facts.business_object)}"]
    else:
        tier, reasons = 3, ["no business object recognised in its documents or names"]
    raises = []
    if facts.dependants >= RAISE_DEPENDANTS:
        raises.append(f"{facts.dependants} interfaces depend on it")
    entity_traffic = traffic[interface.entity] if interface.entity else 0
    if entity_traffic >= RAISE_SHARE_MIN and interface.activity.count / entity_traffic >= RAISE_SHARE:
        raises.append(f"{interface.activity.count / entity_traffic:.0%} of {interface.entity}'s traffic")
    cadence = interface.activity.cadence
    if cadence and cadence.interval_seconds and cadence.interval_seconds <= RAISE_INTERVAL:
        raises.append(f"runs {cadence.label}")
    if raises and tier > 1:
        tier -= 1
        reasons.append(f"raised to tier {tier}: {'; '.join(raises)}")
    elif raises:
        reasons += raises
    return Criticality(tier=tier, reasons=reasons)


def apply_roadmap(catalog: Catalog, settings: RoadmapSettings | None = None) -> Catalog:
    """The catalog with every interface's business object, criticality and disposition decided.

    Run it after patterns and links: the rules read both.
    """
    settings = settings or RoadmapSettings()
    rules = [*settings.rules, *DEFAULT_RULES]
    facts = _facts(catalog, settings)
    traffic: Counter[str] = Counter()
    for interface in catalog.interfaces:
        traffic[interface.entity or ""] += interface.activity.count
    interfaces = []
    for interface in catalog.interfaces:
        own = facts[interface.id]
        chosen = {
            field: next((o for o in settings.overrides if getattr(o, field) and o.matches(interface)), None)
            for field in ("business_object", "disposition", "criticality")
        }
        if found := chosen["business_object"]:
            own = replace(own, business_object=found.business_object, extra={"object_evidence": found.reason})
        disposition = dispose(interface, own, rules)
        tier = criticality(interface, own, traffic)
        if found := chosen["disposition"]:
            disposition = Disposition(name=str(found.disposition), reasons=[f"override: {found.reason}"])
        if found := chosen["criticality"]:
            tier = Criticality(tier=int(found.criticality or 3), reasons=[f"override: {found.reason}"])
        update = {"business_object": own.business_object, "criticality": tier, "disposition": disposition}
        interfaces.append(interface.model_copy(update=update))
    return catalog.model_copy(update={"interfaces": interfaces})
