"""Per-interface issues with their evidence, and the routes (and rungs) in front of each interface."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, Kind
from inventory_scan.analysis.issues import issues
from inventory_scan.analysis.report import _evidence_link, to_html
from inventory_scan.analysis.wrapped import wrappers
from inventory_scan.catalog import Activity, Direction, Evidence, Interface, ScanWarning, Source

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _by_name(catalog: Catalog) -> dict[str, Interface]:
    return {i.name: i for i in catalog.interfaces}


def test_the_demo_estate_issues(demo_catalog: Path) -> None:
    catalog = Catalog.load(demo_catalog)
    found = issues(catalog)
    named = _by_name(catalog)
    orders = found[named["ORDERS_{date}_{seq}.edi"].id]
    assert orders[0].severity == "high" and orders[0].message.startswith("3 files failed into ")
    assert orders[0].evidence.endswith("/acme_uk/ftp/orders/error")
    audit = [(i.severity, i.message) for i in found[named["dbo.trg_order_audit_export"].id]]
    assert ("medium", "writes through the linked server FINANCE01: keep it reachable") in audit
    # the install script's source warning is an issue of every object read from it, with its file
    assert any(
        i.message.startswith("dialect guessed: tsql") and i.evidence.endswith("erp_de.sql")
        for i in found[named["dbo.usp_nightly_credit_mail"].id]
    )
    partners = {i.message for i in found[named["RCV{seq}.dat"].id]}
    assert "no legal entity: add an entities: rule to scan.yaml" in partners
    assert named["IN{seq}.dat"].id not in found  # a clean drop has nothing to look at


def test_a_template_address_and_empty_files_are_issues() -> None:
    endpoint = Interface.build(
        kind=Kind.esb_endpoint,
        system="mule",
        locator="http://${erp.host}:8080/orders",
        name="orders",
        protocol="http",
        evidence=[Evidence(source="/srv/mule/app.xml", line=12)],
    )
    drop = Interface.build(
        kind=Kind.file_drop,
        system="erp",
        locator="file:///in/X_{seq}.dat",
        name="X_{seq}.dat",
        protocol="file",
        entity="ACME-DE",
        direction=Direction.into,
        formats=["unknown"],
        activity=Activity(count=4),
        attributes={"zero_byte_files": 2},
    )
    found = issues(Catalog(interfaces=[endpoint, drop]))
    assert [(i.severity, i.message, i.evidence) for i in found[endpoint.id]] == [
        ("medium", "its address is still a template: a property was not resolved", "/srv/mule/app.xml:12")
    ]
    assert {i.message for i in found[drop.id]} == {"2 empty files", "content not recognised as any known format"}


def test_evidence_links_only_to_files_and_escapes_what_it_shows() -> None:
    assert _evidence_link("/srv/erp de/schema.sql:14") == (
        '<a href="file:///srv/erp%20de/schema.sql">/srv/erp de/schema.sql:14</a>'
    )
    assert _evidence_link("SQLite catalog query") == "SQLite catalog query"
    hostile = '/srv/"><script>alert(1)</script>.sql'
    link = _evidence_link(hostile)
    assert "<script>" not in link and "&lt;script&gt;" in link


def test_a_warning_is_only_the_issue_of_what_was_read_from_that_file() -> None:
    first = Interface.build(
        kind=Kind.db_trigger,
        system="erp",
        locator="db:/a#t1",
        name="t1",
        protocol="db",
        entity="E",
        evidence=[Evidence(source="/a.sql", line=3)],
    )
    second = Interface.build(
        kind=Kind.db_trigger,
        system="erp",
        locator="db:/b#t2",
        name="t2",
        protocol="db",
        entity="E",
        evidence=[Evidence(source="/b.sql", line=3)],
    )
    source = Source(
        locator="/",
        kind="db",
        scanned_at="2026-12-01T00:00:00Z",
        warnings=[ScanWarning(path="/a.sql", message="line 9: not understood")],
    )
    found = issues(Catalog(interfaces=[first, second], sources=[source]))
    assert [i.message for i in found[first.id]] == ["line 9: not understood"] and second.id not in found


def test_routes_name_what_they_wrap_and_the_store_says_their_rung(demo_catalog: Path, tmp_path: Path) -> None:
    store = tmp_path / "cutover.db"
    moved = runner.invoke(
        app,
        [
            "cutover",
            "set",
            "order-status",
            "ACME-DE",
            "shadow",
            "--store",
            str(store),
            "--routes",
            str(REPO / "routes"),
            "--reason",
            "first look",
        ],
    )
    assert moved.exit_code == 0, moved.output
    markdown = tmp_path / "report.md"
    result = runner.invoke(
        app,
        [
            "catalog",
            "report",
            str(demo_catalog),
            "--markdown",
            str(markdown),
            "--html",
            str(tmp_path / "report.html"),
            "--routes",
            str(REPO / "routes"),
            "--store",
            str(store),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown.read_text().splitlines() if "`" in line}
    assert rows["OrderService.GetOrderStatus"].endswith(
        "order-status · ACME-DE: shadow; order-status-v2 · ACME-DE: legacy; order-service-passthrough |"
    )
    assert rows["ORDERS_{date}_{seq}.edi"].endswith("order-create · ACME-UK: legacy |")
    assert rows["IN{seq}.dat"].endswith("` |  |")  # nothing wraps it yet
    assert "order-status · ACME-DE: shadow" in (tmp_path / "report.html").read_text()


def test_without_a_store_the_route_is_named_and_the_report_refuses_a_store_alone(demo_catalog: Path) -> None:
    catalog = Catalog.load(demo_catalog)
    named = _by_name(catalog)
    found = wrappers(catalog, [("order-status", ["OrderService.GetOrderStatus"]), ("nothing", ["no-such-*"])])
    assert [str(w) for w in found[named["OrderService.GetOrderStatus"].id]] == ["order-status"]
    assert len(found) == 1
    assert "route · rung" not in to_html(catalog) and "route · rung" in to_html(catalog, found)
    result = runner.invoke(app, ["catalog", "report", str(demo_catalog), "--markdown", "/dev/null", "--store", "x"])
    assert result.exit_code == 2 and "give --routes too" in result.output
    missing = runner.invoke(
        app,
        [
            "catalog",
            "report",
            str(demo_catalog),
            "--markdown",
            "/dev/null",
            "--routes",
            str(REPO / "routes"),
            "--store",
            "/no/such/cutover.db",
        ],
    )
    assert missing.exit_code == 2 and "no cutover store" in missing.output and "Traceback" not in missing.output


def test_scaffolded_routes_name_the_interface_they_wrap(demo_catalog: Path, tmp_path: Path) -> None:
    import yaml

    result = runner.invoke(app, ["routes", "scaffold", str(demo_catalog), "--out", str(tmp_path / "routes")])
    assert result.exit_code == 0, result.output
    catalog = Catalog.load(demo_catalog)
    ids = {i.id for i in catalog.interfaces}
    for path in (tmp_path / "routes").iterdir():
        document = yaml.safe_load(path.read_text())
        for route in document.get("routes", []) + document.get("flows", []):
            assert len(route["wraps"]) == 1 and route["wraps"][0] in ids
    markdown = tmp_path / "report.md"
    shown = runner.invoke(
        app, ["catalog", "report", str(demo_catalog), "--markdown", str(markdown), "--routes", str(tmp_path / "routes")]
    )
    assert shown.exit_code == 0, shown.output
    rows = {line.split(" | ")[0].lstrip("| "): line for line in markdown.read_text().splitlines() if "`" in line}
    assert "flow-in-seq-dat" in rows["IN{seq}.dat"]  # the flow that stands in front of the drop
    flows = yaml.safe_load((tmp_path / "routes" / "flows.yaml").read_text())["flows"]
    by_document = {flow["document"]: flow for flow in flows}  # a flow in front of each drop of partner documents
    assert by_document["edifact"]["entity"]["partners"] == {"5012345000011": "ACME-UK"}
    assert by_document["x12"]["legacy"]["intake"].endswith("acme_de/edi/inbound")
