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

from typing import Any, Literal

from inventory_scan.analysis.rules import Conditions, facts_of
from inventory_scan.catalog import Catalog, Interface, Pattern

PatternName = Literal["sync_api", "event", "batch", "orchestration"]


class PatternRule(Conditions):
    pattern: PatternName
    reason: str


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


def classify(interface: Interface, rules: list[PatternRule]) -> Pattern | None:
    facts = facts_of(interface)
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
