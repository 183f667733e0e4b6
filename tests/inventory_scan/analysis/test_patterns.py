"""Patterns on the catalog built from the public corpora: a table of interfaces and what they should become."""

from __future__ import annotations

import pytest

from inventory_scan import Catalog, Kind
from inventory_scan.analysis.patterns import PatternRule, apply_patterns

CASES = [
    # (kind, name, locator contains, pattern, a reason that must be given)
    ("soap_operation", "LBService1.sleepOperation", "", "sync_api", "a request/response SOAP operation"),
    ("esb_flow", "StockQuoteProxy", "synapse_sample_150", "sync_api", "the flow answers HTTP or SOAP requests"),
    ("esb_flow", "StockQuoteAPI", "", "sync_api", "the flow answers HTTP or SOAP requests"),
    ("esb_flow", "route1", "spring-xquery", "event", "the flow listens to or publishes on a queue or topic"),
    ("esb_flow", "jmsBridge", "mule3", "event", "the flow listens to or publishes on a queue or topic"),
    ("esb_endpoint", "jms:queue:MyQueue", "", "event", "messages on a queue or topic"),
    (
        "esb_endpoint",
        "jdbc:derby:target/muleEmbeddedDB#PLANET",
        "",
        "batch",
        "a database or file endpoint read and written in bulk",
    ),
    ("db_trigger", "employee_insupd", "", "sync_api", "the trigger validates and aborts: a check the API must make"),
    ("db_trigger", "ins_film", "", "event", "the trigger reacts to row changes"),
    ("db_procedure", "byroyalty", "", "sync_api", "a stored routine called on demand"),
    ("file_drop", "IN{seq}.dat", "/x12/", "batch", "a file exchange"),
]


@pytest.mark.parametrize(("kind", "name", "where", "pattern", "reason"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_pattern(corpus_catalog: Catalog, kind: str, name: str, where: str, pattern: str, reason: str) -> None:
    [interface] = [
        i for i in corpus_catalog.interfaces if i.kind.value == kind and i.name == name and where in i.locator
    ]
    assert interface.pattern is not None
    assert interface.pattern.name == pattern
    assert reason in interface.pattern.reasons


def test_every_interface_gets_a_pattern_and_effort(corpus_catalog: Catalog) -> None:
    assert all(i.pattern is not None and i.complexity is not None for i in corpus_catalog.interfaces)


def test_user_rules_come_before_the_defaults(corpus_catalog: Catalog) -> None:
    rules = [
        PatternRule(pattern="event", reason="our EDI drops feed the event bus", kind=["file_drop"], path="*/x12/*")
    ]
    analysed = apply_patterns(corpus_catalog, rules)
    x12 = [i for i in analysed.interfaces if i.kind is Kind.file_drop and "/x12/" in i.locator]
    others = [i for i in analysed.interfaces if i.kind is Kind.file_drop and "/x12/" not in i.locator]
    assert {(i.pattern.name, i.pattern.reasons[0]) for i in x12 if i.pattern} == {
        ("event", "our EDI drops feed the event bus")
    }
    assert {i.pattern.name for i in others if i.pattern} == {"batch"}


def test_rules_can_come_from_scan_yaml(tmp_path: object) -> None:
    from inventory_scan.config import ScanConfig

    config = ScanConfig.model_validate(
        {
            "patterns": [
                {
                    "pattern": "orchestration",
                    "reason": "BizTalk stays an orchestration",
                    "kind": ["esb_flow"],
                    "path": "biztalk:*",
                }
            ]
        }
    )
    assert config.patterns[0].pattern == "orchestration"
    with pytest.raises(ValueError, match="pattern"):
        ScanConfig.model_validate({"patterns": [{"pattern": "magic", "reason": "x"}]})
