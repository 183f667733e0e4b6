"""`make demo`'s estate, built and scanned end to end."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import time_machine
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, Kind

REPO = Path(__file__).resolve().parents[2]


def demo_estate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_estate", REPO / "scripts" / "demo_estate.py")
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_demo_estate_scans_into_a_linked_catalog(tmp_path: Path) -> None:
    demo_estate().build(tmp_path / "estate")

    result = CliRunner().invoke(app, ["scan", "run", str(tmp_path / "estate" / "scan.yaml")])
    assert result.exit_code == 0, result.output
    catalog = Catalog.load(tmp_path / "estate" / "catalog.json")
    # The estate carries its own files: a clone without shared/ scans every source completely.
    assert all(source.complete for source in catalog.sources), [s.reason for s in catalog.sources]
    partners = next(i for i in catalog.interfaces if i.locator.endswith("/partners/samples/RCV{seq}.dat"))
    assert {"x12:997", "ubl:Invoice"} <= set(partners.formats)
    drops = {(i.entity, i.name) for i in catalog.interfaces if i.kind is Kind.file_drop}
    assert {
        ("ACME-DE", "IN{seq}.dat"),
        ("ACME-UK", "ORDERS_{date}_{seq}.edi"),
        ("ACME-US", "STOCK_{date}.csv"),
    } <= drops
    flows = {(i.entity, i.name) for i in catalog.interfaces if i.kind is Kind.esb_flow}
    assert flows == {("ACME-DE", "importRetailerOrders"), ("ACME-UK", "UkOrderIntake")}
    links = {e.relation for e in catalog.edges if e.relation.startswith("link:")}
    assert links == {"link:polls", "link:writes", "link:moves_to", "link:implements", "link:table", "link:fires"}
    # Tables are nodes: the Mule flow's insert and the trigger it fires meet at table:order_audit.
    names = {i.id: i.name for i in catalog.interfaces}
    through_table = {
        (names.get(e.source, e.source), e.relation, names.get(e.target, e.target))
        for e in catalog.edges
        if "table:order_audit" in (e.source, e.target)
    }
    assert through_table == {
        ("mysql://erp-de-db.acme.local:3306/erp#order_audit", "link:writes", "table:order_audit"),
        ("table:order_audit", "link:fires", "dbo.trg_order_audit_export"),
    }
    triggers = {(i.entity, i.name) for i in catalog.interfaces if i.kind is Kind.db_trigger}
    assert ("ACME-DE", "dbo.trg_order_audit_export") in triggers  # from the install script
    assert ("ACME-US", "stock_outbox_au") in triggers  # live, from SQLite over ODBC
    validate = next(i for i in catalog.interfaces if i.name == "orders_validate_bi")
    assert validate.attributes["validations"] == ["aborts the change: RAISE(ABORT)"]
    assert "Winter2019!" not in (tmp_path / "estate" / "catalog.json").read_text()  # the Mule DB password


def facts(root: Path, day: datetime) -> dict[str, Any]:
    """The estate built and scanned on `day`, with the clock frozen there: what the tests, the demo
    and the README read of it, less the dates themselves."""
    from inventory_scan.analysis.issues import issues

    with time_machine.travel(day, tick=False):
        demo_estate().build(root, day)
        result = CliRunner().invoke(app, ["scan", "run", str(root / "scan.yaml")])
        assert result.exit_code == 0, result.output
        catalog = Catalog.load(root / "catalog.json")
        found = issues(catalog)
    here = str(root)
    return {
        "files": sum(1 for path in root.rglob("*") if path.is_file()),
        "interfaces": sorted(  # by text: two interfaces alike up to a field one lacks never compare None with text
            [
                (
                    i.kind.value,
                    i.system,
                    i.entity,
                    i.name.replace(here, "~"),
                    tuple(i.formats),
                    i.activity.count if i.activity else None,
                    i.pattern.name if i.pattern else None,
                    tuple(sorted(m.message.replace(here, "~") for m in found.get(i.id, []))),
                )
                for i in catalog.interfaces
            ],
            key=repr,
        ),
        "edges": len(catalog.edges),
    }


# Month ends, a leap day, both DST changes (Europe and US), a Monday, a Sunday, a new year's day.
DAYS = [
    "2026-12-07T09:00:00",
    "2026-12-06T23:00:00",
    "2026-11-30T12:00:00",
    "2027-01-01T00:00:00",
    "2028-02-29T10:00:00",
    "2027-03-14T08:00:00",
    "2027-03-28T01:00:00",
    "2027-10-31T02:00:00",
]


def test_the_estate_holds_the_same_facts_whatever_the_day(tmp_path: Path) -> None:
    reference = facts(tmp_path / "reference", datetime.fromisoformat(DAYS[0]).replace(tzinfo=UTC))
    orders = next(i for i in reference["interfaces"] if i[3] == "ORDERS_{date}_{seq}.edi")
    assert any(message.startswith("3 files failed into ") for message in orders[-1])
    for day in DAYS[1:]:
        when = datetime.fromisoformat(day).replace(tzinfo=UTC)
        assert facts(tmp_path / day[:10], when) == reference, day
