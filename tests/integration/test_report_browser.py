"""The HTML report opened in real headless Chromium (Debian's), driven by playwright."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog
from inventory_scan.analysis.graph import BOX_WIDTH

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Catalog]:
    spec = importlib.util.spec_from_file_location("demo_estate", REPO / "scripts" / "demo_estate.py")
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    root = tmp_path_factory.mktemp("estate") / "estate"
    demo.build(root)
    runner = CliRunner()
    assert runner.invoke(app, ["scan", "run", str(root / "scan.yaml")]).exit_code == 0
    html = root / "report.html"
    result = runner.invoke(app, ["catalog", "report", str(root / "catalog.json"), "--html", str(html)])
    assert result.exit_code == 0, result.output
    return html, Catalog.load(root / "catalog.json")


def test_report_in_chromium(report: tuple[Path, Catalog], browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    html, catalog = report
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html.as_uri())

    assert page.title() == "Banyan catalog report"
    total = len(catalog.interfaces)
    rows = page.locator("#interfaces tbody tr")
    assert rows.count() == total
    # the graph is drawn, one clickable box per interface
    assert page.locator("svg#graph a.node").count() == total
    assert page.locator("svg#graph path.edge").count() == len(catalog.edges)

    # filtering by text and by entity
    page.fill("#filter-text", "ORDERS")
    visible = rows.locator("visible=true")
    expected = sum("orders" in row.lower() for row in rows.all_inner_texts())
    assert visible.count() == expected and 0 < expected < total
    assert page.inner_text("#shown") == str(expected)
    page.fill("#filter-text", "")
    page.select_option("select[data-field=entity]", "ACME-UK")
    uk = [i for i in catalog.interfaces if i.entity == "ACME-UK"]
    assert rows.locator("visible=true").count() == len(uk)
    page.select_option("select[data-field=entity]", "")

    # sorting by effort puts the most effort first
    page.click("#interfaces th:has-text('effort')")
    page.click("#interfaces th:has-text('effort')")
    headers = [h.strip(" ⇅") for h in page.locator("#interfaces thead th").all_inner_texts()]
    column = headers.index("effort")
    efforts = [int(v) for v in rows.evaluate_all(f"rows => rows.map(r => r.cells[{column}].dataset.value)")]
    assert efforts == sorted(efforts, reverse=True)

    # filtering by disposition; the roadmap's retirement list links to the interface's details
    page.select_option("select[data-field=disposition]", "retire")
    retiring = [i for i in catalog.interfaces if i.disposition and i.disposition.name == "retire"]
    assert rows.locator("visible=true").count() == len(retiring) > 0
    page.select_option("select[data-field=disposition]", "")
    fax = next(i for i in catalog.interfaces if i.name == "dbo.trg_customer_fax_notify")
    page.click(f"section:has(h2:text('Roadmap: retire')) a[href='#{fax.id}']")
    expect(page.locator(f"details#{fax.id}")).to_have_attribute("open", "")  # opened on the hashchange

    # a box in the graph opens that interface's details
    trigger = next(i for i in catalog.interfaces if i.name == "dbo.trg_order_audit_export")
    page.click(f"svg#graph a.node[data-id='{trigger.id}']")
    expect(page.locator(f"details#{trigger.id}")).to_have_attribute("open", "")

    # every table fits the page at 1,400 px: long names break, short columns do not
    widths = page.evaluate("Array.from(document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right)")
    assert max(widths) <= page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400

    # the graph fits its box when the page opens, zooms and keeps every label inside its box
    box_width = page.evaluate("document.getElementById('graph-box').clientWidth")
    fitted = float(page.get_attribute("svg#graph", "width") or 0)
    assert 0 < fitted <= box_width
    page.click(".graph-tools button[data-zoom=in]")
    assert float(page.get_attribute("svg#graph", "width") or 0) > fitted
    page.click(".graph-tools button[data-zoom=fit]")
    assert float(page.get_attribute("svg#graph", "width") or 0) == fitted
    widest = page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('#graph .node text')).map(t => t.getComputedTextLength()))"
    )
    assert widest <= BOX_WIDTH - 8 - 4  # the label starts 8 in

    # each connected part folds to its heading, by mouse or keyboard, and the parts below move up
    assert page.get_attribute("svg#graph", "data-crossings") == "0"  # laid out in layers: no edge crosses another
    first, second = page.locator("#graph .part").nth(0), page.locator("#graph .part").nth(1)
    head = first.locator(".part-head")
    below = second.get_attribute("transform")
    tall = float(page.get_attribute("svg#graph", "height") or 0)
    head.click()
    expect(head).to_have_attribute("aria-expanded", "false")
    expect(first.locator(".part-body")).to_be_hidden()
    assert second.get_attribute("transform") != below and float(page.get_attribute("svg#graph", "height") or 0) < tall
    head.focus()
    page.keyboard.press("Enter")
    expect(first.locator(".part-body")).to_be_visible()
    assert second.get_attribute("transform") == below

    # the rows shown download as CSV, made in the page
    page.select_option("select[data-field=entity]", "ACME-US")
    with page.expect_download() as download:
        page.click("#export-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    us = [i for i in catalog.interfaces if i.entity == "ACME-US"]
    assert lines[0].startswith("name,kind,entity") and len(lines) == 1 + len(us)
    assert all(",ACME-US," in line for line in lines[1:])
    page.select_option("select[data-field=entity]", "")

    page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert errors == []
    assert all(url.startswith("file://") for url in requests)  # self-contained: nothing fetched from a network
