"""`banyan demo --once`, run end to end: the story `make demo` tells, and the README shows, must stay true."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cutover.store import open_store
from flows.journey import Journey
from inventory_scan import Catalog, Kind
from tests.conftest import REPO, missing_service
from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import wait_until


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    folder = tmp_path_factory.mktemp("demo") / "estate"
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", str(folder), "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]  # a Fault the ERP answers is not its failure
    return folder, run.stdout


def chapter(output: str, title: str, next_title: str) -> str:
    return output.split(title, 1)[1].split(next_title, 1)[0]


def test_the_estate_is_found_per_entity(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    catalog = Catalog.load(folder / "catalog.json")
    kinds = {(i.entity, i.kind) for i in catalog.interfaces}
    assert {
        ("ACME-DE", Kind.soap_operation),
        ("ACME-DE", Kind.esb_flow),
        ("ACME-UK", Kind.file_drop),
        ("ACME-US", Kind.db_trigger),
    } <= kinds
    assert "ACME-US" in (folder / "report.html").read_text()
    assert (folder / "graph.mmd").read_text().startswith(("graph", "flowchart"))


def test_every_entity_is_served_by_its_own_legacy_system(demo: tuple[Path, str]) -> None:
    folder, output = demo
    wrap = chapter(output, "2 · Wrap", "3 · Shift")
    assert "ACME-DE: 60 calls (order, order status, stock, customer, shipment, invoice): 60 legacy" in wrap
    assert "ACME-UK: 50 calls (order, stock, customer, shipment, invoice): 50 legacy" in wrap
    assert "ACME-US: 50 calls (order, stock, customer, shipment, invoice): 50 legacy" in wrap
    assert "ACME-UK's importer booked 10 API orders, 2 CSV and 3 X12 partner files" in wrap  # the UK ERP took them
    assert "ACME-DE's EDI translator, still on SOAP, now through the gateway's passthrough: 10 calls: 10 legacy" in wrap
    # stock: one canonical shape from the SOAP service, the file exchange and the database alike
    stock = [json.loads(line.split(" → 200 ", 1)[1]) for line in wrap.splitlines() if "/inventory/" in line]
    assert len(stock) == 3 and {tuple(sorted(answer)) for answer in stock} == {("available", "sku", "warehouse")}
    inventory = json.loads((REPO / "routes" / "canonical" / "inventory.json").read_text())
    for answer in stock:
        jsonschema.validate(answer, inventory)  # the contract, whichever ERP answered
    # v1 of order status is deprecated: its answers say so and point at v2
    assert "Deprecation: @" in wrap and 'rel="successor-version"' in wrap and "/v2/ACME-DE/orders/" in wrap
    v2 = json.loads(wrap.split("Content-Type: application/json", 1)[1].split("\n", 2)[1])
    assert set(v2) == {"orderId", "status"}  # the canonical order, its id from the path
    orders = folder / "drops" / "uk" / "orders"
    assert len(list((orders / "out").glob("997_PO51*.x12"))) == 3  # the X12 partner orders of chapter 2 acknowledged
    assert not list((orders / "in").iterdir())
    assert (
        "does not know → 422 Backend rejected the request: the legacy system refused the file: unknown customer C-UK-0099"
        in wrap
    )
    kept = sorted(p.name for p in (orders / "error").iterdir())  # what the importer could not book, kept for a person
    assert kept[0].startswith("ORDERS_ACME-UK_") and kept[1:] == ["PO510099.x12"]
    with sqlite3.connect(folder / "databases" / "erp_us.db") as database:
        exported = {
            row[0]
            for row in database.execute("SELECT o.reference FROM order_export e JOIN orders o ON o.id = e.order_id")
        }
    assert len({r for r in exported if r and r.startswith("PO-US-")}) >= 10  # booked over ODBC, exported by trigger
    with sqlite3.connect(folder / "databases" / "ledger.db") as ledger:
        assert ledger.execute("SELECT count(*) FROM invoice_interface").fetchone()[0] == 30


def test_the_group_order_is_one_call_booked_where_the_stock_is(demo: tuple[Path, str]) -> None:
    _, output = demo
    told = chapter(output, "a process API", "business events:")
    answer = re.search(r"POST /v1/group-orders .*\n  → 201 (\{.*\})", told)
    assert answer, told
    booked = json.loads(answer.group(1))
    assert booked["entity"] == "ACME-UK" and booked["currency"] == "GBP", told  # DE holds too little, UK enough
    assert "credit hold → 422 Process refused: terms: the customer is on credit hold" in told
    shown = told.split("$ banyan processes show", 1)[1]
    for call in ("terms", "stock[ACME-DE]", "stock[ACME-UK]", "stock[ACME-US]", "book"):
        assert re.search(rf"│ {re.escape(call)} +│", shown), shown
    assert "completed" in shown and "order-create" in shown


def test_booked_writes_and_legacy_triggers_become_events(demo: tuple[Path, str]) -> None:
    _, output = demo
    told = chapter(output, "business events:", "3 · Shift")
    for kind in ("com.acme.shipment.confirmed", "com.acme.invoice.posted"):
        assert re.search(rf"│ {re.escape(kind)} +│ +30 │ +0 │", told), told  # one per booked write, all published
    assert re.search(r"│ com\.acme\.order\.created +│ +31 │ +0 │", told), told  # and the group order's
    assert re.search(r"│ com\.acme\.order\.routed +│ +1 │ +0 │", told), told  # the process's own step event
    event = json.loads(told.split("(subject events.com.acme.order.created):\n", 1)[1].splitlines()[0])
    assert event["type"] == "com.acme.order.created" and event["subject"] == event["data"]["orderId"]
    order = json.loads((REPO / "routes" / "canonical" / "order.json").read_text())
    jsonschema.validate(event["data"], order)  # the canonical order
    assert "published 3 events from stock_outbox to acme.us.stock" in told
    stock = json.loads(told.rsplit("/erp/us/stock_outbox is at 3\n", 1)[1].splitlines()[0])
    assert stock["type"] == "com.acme.inventory.changed" and stock["legalentity"] == "ACME-US"


def test_each_entity_climbs_and_the_bad_release_is_stepped_back(demo: tuple[Path, str]) -> None:
    folder, output = demo
    assert "✓ promoted order-status/ACME-DE → canary 50 %" in output
    assert "✓ promoted order-create/ACME-UK → canary 5 %" in output
    refusals = [line for line in output.split("3 · Shift", 1)[1].splitlines() if line.startswith("refused:")]
    # every step the lead asked for had the evidence; the one refusal is the proposer approving her own
    assert refusals == ["refused: change 1: ana proposed it; a second person approves it"]
    store = open_store(str(folder / "cutover.db"))
    try:
        events = store.history(entity="ACME-US")
    finally:
        store.close()
    # one step, from canary straight to shadow, and no further: in shadow legacy answers every call
    [guardrail] = [e for e in events if e.kind == "guardrail"]
    assert (guardrail.route, guardrail.from_mode, guardrail.to_mode) == ("inventory-availability", "canary", "shadow")
    assert guardrail.evidence["mismatches"] >= 20, guardrail.evidence
    # in shadow the comparisons go on: the guardrail alerts on them and the rung stays
    [alert] = [e for e in events if e.kind == "guardrail_alert" and e.route == "inventory-availability"]
    assert alert.evidence["rung"].startswith("ACME-US@")
    assert next(e.kind for e in events if e.route == "inventory-availability") == "guardrail_alert"
    shift = chapter(output, "3 · Shift", "Where to look")
    slo = shift.split("$ banyan slo status", 1)[1].split("Where each entity stands", 1)[0]
    for entity in ("ACME-DE", "ACME-UK", "ACME-US"):  # each entity's orders measured: booked, and in time
        assert re.search(rf"│ {entity} │ order-create +│ order-latency +│ 99.5 % 28d │ +[0-9.]+ % of [0-9,]+ │", slo), (
            slo
        )
    assert "/available │ value" in shift  # the wrong field, named
    assert "error" not in shift.split("release 2026.12")[1].split("$ banyan")[0]  # consumers saw no errors
    assert "console     http://127.0.0.1:" in output


def test_a_forced_step_takes_two_people_and_a_leads_key_reaches_only_her_entity(demo: tuple[Path, str]) -> None:
    folder, output = demo
    assert "✓ change 1 approved: order-create/ACME-UK → dual_write (applied)" in output
    assert "403 Out of scope: Uma UK acts for ACME-UK, not for ACME-US: nothing was changed" in output
    store = open_store(str(folder / "cutover.db"))
    try:
        events = [e for e in store.history("order-create", "ACME-UK") if e.kind in ("propose", "approve")]
        changed = store.rule("order-create", "ACME-US")
    finally:
        store.close()
    assert [(e.kind, e.actor) for e in events] == [("approve", "bo"), ("propose", "ana")]
    assert events[0].to_mode == "dual_write" and events[0].evidence["forced"] is True
    assert changed is None  # her attempt changed nothing: the route's rung from its file still holds


def test_the_retailers_files_climb_the_ladder_one_retailer_at_a_time(demo: tuple[Path, str]) -> None:
    folder, output = demo
    assert "✓ set uk-retail-orders/ACME-UK → canary 1 % (version 2)" in output  # on evidence: no --force needed
    store = open_store(str(folder / "cutover.db"))
    try:
        files = Journey(store).files("uk-retail-orders", limit=100)
        refused = {row.name for row in files if row.state == "refused"}  # the inbox chapter's two bad files
        assert refused == {"ORDERS_BROKEN.edi", "ORDERS_640001.edi"}
        by_rung: dict[str, list[str]] = {}
        for row in (row for row in files if row.name not in refused):
            assert row.state == "delivered", row
            by_rung.setdefault(row.rung or "", []).append(row.business_key or "")
        assert {rung: len(keys) for rung, keys in by_rung.items()} == {
            "ACME-UK@0": 10,
            "ACME-UK@1": 20,
            "ACME-UK@2": 10,
        }
        counters = store.evidence("uk-retail-orders", "ACME-UK", "ACME-UK@1", 0)
        # each file's CONTRL and ORDRSP, each compared with the other side's
        assert (counters.comparisons, counters.mismatches, counters.errors_cloud) == (40, 0, 0)
    finally:
        store.close()
    outbox = sorted(p.name for p in (folder / "drops" / "partners" / "uk" / "out").iterdir())
    # a CONTRL and an ORDRSP per file: from legacy, but Retailer Two's from the cloud once it moved
    assert len(outbox) == 80 and sum(name.startswith(("ack_", "rsp_")) for name in outbox) == 10
    assert "the retailers' outbox: 70 documents from the UK importer, 10 from the cloud" in output


def test_the_german_855s_are_compared_line_by_line_and_the_partner_gets_legacys(demo: tuple[Path, str]) -> None:
    folder, output = demo
    store = open_store(str(folder / "cutover.db"))
    try:
        journey = Journey(store)
        files = journey.files("de-retail-orders", limit=100)
        assert len(files) == 10 and {row.state for row in files} == {"delivered"}
        assert {row.business_key for row in files} == {f"PO{po}" for po in range(630000, 630010)}
        counters = store.evidence("de-retail-orders", "ACME-DE", "ACME-DE@1", 0)
        # 997s agree; one 855 differs: the cloud backordered a line of 38 units
        assert (counters.comparisons, counters.mismatches) == (20, 1)
    finally:
        store.close()
    outbox = sorted(p.name for p in (folder / "drops" / "partners" / "de" / "out").iterdir())
    assert len(outbox) == 20 and not any(name.startswith(("ack_", "rsp_")) for name in outbox)  # legacy's only
    mismatches = output.split("$ banyan cutover mismatches de-retail-orders", 1)[1].split("$ banyan", 1)[0]
    assert "/ST/*/ACK/*/01" in mismatches and "/ST/*/ACK/*/02" in mismatches


def test_the_nightly_stock_exports_are_compared_record_by_record(demo: tuple[Path, str]) -> None:
    folder, output = demo
    from flows.batches import runs

    store = open_store(str(folder / "cutover.db"))
    try:
        [made] = [run for run in runs(store, "us-nightly-stock", 100) if run["state"] == "delivered"]
    finally:
        store.close()
    # after the cloud's release 2026.12, its export forgets reserved stock: the same field the route showed
    assert made["records"] == 20 and 0 < made["mismatches"] <= 20 and made["rung"] == "ACME-US@1"
    assert made["delivered"].endswith(made["legacy_file"])  # dual_write: legacy's export reached the warehouse
    assert [p.name for p in (folder / "drops" / "us" / "wms" / "in").iterdir()] == [made["delivered"]]
    nightly = output.split("$ banyan cutover mismatches us-nightly-stock", 1)[1].split("\n\n", 1)[0]
    assert "/record/available" in nightly


def test_the_commands_where_to_look_prints_work_as_printed(demo: tuple[Path, str]) -> None:
    folder, output = demo
    printed = output.split("these commands work as printed):", 1)[1].splitlines()[1:6]
    assert printed[0].strip().startswith("curl -H 'X-API-Key: bnk_")  # a whole key, not the first 8 characters
    export = printed[1].strip()
    assert export == f"export BANYAN_STORE={folder / 'cutover.db'}"
    environment = {"BANYAN_STORE": export.split("=", 1)[1], "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    for line in printed[2:]:
        done = subprocess.run(line.split(), cwd="/", env=environment, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    history = subprocess.run(printed[3].split(), cwd="/", env=environment, capture_output=True, text=True, check=False)
    assert "guardrail" in history.stdout


def test_ctrl_c_mid_story_stops_everything_without_a_traceback(tmp_path: Path) -> None:
    import os
    import signal
    import time

    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    story = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", str(tmp_path / "estate"), "--once"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert story.stdout is not None
    deadline = time.monotonic() + 180
    for line in story.stdout:  # wait until the gateway serves: the story is in its middle
        if line.startswith("gateway on http://") or time.monotonic() > deadline:
            break
    os.kill(story.pid, signal.SIGINT)
    _, errors = story.communicate(timeout=60)
    assert story.returncode == 130, errors[-2000:]
    assert "Traceback" not in errors and "stopped: the gateway and the estate are shut down" in errors


def test_the_books_are_reconciled_repaired_and_matched_between_entities(demo: tuple[Path, str]) -> None:
    folder, output = demo
    books = output.split("Before ACME-US's orders go to cloud_primary", 1)[1].split("Each entity's business SLOs", 1)[0]
    first, repaired, second, intercompany = books.split("$ banyan reconcile ")[1:5]
    assert "only" in first and "2" in first.split("only", 1)[1] and "run 1: us-orders for ACME-US — done" in first
    assert "✓ 2 records put in the outbox for cloud through order-create" in repaired
    assert "run 2: us-orders for ACME-US — done" in second and "0.000%" in second
    assert "DE receivables" in intercompany and "run 3: ic-de-uk for ACME-DE — done" in intercompany
    store = open_store(str(folder / "cutover.db"))
    try:
        from reconcile.store import Runs

        runs = Runs(store)
        assert sorted(key for _, key, _ in runs.found(1)) == sorted(key for _, key, _ in runs.found(1, "only_legacy"))
        assert len(runs.found(1, "only_legacy")) == 2 and runs.found(2) == []
        assert [key for _, key, _ in runs.found(3)] == ["IC-DE-0012"]  # the invoice ACME-UK never booked
    finally:
        store.close()


def test_the_inbox_holds_what_needs_a_person_with_its_owner(demo: tuple[Path, str]) -> None:
    """ACME-UK's two refused partner files and the order copy the cloud refused, each with its owner and
    assigned; the copy replayed once its customer was migrated, and delivered."""
    from cutover.outbox import Outbox
    from inbox.store import Inbox

    folder, output = demo
    story = output.split("A normal day goes wrong", 1)[1].split("Each entity's business SLOs", 1)[0]
    assert "$ banyan exceptions list" in story and "✓ exception" in story and "— resolved" in story
    store = open_store(str(folder / "cutover.db"))
    try:
        inbox = Inbox(store)
        items = {(item.kind, item.key): item for item in inbox.page(resolved=True, limit=500)}
        files = {key: item for (kind, key), item in items.items() if kind == "file_refused"}
        assert {"ORDERS_BROKEN.edi", "ORDERS_640001.edi"} <= set(files)
        assert all(
            files[name].owner == "uk-edi" and files[name].assignee == "priya"
            for name in ("ORDERS_BROKEN.edi", "ORDERS_640001.edi")
        )
        [copy] = [item for (kind, _), item in items.items() if kind == "outbox_dead"]
        assert copy.owner == "order-to-cash" and copy.entity == "ACME-UK" and copy.state == "resolved"
        assert [entry.action for entry in inbox.history(copy.id)] == ["opened", "assigned", "replay started", "replay"]
        message = Outbox(store).get(int(copy.source.split(":")[1]))
        assert message.state in ("pending", "delivered")  # replayed with its own key; the deliverer makes it
    finally:
        store.close()


def test_the_demos_console_and_report_in_chromium(demo: tuple[Path, str], browser: Any, tmp_path: Path) -> None:
    """The demo's estate served again from its store, its console and report opened in headless
    Chromium: the matrix, the SLOs, the page of ACME-US's stock reads (stepped down, /available
    differs), the graph and the roadmap. These are the pictures docs/ shows
    (BANYAN_SCREENSHOTS=docs retakes them there)."""
    folder, _ = demo
    shots = Path(os.environ.get("BANYAN_SCREENSHOTS", tmp_path))
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--routes", str(REPO / "routes")]
    command += ["--consumers", str(folder / "consumers.yaml"), "--store", str(folder / "cutover.db")]
    command += ["--port", str(port), "--no-access-log"]
    environment = {**os.environ, "BANYAN_ADMIN_KEY": "demo-admin-key"}
    gateway = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _healthy(port) or gateway.poll() is not None, 30)
        assert gateway.poll() is None, gateway.stderr.read().decode()[-2000:] if gateway.stderr else ""
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/console")
        page.fill("#key", "demo-admin-key")
        page.fill("#actor", "Ana Lead")
        page.click("#login button[type=submit]")
        cell = page.locator('td[data-route="inventory-availability"][data-entity="ACME-US"] button.cell')
        cell.wait_for()
        page.locator("main > section").first.screenshot(path=str(shots / "console.png"))
        page.locator("#slos tbody tr").first.wait_for()
        page.locator('section[aria-labelledby="slo-title"]').screenshot(path=str(shots / "console-slos.png"))
        cell.click()
        page.locator("#fields").filter(has_text="/available").wait_for()
        page.locator("#charts figure svg").first.focus()  # a minute's values read out under the chart
        page.locator("#cell").screenshot(path=str(shots / "console-mismatches.png"))
        booked = page.locator("#processes tbody tr", has_text="completed").locator("button")
        booked.click()  # the group order's timeline: the terms, three entities' stock at once, the booking
        page.locator("#process-timeline svg rect").first.wait_for()
        assert page.locator("#process-timeline svg rect").count() == 5
        told = page.locator("#process-timeline svg").get_attribute("aria-label") or ""
        assert "completed" in told and "book done by legacy" in told, told  # what a screen reader hears
        page.locator('section[aria-labelledby="processes-title"]').screenshot(path=str(shots / "console-process.png"))
        page.goto((folder / "report.html").as_uri())
        page.locator("#graph-box").screenshot(path=str(shots / "report-graph.png"))
        roadmap = page.locator("section").filter(has=page.locator("h2", has_text="Roadmap: wrap"))
        roadmap.screenshot(path=str(shots / "report-roadmap.png"))
        crossings = page.get_attribute("svg#graph", "data-crossings")
        assert crossings == "0", f"the demo's graph has {crossings} crossing edges"
        page.close()
    finally:
        gateway.terminate()
        gateway.wait(30)
    for name in ("console", "console-slos", "console-mismatches", "console-process", "report-graph", "report-roadmap"):
        assert (shots / f"{name}.png").stat().st_size > 5_000, name


def _healthy(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
        return True
    except OSError:
        return False
