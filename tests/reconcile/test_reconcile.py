"""Reconciliation against real sources: a legacy ERP's order table over ODBC (SQLite, PostgreSQL)
and a cloud ERP's paged JSON API, matched by key with the routes' compare rules; intercompany
invoices across two entities in two currencies; and every bad input a line in the run's report."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from spyne import Array, ComplexModel, Integer, ServiceBase, Unicode, rpc
from spyne import Decimal as SoapDecimal
from typer.testing import CliRunner

from cli.main import app as cli
from cutover.decide import Mode
from cutover.store import open_store
from legacy_adapters.http import OAuth2
from reconcile.run import Reconciler, Tally, _digest, _Rows
from reconcile.store import Runs
from specs.reconciliations import Reconciliation
from tests.conftest import missing_service
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures
from tests.legacy_soap import legacy_soap_service

LEGACY_ORDERS = [
    (f"SO-{n:05d}", "ACME-US", f"CUST-{n % 7}", round(10 + n * 1.25, 2), "2026-12-01") for n in range(1, 1001)
]


@dataclass
class CloudApi:
    """The cloud ERP's order list: pages of `per_page`, or a cursor; can fail or repeat a page."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    fail_on_page: int | None = None
    repeat_page: int | None = None
    url: str = ""
    tokens: set[str] = field(default_factory=set)
    keys: list[str] = field(default_factory=list)  # the Idempotency-Keys of the orders posted


@pytest.fixture
def cloud() -> Iterator[CloudApi]:
    api = CloudApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            api.tokens.add(self.headers.get("Authorization", ""))
            page, size = int(query.get("page", 1)), int(query.get("per_page", 100))
            if api.fail_on_page == page:
                self.send_response(500)
                self.end_headers()
                return
            shown = page - 1 if api.repeat_page == page else page
            items = api.orders[(shown - 1) * size : shown * size]
            data = json.dumps({"orders": items, "page": page}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path == "/token":  # OAuth2 client credentials
                self.rfile.read(int(self.headers["Content-Length"]))
                grant = json.dumps({"access_token": "tok-PLANTED-9", "token_type": "bearer", "expires_in": 3600})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(grant)))
                self.end_headers()
                self.wfile.write(grant.encode())
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.keys.append(self.headers.get("Idempotency-Key", ""))
            api.orders = [order for order in api.orders if order["number"] != body["number"]] + [body]
            data = json.dumps(body).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api.url = f"http://127.0.0.1:{server.server_port}"
    yield api
    server.shutdown()
    server.server_close()


def _sqlite_erp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    database = tmp_path / "erp_us.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE order_export (id TEXT, entity TEXT, customer TEXT, total NUMERIC, changed TEXT)"
        )
        connection.executemany("INSERT INTO order_export VALUES (?, ?, ?, ?, ?)", LEGACY_ORDERS)
        connection.execute("INSERT INTO order_export VALUES ('so-00007 ', 'ACME-US', 'CUST-0', 1, '2026-12-01')")
        connection.execute("INSERT INTO order_export VALUES (NULL, 'ACME-US', 'CUST-1', 1, '2026-12-01')")
        connection.execute("INSERT INTO order_export VALUES ('SO-00009', 'ACME-US', 'CUST-2', 21.25, '2026-12-01')")
        connection.execute("INSERT INTO order_export VALUES ('SO-99999', 'ACME-DE', 'CUST-2', 9, '2026-12-01')")
    monkeypatch.setenv("ERP_US_ODBC", f"DRIVER={{SQLite3}};DATABASE={database}")


def _cloud_orders(api: CloudApi) -> None:
    """The cloud's copy of the migrated orders: one total drifted, one order missing, one extra, and
    a rounding difference the tolerance absorbs."""
    for order_id, _, customer, total, _ in LEGACY_ORDERS:
        if order_id == "SO-00500":
            continue  # never migrated
        if order_id == "SO-00250":
            total = total + 5  # drifted
        if order_id == "SO-00100":
            total = total + 0.004  # within the tolerance
        api.orders.append(
            {
                "number": order_id,
                "customerId": customer,
                "amount": {"value": total},
                "updatedAt": f"2026-12-0{1 + len(api.orders) % 5}T10:00:00Z",
            }
        )
    api.orders.append({"number": "SO-77777", "customerId": "CUST-9", "amount": {"value": 1.0}, "updatedAt": "x"})


def orders_spec(api: CloudApi, **changes: Any) -> Reconciliation:
    spec: dict[str, Any] = {
        "name": "us-orders",
        "entity": "order",
        "entities": ["ACME-US"],
        "key": ["orderId"],
        "legacy": {
            "odbc": {
                "connection_env": "ERP_US_ODBC",
                "fetch": 100,
                "query": "SELECT id, customer, total FROM order_export WHERE entity = :entity AND changed >= :since",
            },
            "map": {"map": {"/orderId": "/id", "/customer": "/customer", "/total": "/total"}},
        },
        "cloud": {
            "http": {
                "url": f"{api.url}/api/{{entity}}/orders",
                "items": "/orders",
                "token_env": "CLOUD_TOKEN",
                "paging": {"style": "page", "param": "page", "size_param": "per_page", "size": 100},
            },
            "map": {
                "map": {
                    "/orderId": "/number",
                    "/customer": "/customerId",
                    "/total": "/amount/value",
                    "/updatedAt": "/updatedAt",
                },
                "optional": ["/updatedAt"],
            },
        },
        "compare": {"tolerance": 0.01, "ignore": ["/updatedAt"], "mask": ["/customer"]},
        "keys": {"trim": True, "case": "upper"},
    }
    spec.update(changes)
    return Reconciliation.model_validate(spec)


def test_orders_over_odbc_against_a_paged_api_find_exactly_the_drift(
    tmp_path: Path,
    cloud: CloudApi,
    monkeypatch: pytest.MonkeyPatch,
    store_location: str,  # noqa: F811
) -> None:
    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "tok-PLANTED-7")
    _cloud_orders(cloud)
    store = open_store(store_location)
    try:
        run_id, tally = Reconciler(orders_spec(cloud), store, tmp_path).run("ACME-US", "2026-11-01")
        assert cloud.tokens == {"Bearer tok-PLANTED-7"}
        assert tally.read == {"legacy": 1003, "cloud": 1000}
        assert (tally.matched, tally.differing, tally.only) == (998, 1, {"legacy": 1, "cloud": 1})
        assert tally.duplicates["legacy"] == 2  # 'so-00007 ' is SO-00007 once trimmed and upper-cased; SO-00009
        assert tally.no_key["legacy"] == 1
        runs = Runs(store)
        row = runs.get(run_id)
        assert row is not None and row.state == "done" and "PLANTED" not in json.dumps(row.as_dict())
        [(_, key, detail)] = runs.found(run_id, "differs")
        assert key == "SO-00250" and [d["path"] for d in detail["differences"]] == ["/total"]
        [(_, only_legacy, record)] = runs.found(run_id, "only_legacy")
        assert only_legacy == "SO-00500" and record["record"]["customer"] == "•••"  # masked as the rules say
        assert [key for _, key, _ in runs.found(run_id, "only_cloud")] == ["SO-77777"]
        assert any("seen more than once" in w for w in row.warnings) and any("without a key" in w for w in row.warnings)
    finally:
        store.close()


def test_a_source_that_stops_mid_stream_fails_the_run_saying_where(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "t")
    _cloud_orders(cloud)
    cloud.fail_on_page = 4
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, _ = Reconciler(orders_spec(cloud), store, tmp_path).run("ACME-US")
        row = Runs(store).get(run_id)
        assert row is not None and row.state == "failed"
        assert "page 4" in row.reason and "500 after 300 records" in row.reason
    finally:
        store.close()


def test_a_page_that_repeats_fails_the_run_instead_of_reporting_false_drift(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "t")
    _cloud_orders(cloud)
    cloud.repeat_page = 3
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, _ = Reconciler(orders_spec(cloud), store, tmp_path).run("ACME-US")
        row = Runs(store).get(run_id)
        assert row is not None and row.state == "failed"  # what was never read is not reported as drift
        assert "page 3 repeats page 2" in row.reason
    finally:
        store.close()


def test_a_connection_string_never_reaches_the_report(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_US_ODBC", "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=1;UID=ana;PWD=s3cr3t-PLANTED")
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, _ = Reconciler(orders_spec(cloud), store, tmp_path).run("ACME-US")
        row = Runs(store).get(run_id)
        assert row is not None and row.state == "failed" and "cannot connect" in row.reason
        assert "PLANTED" not in json.dumps(row.as_dict())
    finally:
        store.close()


def test_postgresql_over_odbc_against_an_export_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyodbc

    if "PostgreSQL Unicode" not in pyodbc.drivers():
        missing_service("the PostgreSQL ODBC driver (odbc-postgresql) is not installed")
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    try:
        subprocess.run(
            [
                *psql,
                "DROP TABLE IF EXISTS recon_stock; CREATE TABLE recon_stock (sku text, warehouse text, "
                "on_hand int); INSERT INTO recon_stock SELECT 'SKU-' || n, 'US-NJ-01', n % 50 FROM "
                "generate_series(1, 500) n",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        missing_service(f"PostgreSQL is not reachable with psql at 127.0.0.1:5432: {exc}")
    monkeypatch.setenv("PG_ODBC", "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres")
    export = tmp_path / "stock-ACME-US.csv"
    export.write_text(
        "sku;warehouse;on_hand\n"
        + "".join(f"SKU-{n};US-NJ-01;{(n % 50) + (1 if n == 42 else 0)}\n" for n in range(1, 501))
    )
    spec = Reconciliation.model_validate(
        {
            "name": "us-stock",
            "entity": "inventory",
            "key": ["sku", "warehouse"],
            "legacy": {
                "odbc": {"connection_env": "PG_ODBC", "query": "SELECT sku, warehouse, on_hand FROM recon_stock"}
            },
            "cloud": {
                "file": {"path": str(tmp_path / "stock-{entity}.csv"), "records": {"format": "csv", "key": ["sku"]}},
                "map": {"map": {"/sku": "/sku", "/warehouse": "/warehouse", "/on_hand": "/on_hand"}},
            },
            "compare": {"normalise": {"/on_hand": ["number"]}},
        }
    )
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, tally = Reconciler(spec, store, tmp_path).run("ACME-US")
        assert (tally.matched, tally.differing, tally.only) == (499, 1, {"legacy": 0, "cloud": 0})
        [(_, key, _)] = Runs(store).found(run_id, "differs")
        assert key == "SKU-42\x1fUS-NJ-01"
    finally:
        store.close()
        subprocess.run([*psql, "DROP TABLE IF EXISTS recon_stock"], check=False, capture_output=True)


def test_intercompany_invoices_across_two_entities_in_two_currencies(tmp_path: Path) -> None:
    """ACME-DE's intercompany receivables (EUR, by invoice number) against ACME-UK's payables (GBP,
    by supplier reference): converted at the table's rate, within a cent, one never booked by UK."""
    (tmp_path / "de.csv").write_text(
        "invoice,customer,amount,currency\nDE-1001,ACME-UK,1170.00,EUR\n"
        "DE-1002,ACME-UK,585.00,EUR\nDE-1003,ACME-UK,234.00,EUR\n"
    )
    (tmp_path / "uk.csv").write_text(
        "supplier_ref,supplier,gross,ccy\nDE-1001,ACME-DE,1000.00,GBP\nDE-1002,ACME-DE,500.00,GBP\n"
    )
    spec = Reconciliation.model_validate(
        {
            "name": "ic-de-uk",
            "entity": "invoice",
            "key": ["invoice"],
            "labels": {"legacy": "ACME-DE receivables", "cloud": "ACME-UK payables"},
            "legacy": {
                "file": {"path": str(tmp_path / "de.csv"), "records": {"key": ["invoice"]}},
                "map": {"map": {"/invoice": "/invoice", "/amount": "/amount", "/currency": "/currency"}},
            },
            "cloud": {
                "file": {"path": str(tmp_path / "uk.csv"), "records": {"key": ["supplier_ref"]}},
                "map": {"map": {"/invoice": "/supplier_ref", "/amount": "/gross", "/currency": "/ccy"}},
            },
            "currency": {"amount": "/amount", "currency": "/currency", "to": "EUR", "rates": {"GBP": 1.17}},
            "compare": {"tolerance": 0.01, "normalise": {"/amount": ["number"]}},
        }
    )
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, tally = Reconciler(spec, store, tmp_path).run("ACME-DE")
        assert (tally.matched, tally.differing, tally.only) == (2, 0, {"legacy": 1, "cloud": 0})
        [(_, key, _)] = Runs(store).found(run_id, "only_legacy")
        assert key == "DE-1003"  # UK never booked it
    finally:
        store.close()


def test_the_command_line_runs_lists_shows_and_exports(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "t")
    _cloud_orders(cloud)
    cloud.orders[3]["customerId"] = '=HYPERLINK("http://x")'  # a value that would be a formula in a spreadsheet
    routes = tmp_path / "routes"
    routes.mkdir()
    spec = orders_spec(cloud).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec["compare"].pop("mask")
    (routes / "reconcile.yaml").write_text(json.dumps({"reconciliations": [spec]}))
    store = str(tmp_path / "cutover.db")
    runner = CliRunner()
    ran = runner.invoke(
        cli, ["reconcile", "run", "us-orders", "--entity", "ACME-US", "--store", store, "--routes", str(routes)]
    )
    assert ran.exit_code == 0, ran.output
    assert "1,003" in ran.output and "/total" in ran.output and "/customer" in ran.output
    listed = runner.invoke(cli, ["reconcile", "status", "--store", store, "--json"])
    [run] = json.loads(listed.output)
    assert run["state"] == "done" and run["counts"]["differing"] == 2
    shown = runner.invoke(cli, ["reconcile", "show", str(run["id"]), "--store", store])
    assert "SO-00250" in shown.output and "SO-00500" in shown.output
    exported = runner.invoke(cli, ["reconcile", "export", str(run["id"]), "--store", store, "--csv"])
    assert "'=HYPERLINK" in exported.output and "\n=HYPERLINK" not in exported.output
    wrong = runner.invoke(
        cli, ["reconcile", "run", "nope", "--entity", "ACME-US", "--store", store, "--routes", str(routes)]
    )
    assert wrong.exit_code == 2 and "no reconciliation 'nope'" in wrong.output and "Traceback" not in wrong.output


def test_the_last_rungs_wait_for_a_recent_clean_reconciliation(store_location: str) -> None:  # noqa: F811
    """orders.get at canary 100 %: the step to cloud_primary needs the reconciliation's newest run
    for the entity — none yet, one that drifted, one that failed, one too old, one clean."""
    from datetime import UTC, datetime, timedelta

    from cutover.engine import CutoverError, Engine, RouteInfo
    from cutover.gates import Counters, Gate, Reconciled, Verdict
    from cutover.store import minute

    gate = Gate(min_samples=10, min_minutes=0, reconciled=Reconciled(reconciliation="us-orders", max_drift_rate=0.001))
    store = open_store(store_location)
    try:
        engine = Engine(store, [RouteInfo("orders.get", writes=False, has_cloud=True, gate=gate)], ["ACME-US"])
        engine.set("orders.get", "ACME-US", "canary", "r", "ana", percent=100, force=True)
        store.add_evidence(
            "orders.get",
            "ACME-US",
            engine.rule("orders.get", "ACME-US").rung,
            minute(),
            Counters(calls_legacy=50, calls_cloud=50, comparisons=50),
        )
        runs = Runs(store)

        def judged() -> tuple[Verdict, str]:
            verdict = engine.verdict("orders.get", "ACME-US")
            assert verdict is not None
            return verdict.verdict, verdict.reasons[-1]

        assert judged() == (
            Verdict.inconclusive,
            "no run of reconciliation us-orders for ACME-US yet (banyan reconcile run)",
        )
        drifted = runs.start("us-orders", "ACME-US", None)
        runs.finish(drifted, "done", {"drift_rate": 0.004}, [], "")
        assert judged() == (Verdict.failed, f"reconciliation us-orders (run {drifted}) drifted 0.400%, over 0.100%")
        with pytest.raises(CutoverError, match=r"drifted 0\.400%"):
            engine.promote("orders.get", "ACME-US", "the books?", "ana")
        failed = runs.start("us-orders", "ACME-US", None)
        runs.finish(failed, "failed", {}, [], "the cloud stopped")
        assert judged()[0] is Verdict.inconclusive and "failed: run it again" in judged()[1]
        clean = runs.start("us-orders", "ACME-US", None)
        runs.finish(clean, "done", {"drift_rate": 0.0}, [], "")
        with store.transaction() as cursor:  # finished two days ago
            old = (datetime.now(UTC) - timedelta(hours=49)).isoformat()
            store.execute(cursor, "UPDATE recon_runs SET finished = ? WHERE id = ?", (old, clean))
        assert judged()[0] is Verdict.inconclusive and "49 h old" in judged()[1]
        fresh = runs.start("us-orders", "ACME-US", None)
        runs.finish(fresh, "done", {"drift_rate": 0.0005}, [], "")
        assert judged() == (
            Verdict.successful,
            f"reconciliation us-orders (run {fresh}) drifted 0.050%: within the gate",
        )
        assert engine.promote("orders.get", "ACME-US", "the books agree", "ana").mode is Mode.cloud_primary
    finally:
        store.close()


def test_a_repair_goes_through_the_routes_outbox_once_and_the_next_run_is_clean(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run finds SO-00250 drifted and SO-00500 missing in the cloud; repairing it to the cloud
    puts legacy's two records in order-create's outbox, the gateway's deliverer posts them, a second
    repair sends nothing, and the next run finds only the cloud's extra order."""
    import yaml

    from tests.gateway.conftest import running_gateway
    from tests.gateway.test_cutover import wait_until

    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "t")
    _cloud_orders(cloud)
    spec = orders_spec(cloud).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec["repair"] = {"route": "order-create"}
    route = {
        "name": "order-create",
        "writes": True,
        "operation": {"method": "POST", "path": "/v1/{entity}/orders"},
        "entity": {"from": "path", "name": "entity", "values": ["ACME-US"]},
        "legacy": {"backend": {"backend": "http", "url": f"{cloud.url}/legacy-unused", "timeout": 2}},
        "cloud": {
            "backend": {"backend": "http", "url": f"{cloud.url}/api/orders", "timeout": 2},
            "request": {"map": {"/number": "/orderId", "/customerId": "/customer", "/amount/value": "/total"}},
        },
        "cutover": {"mode": "dual_write"},
    }
    store = str(tmp_path / "cutover.db")
    text = yaml.safe_dump({"routes": [route], "reconciliations": [spec]})
    with running_gateway(tmp_path / "gateway", text, store=store):
        routes, runner = str(tmp_path / "gateway" / "routes"), CliRunner()
        ran = runner.invoke(
            cli,
            ["reconcile", "run", "us-orders", "--entity", "ACME-US", "--store", store, "--routes", routes, "--json"],
        )
        first = json.loads(ran.output)["id"]
        dry = runner.invoke(
            cli,
            [
                "reconcile",
                "repair",
                str(first),
                "--store",
                store,
                "--routes",
                routes,
                "--reason",
                "r",
                "--dry-run",
                "--json",
            ],
        )
        assert sorted(json.loads(dry.output)["would_send"]) == ["SO-00250", "SO-00500"] and cloud.keys == []
        for _ in range(2):  # the second sends nothing: each record once
            repaired = runner.invoke(
                cli,
                [
                    "reconcile",
                    "repair",
                    str(first),
                    "--store",
                    store,
                    "--routes",
                    routes,
                    "--reason",
                    "CHG-510 backfill",
                    "--actor",
                    "ana",
                    "--json",
                ],
            )
            assert repaired.exit_code == 0, repaired.output
        assert json.loads(repaired.output) == {"sent": 0, "already": 2, "unmappable": []}
        wait_until(lambda: len(cloud.keys) == 2, 20)
        assert all(key.startswith("reconcile-us-orders-") for key in cloud.keys)
        again = runner.invoke(
            cli,
            ["reconcile", "run", "us-orders", "--entity", "ACME-US", "--store", store, "--routes", routes, "--json"],
        )
        counts = json.loads(again.output)["counts"]
        assert (counts["differing"], counts["only"]) == (0, {"legacy": 0, "cloud": 1})
        opened = open_store(store)
        try:
            audit = [event for event in opened.history() if event.kind == "reconcile_repair"]
        finally:
            opened.close()
        assert sorted((event.actor, event.reason, event.evidence["sent"]) for event in audit) == [
            ("ana", "CHG-510 backfill", 0),
            ("ana", "CHG-510 backfill", 2),
        ]


def test_a_scheduled_run_is_made_once_for_the_fleet_and_its_drift_posted(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways' schedulers at the due time: one makes the run (in a process of its own); it
    drifted over the threshold, so the webhook hears of it once."""
    import asyncio
    from datetime import UTC, datetime

    from reconcile.schedule import Scheduler, due

    _sqlite_erp(tmp_path, monkeypatch)
    monkeypatch.setenv("CLOUD_TOKEN", "t")
    _cloud_orders(cloud)
    spec = orders_spec(cloud, schedule={"cron": "30 3 * * *", "timezone": "America/New_York", "alert_drift": 0.001})
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "r.yaml").write_text(
        json.dumps({"reconciliations": [spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)]})
    )
    posted: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    location = str(tmp_path / "cutover.db")
    at = datetime(2026, 12, 8, 8, 31, tzinfo=UTC)  # 03:31 in New York
    assert due(spec, at) == datetime(2026, 12, 8, 3, 30, tzinfo=at.astimezone(spec_zone(spec)).tzinfo)
    assert due(spec, datetime(2026, 12, 8, 9, 0, tzinfo=UTC)) is None  # half an hour on: not made up now
    stores = [open_store(location) for _ in range(2)]
    try:
        schedulers = [
            Scheduler([spec], store, location, routes, f"http://127.0.0.1:{hook.server_port}/hook") for store in stores
        ]

        async def both() -> list[list[dict[str, object]]]:
            return list(await asyncio.gather(*(scheduler.pass_once(at) for scheduler in schedulers)))

        made = asyncio.run(both())
        assert sorted(len(reports) for reports in made) == [0, 1]
        [report] = [r for reports in made for r in reports]
        assert report["state"] == "done"
        assert [(p["event"], p["reconciliation"], p["entity"]) for p in posted] == [
            ("reconcile_drift", "us-orders", "ACME-US")
        ]
        assert asyncio.run(schedulers[0].pass_once(at)) == []  # made once
    finally:
        for store in stores:
            store.close()
        hook.shutdown()
        hook.server_close()


def spec_zone(spec: Reconciliation) -> Any:
    from zoneinfo import ZoneInfo

    assert spec.schedule is not None
    return ZoneInfo(spec.schedule.timezone)


class SoapOrder(ComplexModel):  # type: ignore[misc]
    __namespace__ = "urn:acme:erp:orders"
    number = Unicode
    customer = Unicode
    total = SoapDecimal


SOAP_ORDERS = [SoapOrder(number=f"SO-{n:05d}", customer=f"CUST-{n % 7}", total=10 + n * 1.25) for n in range(1, 8)]


class ListOrdersService(ServiceBase):  # type: ignore[misc]
    """A legacy ERP's SOAP list operation: one entity's orders, three to a page, the last page short."""

    @rpc(Unicode, Integer, _returns=Array(SoapOrder))  # type: ignore[misc]
    def ListOrders(ctx, entity, page):  # type: ignore[no-untyped-def]
        return SOAP_ORDERS[(page - 1) * 3 : page * 3] if entity == "ACME-US" else []


def test_a_soap_list_operation_against_a_managed_route_with_oauth2(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Legacy: a SOAP ListOrders paged by number (one record a page is an object in XML, none is
    nothing). Cloud: the managed route order-list, through its cloud binding (HTTP, OAuth2 client
    credentials); both through `banyan reconcile run`, the route read from the routes folder."""
    monkeypatch.setenv("CLOUD_SECRET", "client-secret-PLANTED")
    for order in SOAP_ORDERS:
        total = float(order.total) + (3 if order.number == "SO-00004" else 0)
        if order.number != "SO-00006":
            cloud.orders.append({"number": order.number, "customerId": order.customer, "amount": {"value": total}})
    routes = tmp_path / "routes"
    routes.mkdir()
    with legacy_soap_service(ListOrdersService) as soap_url:
        route = {
            "name": "order-list",
            "operation": {"method": "GET", "path": "/v1/{entity}/orders"},
            "entity": {"from": "path", "name": "entity"},
            "legacy": {
                "backend": {
                    "backend": "soap",
                    "url": soap_url,
                    "namespace": "urn:acme:erp:orders",
                    "operation": "ListOrders",
                }
            },
            "cloud": {
                "backend": {
                    "backend": "http",
                    "url": cloud.url + "/api/{entity}/orders?page={page}&per_page=2",
                    "oauth2": {
                        "token_url": cloud.url + "/token",
                        "client_id": "banyan",
                        "client_secret_env": "CLOUD_SECRET",
                    },
                }
            },
        }
        spec = {
            "name": "us-orders",
            "entity": "order",
            "key": ["orderId"],
            "legacy": {
                "soap": {
                    "service": {"url": soap_url, "namespace": "urn:acme:erp:orders", "operation": "ListOrders"},
                    "request": {"entity": "{entity}"},
                    "items": "/ListOrdersResult/SoapOrder",
                    "paging": {"style": "page", "param": "page", "size_param": None},
                },
                "map": {"map": {"/orderId": "/number", "/customer": "/customer", "/total": "/total"}},
            },
            "cloud": {
                "route": {
                    "name": "order-list",
                    "items": "/orders",
                    "paging": {"style": "page", "param": "page", "size_param": None},
                },
                "map": {"map": {"/orderId": "/number", "/customer": "/customerId", "/total": "/amount/value"}},
            },
            "compare": {"tolerance": 0.01, "normalise": {"/total": ["number"]}},
        }
        (routes / "orders.yaml").write_text(json.dumps({"routes": [route], "reconciliations": [spec]}))
        store = str(tmp_path / "cutover.db")
        ran = CliRunner().invoke(
            cli,
            [
                "reconcile",
                "run",
                "us-orders",
                "--entity",
                "ACME-US",
                "--store",
                store,
                "--routes",
                str(routes),
                "--json",
            ],
        )
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.output)
    counts = run["counts"]
    assert counts["read"] == {"legacy": 7, "cloud": 6}
    assert (counts["matched"], counts["differing"], counts["only"]) == (5, 1, {"legacy": 1, "cloud": 0})
    assert cloud.tokens == {"Bearer tok-PLANTED-9"}  # the route's binding fetched its token
    assert "PLANTED" not in ran.output
    opened = open_store(store)
    try:
        assert [key for _, key, _ in Runs(opened).found(run["id"], "differs")] == ["SO-00004"]
        assert [key for _, key, _ in Runs(opened).found(run["id"], "only_legacy")] == ["SO-00006"]
    finally:
        opened.close()


def test_a_source_or_repair_through_a_route_the_folder_lacks_is_refused(tmp_path: Path) -> None:
    from specs.files import RouteError, load_folder

    spec = {
        "name": "us-orders",
        "entity": "order",
        "key": ["orderId"],
        "legacy": {"route": {"name": "order-list"}},
        "cloud": {"file": {"path": "x.csv", "records": {"key": ["id"]}}},
        "repair": {"route": "order-create"},
    }
    (tmp_path / "r.yaml").write_text(json.dumps({"reconciliations": [spec]}))
    with pytest.raises(RouteError) as raised:
        load_folder(tmp_path)
    said = " ".join(raised.value.problems)
    assert "reads through 'order-list', which is no read route" in said
    assert "repairs through 'order-create', which is no write route" in said


def test_a_digest_is_equal_only_where_the_comparator_would_find_no_difference() -> None:
    assert _digest({"a": 15.0, "b": "x"}) == _digest({"b": "x", "a": 15})  # fields in any order, 15.0 is 15
    assert _digest({"a": True}) != _digest({"a": 1})  # the comparator tells true from 1: so does the digest
    assert _digest({"a": 1, "b": 2}) != _digest({"a": 2, "b": 1})
    assert _digest({"l": [{"q": 2.0}], "a": 1}) == _digest({"a": 1, "l": [{"q": 2}]})  # nested: the slow path
    assert _digest({"l": [{"q": 2}]}) != _digest({"l": [{"q": 3}]})


def test_a_table_read_row_by_row_finds_what_the_general_way_finds(tmp_path: Path) -> None:
    """Two SQLite tables over ODBC whose maps only rename columns are made row by row (no dict per
    step); the same with a constant field added to both maps goes the general way. Both runs find
    the same drift, and a row-made record's digest is the one the general way makes of it."""
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    for name, drift in (("legacy", 0), ("cloud", 1)):
        with sqlite3.connect(tmp_path / f"{name}.db") as connection:
            connection.execute("CREATE TABLE stock (sku TEXT, qty NUMERIC, price REAL, counted TEXT)")
            connection.executemany(
                "INSERT INTO stock VALUES (?, ?, ?, ?)",
                [
                    (f"SKU-{n}", n + (drift if n == 7 else 0), 2.5 * n, "2026-12-01")
                    for n in range(1, 50)
                    if not (drift and n == 9)
                ],
            )
    env = {f"{name.upper()}_ODBC": f"DRIVER={{SQLite3}};DATABASE={tmp_path / name}.db" for name in ("legacy", "cloud")}

    def spec(extra: dict[str, str]) -> Reconciliation:
        return Reconciliation.model_validate(
            {
                "name": "stock",
                "entity": "inventory",
                "key": ["sku"],
                **{
                    side: {
                        "odbc": {"connection_env": f"{side.upper()}_ODBC", "query": "SELECT * FROM stock"},
                        "map": {"map": {"/sku": "/sku", "/qty": "/qty", "/price": "/price", **extra}},
                    }
                    for side in ("legacy", "cloud")
                },
            }
        )

    found = []
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        store = open_store(str(tmp_path / "cutover.db"))
        try:
            for extra in ({}, {"/kind": "=stock"}):
                made = spec(extra)
                assert (_Rows.of(made.legacy, made) is not None) == (not extra)
                run_id, tally = Reconciler(made, store, tmp_path).run("ACME-US")
                found.append(
                    ((tally.matched, tally.differing, tally.only), sorted(k for _, k, _ in Runs(store).found(run_id)))
                )
        finally:
            store.close()
    assert found[0] == found[1] == ((47, 1, {"legacy": 1, "cloud": 0}), ["SKU-7", "SKU-9"])
    rows = _Rows({"sku": "sku", "qty": "qty", "price": "price"}, "sku", True)
    assert rows.fits(["sku", "qty", "price"], [str, Decimal, float])
    [(key, digest, _)] = rows.made([("A-1 ", Decimal("15.00"), 2.5)], [1], Tally(), "legacy")
    assert key == "A-1" and digest == _digest({"price": 2.5, "sku": "A-1 ", "qty": 15.0})


def test_a_paged_endpoint_behind_oauth2_client_credentials(
    tmp_path: Path, cloud: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqlite_erp(tmp_path, monkeypatch)
    _cloud_orders(cloud)
    monkeypatch.setenv("CLOUD_SECRET", "client-secret-PLANTED")
    spec = orders_spec(cloud)
    assert spec.cloud.http is not None
    http = spec.cloud.http.model_copy(
        update={
            "token_env": None,
            "oauth2": OAuth2(token_url=cloud.url + "/token", client_id="banyan", client_secret_env="CLOUD_SECRET"),
        }
    )
    spec = spec.model_copy(update={"cloud": spec.cloud.model_copy(update={"http": http})})
    store = open_store(str(tmp_path / "cutover.db"))
    try:
        run_id, tally = Reconciler(spec, store, tmp_path).run("ACME-US")
        row = Runs(store).get(run_id)
        assert row is not None and row.state == "done" and tally.read["cloud"] == 1000
        assert cloud.tokens == {"Bearer tok-PLANTED-9"}  # fetched once, used on every page
        assert "PLANTED" not in json.dumps(row.as_dict())
        monkeypatch.delenv("CLOUD_SECRET")
        run_id, _ = Reconciler(spec, store, tmp_path).run("ACME-US")
        row = Runs(store).get(run_id)
        assert row is not None and row.state == "failed" and "CLOUD_SECRET" in row.reason
    finally:
        store.close()
