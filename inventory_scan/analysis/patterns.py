"""Which integration pattern each interface should become, and why: a table of rules.

The first rule whose every stated condition holds decides the pattern; every other rule for the
same pattern that also holds adds its reason. Users put their own rules in scan.yaml under
`patterns:`; they are tried before these defaults.

    patterns:
      - pattern: event
        reason: "our EDI gateway drops count as events"
        kind: [file_drop]
        path: "*/edi_gateway/*"
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inventory_scan.catalog import Catalog, Interface, Pattern

PatternName = Literal["sync_api", "event", "batch", "orchestration"]


class PatternRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: PatternName
    reason: str
    kind: list[str] | None = Field(default=None, description="interface kinds the rule applies to")
    protocol: list[str] | None = None
    side_effect: list[str] | None = Field(default=None, description="side-effect prefixes, e.g. outbox, notify")
    cadence: list[str] | None = Field(default=None, description="nightly, daily, weekly, interval, irregular …")
    flow_kind: list[str] | None = Field(default=None, description="route, proxy, orchestration, receive-port …")
    min_systems: int | None = Field(default=None, description="an ESB flow touching at least this many systems")
    has: list[str] | None = Field(default=None, description="attributes that must be present and non-empty")
    endpoint_protocol: list[str] | None = Field(default=None, description="an ESB flow with an endpoint of these")
    source_protocol: list[str] | None = Field(default=None, description="an ESB flow that listens on one of these")
    path: str | None = Field(default=None, description="glob on the interface's locator")

    def holds(self, interface: Interface, facts: dict[str, Any]) -> bool:
        checks = [
            (self.kind, interface.kind.value),
            (self.protocol, interface.protocol),
            (self.cadence, facts["cadence"]),
            (self.flow_kind, interface.attributes.get("flow_kind")),
        ]
        if any(wanted is not None and value not in wanted for wanted, value in checks):
            return False
        if self.side_effect is not None and not any(
            effect.split(":", 1)[0] in self.side_effect for effect in interface.side_effects
        ):
            return False
        if self.endpoint_protocol is not None and not facts["endpoint_protocols"] & set(self.endpoint_protocol):
            return False
        if self.source_protocol is not None and not facts["source_protocols"] & set(self.source_protocol):
            return False
        if self.min_systems is not None and facts["systems"] < self.min_systems:
            return False
        if self.has is not None and not all(interface.attributes.get(name) for name in self.has):
            return False
        return self.path is None or fnmatchcase(interface.locator, self.path)


def _rule(pattern: PatternName, reason: str, **conditions: Any) -> PatternRule:
    return PatternRule(pattern=pattern, reason=reason, **conditions)


MESSAGING = ["jms", "amqp", "mq", "kafka"]
DEFAULT_RULES: list[PatternRule] = [
    _rule("orchestration", "an orchestration binds several ports", kind=["esb_flow"], flow_kind=["orchestration"]),
    _rule("orchestration", "the flow chains three or more systems", kind=["esb_flow"], min_systems=3),
    _rule(
        "event",
        "the trigger hands rows to a queue, outbox or event table",
        kind=["db_trigger"],
        side_effect=["queue_table", "outbox", "event_table", "queue", "notify"],
    ),
    _rule("sync_api", "the flow answers HTTP or SOAP requests", kind=["esb_flow"], source_protocol=["http", "soap"]),
    _rule(
        "event", "the flow listens to or publishes on a queue or topic", kind=["esb_flow"], endpoint_protocol=MESSAGING
    ),
    _rule("event", "messages on a queue or topic", kind=["esb_endpoint"], protocol=MESSAGING),
    _rule("batch", "files land on a schedule", kind=["file_drop"], cadence=["nightly", "daily", "weekly"]),
    _rule("batch", "the files arrived together, as one batch", kind=["file_drop"], cadence=["burst"]),
    _rule(
        "batch",
        "the database object fills export, staging or files read later in bulk",
        kind=["db_trigger", "db_procedure"],
        side_effect=["export_table", "staging_table", "file", "job"],
    ),
    _rule("batch", "the flow runs on a schedule", kind=["esb_flow"], has=["schedule"]),
    _rule("sync_api", "a request/response SOAP operation", kind=["soap_operation"]),
    _rule("sync_api", "a request/response HTTP or SOAP endpoint", kind=["esb_endpoint"], protocol=["http", "soap"]),
    _rule(
        "sync_api",
        "the trigger validates and aborts: a check the API must make",
        kind=["db_trigger"],
        has=["validations"],
    ),
    _rule(
        "event", "files arrive continuously, one event per file", kind=["file_drop"], cadence=["interval", "irregular"]
    ),
    _rule("batch", "a file exchange", kind=["file_drop"]),
    _rule(
        "batch",
        "a database or file endpoint read and written in bulk",
        kind=["esb_endpoint"],
        protocol=["db", "file", "ftp", "sftp"],
    ),
    _rule("sync_api", "a stored routine called on demand", kind=["db_procedure"]),
    _rule("event", "the trigger reacts to row changes", kind=["db_trigger"]),
    _rule("event", "the flow moves messages between systems", kind=["esb_flow"]),
    _rule("event", "an endpoint other systems hand messages to", kind=["esb_endpoint"]),
]


def _facts(interface: Interface) -> dict[str, Any]:
    cadence = interface.activity.cadence.kind if interface.activity.cadence else None
    systems = set()
    for endpoint in interface.attributes.get("endpoints", []) or []:
        locator = str(endpoint.get("locator", ""))
        host = locator.partition("://")[2].split("/", 1)[0] if "://" in locator else locator.split(":", 1)[0]
        systems.add(host or endpoint.get("protocol"))
    endpoints = interface.attributes.get("endpoints", []) or []
    protocols = {str(e.get("protocol")) for e in endpoints}
    sources = {str(e.get("protocol")) for e in endpoints if e.get("role") == "source"}
    return {"cadence": cadence, "systems": len(systems), "endpoint_protocols": protocols, "source_protocols": sources}


def classify(interface: Interface, rules: list[PatternRule]) -> Pattern | None:
    facts = _facts(interface)
    chosen = next((rule for rule in rules if rule.holds(interface, facts)), None)
    if chosen is None:
        return None
    reasons = [chosen.reason] + [
        rule.reason
        for rule in rules
        if rule is not chosen and rule.pattern == chosen.pattern and rule.holds(interface, facts)
    ]
    return Pattern(name=chosen.pattern, reasons=list(dict.fromkeys(reasons)))


def apply_patterns(catalog: Catalog, rules: list[PatternRule] | None = None) -> Catalog:
    """The catalog with every interface's pattern decided by `rules` (then the defaults)."""
    table = [*(rules or []), *DEFAULT_RULES]
    interfaces = [
        interface.model_copy(update={"pattern": classify(interface, table)}) for interface in catalog.interfaces
    ]
    return catalog.model_copy(update={"interfaces": interfaces})
