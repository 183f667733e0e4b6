"""Business objects, criticality, dispositions and the roadmap, on the public corpora and on small
catalogs built to show one rule at a time."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, ConfigError, Kind, ScanConfig
from inventory_scan.analysis.diff import diff
from inventory_scan.analysis.dispositions import DispositionRule, Override, RoadmapSettings, apply_roadmap
from inventory_scan.analysis.objects import from_format, from_words
from inventory_scan.analysis.patterns import apply_patterns
from inventory_scan.analysis.roadmap import CSV_COLUMNS, plan
from inventory_scan.analysis.rollup import with_units
from inventory_scan.catalog import Activity, Cadence, Direction, Edge, Interface
from inventory_scan.links import link

runner = CliRunner()

CASES = [
    # (kind, name, locator contains, disposition, a reason that must be given)
    ("soap_operation", "LBService1.sleepOperation", "", "wrap", "consumers call it request/response"),
    ("esb_flow", "StockQuoteAPI", "", "wrap", "consumers call it request/response"),
    ("esb_flow", "jmsBridge", "mule3", "refactor_to_events", "the flow hands messages to a queue or topic"),
    ("esb_flow", "insert", "mule4", "keep", "serves no caller"),
    ("esb_endpoint", "FileReceiveLocation", "", "retire", "no sign of use: receive location disabled"),
    ("db_trigger", "employee_insupd", "", "wrap", "the trigger validates the rows written and refuses the bad ones"),
    ("db_trigger", "payment_trigger_ai", "", "keep", "stable: nothing marks it for change"),
    ("db_procedure", "film_in_stock", "mysql", "wrap", "consumers call it request/response"),
    ("file_drop", "IN{seq}.dat", "/x12/", "wrap", "files handed in to the ERP"),
]


def _pick(catalog: Catalog, kind: str, name: str, where: str = "") -> Interface:
    [found] = [i for i in catalog.interfaces if i.kind.value == kind and i.name == name and where in i.locator]
    return found


@pytest.mark.parametrize(
    ("kind", "name", "where", "disposition", "reason"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_disposition_on_the_corpora(
    corpus_catalog: Catalog, kind: str, name: str, where: str, disposition: str, reason: str
) -> None:
    interface = _pick(corpus_catalog, kind, name, where)
    assert interface.disposition is not None
    assert interface.disposition.name == disposition
    assert any(reason in given for given in interface.disposition.reasons), interface.disposition.reasons


OBJECTS = [
    # (kind, name, locator contains, business object, tier)
    ("file_drop", "IN{seq}.dat", "/x12/", "order", 1),
    ("file_drop", "IN{seq}.dat", "/ubl/", "order", 1),
    ("file_drop", "IN{seq}.dat", "/cxml/", "order", 1),
    ("db_procedure", "film_in_stock", "postgres", "inventory", 1),
    ("db_trigger", "payment_trigger_ai", "", "invoice", 1),
    ("db_trigger", "customer_trigger_au", "", "customer", 2),
    ("db_trigger", "film_trigger_ai", "", None, 3),
    ("esb_endpoint", "FileReceiveLocation", "", None, 3),  # a BizTalk receive location is not a warehouse
]


@pytest.mark.parametrize(("kind", "name", "where", "thing", "tier"), OBJECTS, ids=[f"{o[0]}:{o[1]}" for o in OBJECTS])
def test_business_object_and_tier_on_the_corpora(
    corpus_catalog: Catalog, kind: str, name: str, where: str, thing: str | None, tier: int
) -> None:
    interface = _pick(corpus_catalog, kind, name, where)
    assert interface.business_object == thing
    assert interface.criticality is not None and interface.criticality.tier == tier
    assert interface.criticality.reasons  # every tier says why


def test_every_corpus_interface_is_decided(corpus_catalog: Catalog) -> None:
    assert all(i.disposition and i.disposition.reasons and i.criticality for i in corpus_catalog.interfaces)


@pytest.mark.parametrize(
    ("value", "thing"),
    [
        ("x12:856", "shipment"),
        ("x12:997", "acknowledgement"),
        ("edifact:INVRPT", "inventory"),
        ("edifact:PRICAT", "item"),
        ("idoc:DELVRY07", "shipment"),
        ("ubl:DespatchAdvice", "shipment"),
        ("tradacoms:INVFIL", "invoice"),
        ("xml:{urn:acme}GetStockLevel", "inventory"),
        ("csv", None),
        ("x12:", None),
    ],
)
def test_documents_name_their_object(value: str, thing: str | None) -> None:
    assert from_format(value) == thing


def test_words_are_whole_words_singular_or_plural() -> None:
    assert from_words("SalesOrderLines") == "order"
    assert from_words("dbo.Despatches") == "shipment"
    assert from_words("inventory_snapshot") == "inventory"
    assert from_words("postcode_lookup") is None  # "po" only as a word of its own
    assert from_words("FtpReceiveLocation") is None


# Small catalogs, one rule at a time ---------------------------------------------------------------

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _drop(
    name: str,
    folder: str,
    formats: list[str],
    direction: Direction,
    *,
    count: int = 30,
    last: datetime = NOW,
    entity: str = "ACME-DE",
    system: str = "erp_de",
    **extra: Any,
) -> Interface:
    return Interface.build(
        kind=Kind.file_drop,
        system=system,
        locator=f"file://{folder}/{name}",
        entity=entity,
        name=name,
        protocol="file",
        direction=direction,
        formats=formats,
        activity=Activity(count=count, first_seen=last - timedelta(days=30), last_seen=last, **extra),
        attributes={"pattern": name, "folder": folder},
    )


def _analysed(
    *interfaces: Interface, edges: list[Edge] | None = None, settings: RoadmapSettings | None = None
) -> Catalog:
    catalog = Catalog(interfaces=list(interfaces), edges=edges or [])
    return apply_roadmap(with_units(apply_patterns(link(catalog))), settings)


def _by_name(catalog: Catalog) -> dict[str, Interface]:
    return {i.name: i for i in catalog.interfaces}


def test_a_quiet_drop_retires_with_its_evidence() -> None:
    catalog = _by_name(
        _analysed(
            _drop("ORD_{seq}.edi", "/edi/in", ["edifact:ORDERS"], Direction.into, count=900),
            _drop("FAX_{seq}.tif", "/fax/in", [], Direction.into, count=5, last=NOW - timedelta(days=200)),
        )
    )
    orders = catalog["ORD_{seq}.edi"].disposition
    assert orders and orders.name == "wrap"
    fax = catalog["FAX_{seq}.tif"].disposition
    assert fax and fax.name == "retire"
    assert fax.reasons == ["no sign of use: no file for 200 days before the newest activity"]


def test_the_quieter_of_two_drops_doing_the_same_retires() -> None:
    analysed = _analysed(
        _drop("ORD_{seq}.edi", "/edi/in", ["edifact:ORDERS"], Direction.into, count=900),
        _drop("ORD_{seq}.edi", "/edi/in_copy", ["edifact:ORDERS"], Direction.into, count=40),
    )
    copy = next(i for i in analysed.interfaces if "/in_copy/" in i.locator)
    assert copy.disposition and copy.disposition.name == "retire"
    assert copy.disposition.reasons == ["ORD_{seq}.edi does the same"]


def test_an_outbound_stock_drop_becomes_an_event_published_from_its_folder() -> None:
    roadmap = plan(_analysed(_drop("STOCK_{date}.csv", "/us/export", ["csv"], Direction.out_of)))
    [event] = roadmap.events
    assert event.interface.business_object == "inventory"
    assert event.publish_from == ("folder:/us/export",)
    assert event.why == ["a drop others poll for inventory changes: an event says it when it happens"]


def test_criticality_is_raised_once_by_dependants_traffic_or_cadence() -> None:
    frequent = Cadence(kind="interval", label="every ~15 min", interval_seconds=900)
    asn = _drop("ASN_{seq}.edi", "/de/out", ["x12:856"], Direction.out_of, count=10, cadence=frequent)
    ack = _drop("ACK_{seq}.edi", "/de/ack", ["x12:997"], Direction.out_of, count=10)
    orders = _drop("PO_{seq}.edi", "/de/in", ["x12:850"], Direction.into, count=500)
    catalog = _by_name(_analysed(asn, ack, orders))
    shipment = catalog["ASN_{seq}.edi"].criticality
    assert shipment and shipment.tier == 1  # fulfilment is tier 2, raised by a 15-minute cadence
    assert shipment.reasons[-1] == "raised to tier 1: runs every ~15 min"
    assert catalog["ACK_{seq}.edi"].criticality and catalog["ACK_{seq}.edi"].criticality.tier == 3
    order = catalog["PO_{seq}.edi"].criticality
    assert order and order.tier == 1 and "96% of ACME-DE's traffic" in order.reasons[-1]


def test_user_rules_retiring_systems_and_overrides() -> None:
    settings = RoadmapSettings(
        retiring_systems=["fax_*"],
        rules=[
            DispositionRule(
                disposition="keep",
                reason="partners on the VAN stay on files ({system})",
                kind=["file_drop"],
                path="*/van/*",
            )
        ],
        overrides=[
            Override(match="INV_*", criticality=3, reason="invoices here are copies for the archive"),
            Override(match="*/de/in/*", disposition="retire", reason="the webshop replaces it in March"),
        ],
    )
    catalog = _by_name(
        _analysed(
            _drop("PO_{seq}.edi", "/van/in", ["x12:850"], Direction.into),
            _drop("FX_{seq}.tif", "/fax", [], Direction.into, system="fax_server"),
            _drop("INV_{seq}.xml", "/de/out", ["ubl:Invoice"], Direction.out_of),
            _drop("ORD_{seq}.xml", "/de/in", ["cxml:OrderRequest"], Direction.into),
            settings=settings,
        )
    )
    van = catalog["PO_{seq}.edi"].disposition
    assert van and van.name == "keep" and van.reasons[0] == "partners on the VAN stay on files (erp_de)"
    fax = catalog["FX_{seq}.tif"].disposition
    assert fax and fax.name == "retire" and fax.reasons[0] == "fax_server is being switched off"
    invoice = catalog["INV_{seq}.xml"]
    assert invoice.criticality and invoice.criticality.tier == 3
    assert invoice.criticality.reasons == ["override: invoices here are copies for the archive"]
    assert invoice.disposition and invoice.disposition.name == "keep"  # the override set only the tier
    webshop = catalog["ORD_{seq}.xml"].disposition
    assert webshop and webshop.name == "retire" and webshop.reasons == ["override: the webshop replaces it in March"]


def test_a_reason_names_only_known_facts() -> None:
    rule = DispositionRule(disposition="keep", reason="{system} {__class__} {0} {name", kind=["file_drop"])
    catalog = _analysed(_drop("A_{seq}.csv", "/a", ["csv"], Direction.into), settings=RoadmapSettings(rules=[rule]))
    assert catalog.interfaces[0].disposition and catalog.interfaces[0].disposition.reasons == [
        "erp_de {__class__} {0} {name"
    ]


def test_waves_take_tier_one_first_most_depended_on_then_cheapest_and_never_mix_tiers() -> None:
    drops = [
        _drop(f"PO{n}_{{seq}}.edi", f"/in/{n}", ["x12:850"], Direction.into, entity=f"E{n}", count=1) for n in range(5)
    ]
    items = _drop("ITEM_{seq}.csv", "/items/in", [], Direction.into, count=1, entity="E9")
    # Two interfaces depend on PO3: it leads wave 1.
    edges = [Edge(source=f"x{k}", target=drops[3].id, relation="polls") for k in range(2)]
    roadmap = plan(_analysed(*drops, items, edges=edges), wave_units=2)
    assert [[s.interface.name for s in wave.steps] for wave in roadmap.waves] == [
        ["PO3_{seq}.edi", "PO0_{seq}.edi"],
        ["PO1_{seq}.edi", "PO2_{seq}.edi"],
        ["PO4_{seq}.edi"],
        ["ITEM_{seq}.csv"],
    ]
    assert [wave.tier for wave in roadmap.waves] == [1, 1, 1, 2]
    assert all(wave.effort <= 2 for wave in roadmap.waves)
    # on the timeline, one wave after the other at the team's capacity
    assert [(wave.first_week, wave.weeks) for wave in roadmap.waves] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    slow = plan(_analysed(*drops, items, edges=edges), wave_units=2, capacity=0.5)
    assert [(wave.first_week, wave.weeks) for wave in slow.waves] == [(1, 4), (5, 4), (9, 2), (11, 2)]
    assert slow.weeks == 12 and slow.as_json()["waves"][1]["first_week"] == 5


def test_a_catalog_from_before_the_roadmap_gets_the_default_rules(corpus_catalog: Catalog) -> None:
    bare = corpus_catalog.model_copy(
        update={"interfaces": [i.model_copy(update={"disposition": None}) for i in corpus_catalog.interfaces]}
    )
    assert [s.interface.id for s in plan(bare).steps()] == [s.interface.id for s in plan(corpus_catalog).steps()]
    assert diff(bare, corpus_catalog).empty  # nothing decided on one side is no change


def test_diff_reports_a_changed_disposition() -> None:
    before = _analysed(_drop("PO_{seq}.edi", "/de/in", ["x12:850"], Direction.into))
    settings = RoadmapSettings(overrides=[Override(match="PO_*", disposition="retire", reason="webshop")])
    after = apply_roadmap(before, settings)
    [change] = diff(before, after).changed
    assert change.fields == {"disposition": ("wrap", "retire")}


def test_scan_yaml_roadmap_section_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "scan.yaml"
    config.write_text("roadmap:\n  overrides:\n    - match: 'x'\n      reason: 'nothing set'\n")
    with pytest.raises(ConfigError, match="sets none of disposition, criticality, business_object"):
        ScanConfig.load(config)
    config.write_text("roadmap:\n  rules:\n    - disposition: rewrite\n      reason: 'no such thing'\n")
    with pytest.raises(ConfigError, match=r"roadmap\.rules\.0\.disposition"):
        ScanConfig.load(config)


# The demo estate, end to end through the CLI ---------------------------------------------------


def test_the_demo_roadmap(demo_catalog: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["catalog", "roadmap", str(demo_catalog), "--csv", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.json")],
    )
    assert result.exit_code == 0, result.output
    assert "Wrap, wave by wave" in result.output and "Refactor to events" in result.output
    found = json.loads((tmp_path / "r.json").read_text())
    retire = {step["name"]: step["why"] for step in found["retire"]}
    assert retire == {
        "dbo.trg_customer_fax_notify": ["no sign of use: trigger disabled"],
        "PRICAT_{date}.edi": [retire["PRICAT_{date}.edi"][0]],
        "dbo.usp_nightly_credit_mail": ["override: the cloud ERP's dunning run replaces the nightly credit mail"],
    }
    assert retire["PRICAT_{date}.edi"][0].startswith("no sign of use: no file for ")
    events = {step["name"]: step["publish_from"] for step in found["events"]}
    assert events["stock_outbox_au"] == ["table:stock", "table:stock_outbox"]
    assert events["DESADV_{date}.edi"][0].startswith("folder:") and "despatch/out" in events["DESADV_{date}.edi"][0]
    first = found["waves"][0]
    assert first["tier"] == 1
    assert first["interfaces"][0]["name"] == "ORDERS_{date}_{seq}.edi"  # most depended on: 3
    wrapped = {i["name"] for wave in found["waves"] for i in wave["interfaces"]}
    assert {"IN{seq}.dat", "OrderService.CreateOrder", "{hex}.xml"} <= wrapped
    # the CSV holds every interface once, in roadmap order
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(Catalog.load(demo_catalog).interfaces) == len({row["id"] for row in rows})
    assert rows[0]["wave"] == "1" and rows[0]["name"] == "ORDERS_{date}_{seq}.edi"
    # a trigger that validates orders is wrapped for its check, not as something consumers call
    why = {i["name"]: i["why"] for wave in found["waves"] for i in wave["interfaces"]}
    assert why["orders_validate_bi"][0].startswith("the trigger validates the rows written and refuses the bad ones")
    assert not any("consumers call it" in reason for reason in why["orders_validate_bi"])
    assert (
        found["capacity"] == 4.0
        and found["weeks"] == found["waves"][-1]["first_week"] + found["waves"][-1]["weeks"] - 1
    )


def test_the_demo_roadmap_as_json_on_stdout_and_in_the_reports(demo_catalog: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["catalog", "roadmap", str(demo_catalog), "--json", "-"])
    assert result.exit_code == 0 and json.loads(result.output)["waves"]
    report = runner.invoke(
        app,
        [
            "catalog",
            "report",
            str(demo_catalog),
            "--html",
            str(tmp_path / "r.html"),
            "--markdown",
            str(tmp_path / "r.md"),
        ],
    )
    assert report.exit_code == 0, report.output
    markdown = (tmp_path / "r.md").read_text()
    assert "## Roadmap: wrap, wave by wave" in markdown and "| dbo.trg_customer_fax_notify | db_trigger |" in markdown
    page = (tmp_path / "r.html").read_text()
    assert "Roadmap: refactor to events" in page and "table:stock_outbox" in page
    assert '<svg class="timeline"' in page and "weeks at 4 effort units a week" in page
    assert "| wave | weeks | tier |" in markdown


def test_scaffold_writes_routes_for_what_the_roadmap_wraps(demo_catalog: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["routes", "scaffold", str(demo_catalog), "--out", str(tmp_path / "wrapped")])
    assert result.exit_code == 0, result.output
    everything = runner.invoke(app, ["routes", "scaffold", str(demo_catalog), "--all", "--out", str(tmp_path / "all")])
    assert everything.exit_code == 0, everything.output
    written = {p.name: p.read_text() for p in (tmp_path / "wrapped").iterdir()}
    every = {p.name: p.read_text() for p in (tmp_path / "all").iterdir()}
    assert "left out" in result.output and "left out" not in everything.output
    # the ESB's call to CreateOrder is not scaffolded twice: the WSDL operation stands for it
    assert "erp-de-acme-local" not in written.get("http.yaml", "") and "erp-de-acme-local" in every["http.yaml"]
    assert "order-service-create-order" in written["soap.yaml"]
    check = runner.invoke(app, ["routes", "check", str(tmp_path / "wrapped")])
    assert check.exit_code == 0, check.output
