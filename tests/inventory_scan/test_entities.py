import pytest
from pydantic import ValidationError

from inventory_scan.entities import EntityRule, Subject, resolve

RULES = [
    EntityRule(entity="ACME-UK", sender=["5012345000011"]),
    EntityRule(entity="ACME-UK", receiver=["5012345000011"]),
    EntityRule(entity="ACME-US", host="*.acme-us.example", system="erp_us"),
    EntityRule(entity="ACME-DE", path="*/acme_de/*"),
    EntityRule(entity="ACME-DE-3PL", path="/srv/3pl/*", host="ftp.3pl.example"),
]

CASES = [
    ("path glob", Subject("/srv/edi/acme_de/in"), "ACME-DE"),
    ("path glob crosses folders", Subject("/srv/edi/acme_de/orders/2026/in"), "ACME-DE"),
    ("no rule matches", Subject("/srv/edi/other/in"), None),
    ("sftp host", Subject("/outbound", host="sftp.acme-us.example"), "ACME-US"),
    ("host rules never match local paths", Subject("/sftp.acme-us.example/in"), None),
    ("x12/edifact sender id", Subject("/any", senders=frozenset({"5012345000011"})), "ACME-UK"),
    ("receiver id", Subject("/any", receivers=frozenset({"5012345000011"})), "ACME-UK"),
    ("first matching rule wins", Subject("/x/acme_de/in", senders=frozenset({"5012345000011"})), "ACME-UK"),
    ("every condition must hold", Subject("/srv/3pl/in", host="other.example"), None),
    ("every condition holds", Subject("/srv/3pl/in", host="ftp.3pl.example"), "ACME-DE-3PL"),
]


@pytest.mark.parametrize(("case", "subject", "entity"), CASES, ids=[c[0] for c in CASES])
def test_resolve(case: str, subject: Subject, entity: str | None) -> None:
    rule = resolve(RULES, subject)
    assert (rule.entity if rule else None) == entity


def test_a_rule_sets_the_system_too() -> None:
    rule = resolve(RULES, Subject("/outbound", host="sftp.acme-us.example"))
    assert rule is not None and rule.system == "erp_us"


def test_a_rule_without_condition_is_refused() -> None:
    with pytest.raises(ValidationError, match="states no condition"):
        EntityRule(entity="ACME-DE")
