"""Business SLOs: the burn-rate arithmetic of the SRE workbook's multiwindow alerts, one webhook call
per fast burn for the fleet, and the gateway measuring its routes' SLOs per entity on real calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from cli.main import app as cli
from cutover import slos
from cutover.store import Store, minute, open_store
from legacy_adapters import memory
from tests.gateway.conftest import running_gateway

ORDERS = slos.Objective("order-create", "booked", "success", 99.0, 28)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "cutover.db"))
    yield opened
    opened.close()


def test_burn_rates_over_the_workbooks_windows(store: Store) -> None:
    now = time.time()
    current = minute(now)
    # a quiet month (1 bad in 10,000), then the last 10 minutes going wrong: a fifth of the calls bad
    slos.add(store, {("order-create", "ACME-US", "booked"): (9_999, 10_000)}, current - 3 * 24 * 60)
    for back in range(10):
        slos.add(store, {("order-create", "ACME-US", "booked"): (80, 100)}, current - back)
    slos.add(store, {("order-create", "ACME-DE", "booked"): (1000, 1000)}, current)
    [us, de] = slos.standings(store, [ORDERS], now)  # the worst burn first
    assert (us.entity, de.entity) == ("ACME-US", "ACME-DE")
    assert us.burn["5m"] == pytest.approx(20.0)  # 20 % bad over a 1 % budget
    assert us.burn["1h"] == pytest.approx(20.0) and us.burn["6h"] == pytest.approx(20.0)
    assert us.alert == "fast"
    assert us.total == 11_000 and us.sli == pytest.approx(100 * 10_799 / 11_000)
    assert us.budget_left == pytest.approx(1 - (201 / 11_000) / 0.01)  # overspent: below zero
    assert de.alert == "" and de.burn["1h"] == 0 and de.budget_left == 1
    assert slos.standings(store, [], now) == []  # an SLO no route declares is not shown


class Hook:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_fast_burn_is_told_once_for_the_fleet_and_again_after_it_stopped(store: Store, tmp_path: Path) -> None:
    hook = Hook()
    now = time.time()
    for back in range(6):
        slos.add(store, {("order-create", "ACME-US", "booked"): (50, 100)}, minute(now) - back)
    other = open_store(str(tmp_path / "cutover.db"))  # a second gateway's view of the same store
    try:
        told = slos.alert(store, [ORDERS], hook.url, now) + slos.alert(other, [ORDERS], hook.url, now)
    finally:
        other.close()
    assert len(told) == 1 and len(hook.calls) == 1
    assert hook.calls[0]["event"] == "slo_fast_burn" and hook.calls[0]["entity"] == "ACME-US"
    assert hook.calls[0]["burn"]["1h"] == pytest.approx(50.0)
    later = now + 10 * 60  # no bad calls for 10 minutes: the 5-minute window has nothing: not burning
    assert slos.alert(store, [ORDERS], hook.url, later) == []
    for back in range(6):
        slos.add(store, {("order-create", "ACME-US", "booked"): (50, 100)}, minute(later) + 1 - back)
    assert len(slos.alert(store, [ORDERS], hook.url, later + 60)) == 1 and len(hook.calls) == 2


ROUTES = """\
routes:
  - name: order-put
    operation: {method: PUT, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE, ACME-US]}
    key: {from: path, name: orderId}
    writes: true
    slo:
      - {name: booked-in-time, kind: latency, threshold: 0.1, objective: 99.5}
      - {name: booked, kind: success, objective: 99.9, window: 7d}
      - {name: refused, kind: exceptions, objective: 99}
    legacy: {backend: {backend: memory, system: erp}}
    entities:
      ACME-US: {legacy: {backend: {backend: memory, system: erp-us, latency: 0.2}}}
  - name: stock
    operation: {method: GET, path: "/v1/{entity}/stock/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE, ACME-US]}
    key: {from: path, name: orderId}
    slo:
      - {name: fresh, kind: freshness, field: /changedAt, threshold: 60, objective: 99}
    legacy: {backend: {backend: memory, system: erp}}
"""


def test_the_gateway_measures_each_entitys_slos_on_its_calls(tmp_path: Path) -> None:
    memory.forget()
    store = str(tmp_path / "cutover.db")
    with running_gateway(tmp_path, ROUTES, store=store) as gateway:

        def put(entity: str, order: str, body: dict[str, Any]) -> int:
            return requests.put(
                f"{gateway.url}/v1/{entity}/orders/{order}", json=body, headers=gateway.headers(), timeout=10
            ).status_code

        assert [put("ACME-DE", f"PO-{n}", {"qty": 1}) for n in range(4)] == [200] * 4
        assert [put("ACME-US", f"PO-{n}", {"qty": 1}) for n in range(2)] == [200] * 2  # 0.2 s: too slow
        memory.system("erp").down = True
        assert put("ACME-DE", "PO-9", {"qty": 1}) == 503  # not booked: bad for both
        memory.system("erp").refuse, memory.system("erp").down = "credit hold", False
        assert put("ACME-DE", "PO-10", {"qty": 1}) == 422  # the consumer's request: counts for neither
        memory.system("erp").refuse = None
        # the stock figures: one changed a moment ago, one three minutes ago
        fresh, stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "2026-01-01T00:00:00+00:00"
        put("ACME-DE", "SKU-1", {"changedAt": fresh})
        put("ACME-DE", "SKU-2", {"changedAt": stale})
        for sku in ("SKU-1", "SKU-2"):
            assert (
                requests.get(f"{gateway.url}/v1/ACME-DE/stock/{sku}", headers=gateway.headers(), timeout=10).status_code
                == 200
            )
        openmetrics = requests.get(
            f"{gateway.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5
        ).text
        time.sleep(1.5)  # the counts reach the store with the evidence, once a second
    memory.forget()
    line = next(
        line
        for line in openmetrics.splitlines()
        if line.startswith('banyan_slo_events_total{entity="ACME-US",result="bad",route="order-put"')
    )
    assert ' # {trace_id="' in line  # the exemplar: a trace to look at
    result = CliRunner().invoke(
        cli, ["slo", "status", "--store", store, "--routes", str(tmp_path / "routes"), "--json"]
    )
    assert result.exit_code == 0, result.output
    found = {(s["entity"], s["slo"]): s for s in json.loads(result.output)}
    assert (found[("ACME-DE", "booked-in-time")]["good"], found[("ACME-DE", "booked-in-time")]["total"]) == (6, 7)
    assert (found[("ACME-US", "booked-in-time")]["good"], found[("ACME-US", "booked-in-time")]["total"]) == (0, 2)
    assert (found[("ACME-DE", "booked")]["good"], found[("ACME-DE", "booked")]["total"]) == (6, 7)
    assert found[("ACME-US", "booked")]["sli"] == 100 and found[("ACME-DE", "booked")]["days"] == 7
    assert (found[("ACME-DE", "fresh")]["good"], found[("ACME-DE", "fresh")]["total"]) == (1, 2)
    # the business refusal is an exception; the ERP being down is not (that is the success SLO's)
    assert (found[("ACME-DE", "refused")]["good"], found[("ACME-DE", "refused")]["total"]) == (6, 7)
    assert found[("ACME-US", "booked-in-time")]["alert"] == "fast"  # every call too slow: 200× the budget
    table = CliRunner().invoke(cli, ["slo", "status", "--store", store, "--routes", str(tmp_path / "routes")])
    assert table.exit_code == 0 and "Business SLOs" in table.output and "ACME-US" in table.output


def test_an_slo_must_say_what_it_needs(tmp_path: Path) -> None:
    from specs.files import RouteError, load_routes

    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "r.yaml").write_text(ROUTES.replace("field: /changedAt, ", ""))
    with pytest.raises(RouteError, match="a freshness SLO needs field"):
        load_routes(folder)
    (folder / "r.yaml").write_text(ROUTES.replace("threshold: 0.1, ", ""))
    with pytest.raises(RouteError, match="a latency SLO needs threshold"):
        load_routes(folder)
