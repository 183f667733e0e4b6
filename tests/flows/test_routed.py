"""A flow whose cloud side is an API: each partner file mapped into the canonical order and sent
through a managed write route, and what each side booked read back through a managed read route and
compared, inside a running gateway (legacy takes the files in a folder, as its importer always did)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cutover.runtime import Cutover
from flows.journey import Journey
from flows.runner import FlowRunner
from gateway.state import CUTOVER
from specs.files import RouteError, load_folder
from specs.flows import ladder
from tests.flows.test_runner import PARTNER_A, x12_order
from tests.gateway.conftest import app_in_thread, running_gateway
from tests.gateway.test_cutover import wait_until


@dataclass
class OrderErp:
    """An ERP that books orders by reference and reads them back; `short` confirms less than asked."""

    url: str = ""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    short: bool = False

    def book(self, reference: str, quantity: int) -> dict[str, Any]:
        confirmed = quantity - 1 if self.short else quantity
        return self.orders.setdefault(reference, {"reference": reference, "quantity": confirmed, "status": "open"})

    async def post(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        body = await request.json()
        return web.json_response(self.book(body["reference"], int(body["quantity"])), status=201)

    async def get(self, request: web.Request) -> web.Response:
        found = self.orders.get(request.match_info["reference"])
        return web.json_response(found) if found else web.json_response({"error": "no such order"}, status=404)


@contextmanager
def order_erp() -> Iterator[OrderErp]:
    erp = OrderErp()
    app = web.Application()
    app.router.add_post("/orders", erp.post)
    app.router.add_get("/orders/{reference}", erp.get)
    with app_in_thread(app) as url:
        erp.url = url
        yield erp


def routes_text(root: Path, legacy: str, cloud: str) -> str:
    return textwrap.dedent(f"""\
        routes:
          - name: order-create
            operation: {{method: POST, path: "/v1/{{entity}}/orders"}}
            entity: {{from: path, name: entity, values: [ACME-UK]}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{legacy}/orders", timeout: 2}}}}
            cloud: {{backend: {{backend: http, url: "{cloud}/orders", timeout: 2}}}}
          - name: order-by-reference
            operation: {{method: GET, path: "/v1/{{entity}}/orders/by-reference/{{reference}}"}}
            entity: {{from: path, name: entity, values: [ACME-UK]}}
            key: {{from: path, name: reference}}
            legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{reference}}", timeout: 2}}}}
            cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{reference}}", timeout: 2}}}}
        flows:
          - name: partner-orders
            source: {{folder: "{root}/drop", pattern: "*.x12", settle_seconds: 0}}
            document: x12
            entity: {{from: partner, partners: {{"{PARTNER_A}": ACME-UK}}}}
            legacy: {{intake: "{root}/legacy/in", seen_in: ["{root}/legacy/done"]}}
            cloud:
              route:
                name: order-create
                map: {{map: {{/reference: /ST/0/BEG/03, /quantity: /ST/0/PO1/0/02}}}}
            outcome: {{route: order-by-reference, param: reference, every_seconds: 0.2}}
            cutover: {{mode: dual_write}}
        """)


def legacy_importer(root: Path, erp: OrderErp) -> None:
    """ACME-UK's importer: books each 850 in its folder by PO number and files it away."""
    for path in sorted((root / "legacy/in").glob("*.x12")):
        text = path.read_text()
        po = re.search(r"BEG\*00\*NE\*([^*]+)\*", text)
        quantity = re.search(r"PO1\*\*(\d+)\*", text)
        assert po and quantity
        erp.book(po.group(1), int(quantity.group(1)))
        path.rename(root / "legacy/done" / path.name)


def test_a_file_sent_through_a_route_and_both_bookings_read_back_and_compared(tmp_path: Path) -> None:
    for folder in ("drop", "legacy/in", "legacy/done"):
        (tmp_path / folder).mkdir(parents=True)
    with order_erp() as legacy, order_erp() as cloud:
        cloud.short = True  # the cloud confirms one less: the read-back comparison must see it
        settings = {"store": str(tmp_path / "cutover.db")}
        with running_gateway(tmp_path / "gateway", routes_text(tmp_path, legacy.url, cloud.url), **settings) as gw:
            for n, po in enumerate(("PO-71", "PO-72")):  # written whole, then named (settle_seconds is 0)
                part = tmp_path / "drop" / f"{po}.x12.part"
                part.write_bytes(x12_order(PARTNER_A, po, f"{700 + n:09d}"))
                part.rename(tmp_path / "drop" / f"{po}.x12")

            def booked_and_read() -> bool:
                legacy_importer(tmp_path, legacy)
                journey = Journey(gw.app[CUTOVER].store)
                rows = journey.files("partner-orders")
                return len(rows) == 2 and all(
                    len([a for a in journey.answers(row.id) if a.kind == "record"]) == 2 for row in rows
                )

            wait_until(booked_and_read, 20)
            assert set(cloud.orders) == {"PO-71", "PO-72"} == set(legacy.orders)
            assert len(set(cloud.keys)) == 2 and all(key.startswith("banyan-partner-orders-") for key in cloud.keys)
            journey = Journey(gw.app[CUTOVER].store)
            [row, _] = journey.files("partner-orders")
            route_answer = next(a for a in journey.answers(row.id) if a.kind == "route")
            assert route_answer.side == "cloud" and route_answer.reply["status"] == "open"
            store, rung = gw.app[CUTOVER].store, row.rung or ""

            def counted() -> bool:
                gw.app[CUTOVER].flush()
                return store.evidence("partner-orders", "ACME-UK", rung, 0).comparisons == 2

            wait_until(counted, 5)
            assert store.evidence("partner-orders", "ACME-UK", rung, 0).mismatches == 2  # each: the quantity differs


def test_a_route_the_folder_lacks_is_named_at_load(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    text = routes_text(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    (tmp_path / "routes" / "flows.yaml").write_text(
        text.replace("    name: order-create\n", "    name: order-make\n").replace("param: reference", "param: ref")
    )
    with pytest.raises(RouteError) as refused:
        load_folder(tmp_path / "routes")
    said = "\n".join(refused.value.problems)
    assert "sends through 'order-make', which is no write route" in said
    assert "no read route of this folder with a {ref} parameter" in said


def test_outside_a_gateway_a_route_side_waits(tmp_path: Path) -> None:
    """FlowRunner without the gateway's routes: the file is kept, never lost, and said why."""
    for folder in ("drop", "legacy/in", "legacy/done"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "all.yaml").write_text(routes_text(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9"))
    declared = load_folder(tmp_path / "routes")
    [flow] = declared.flows
    cutover = Cutover(str(tmp_path / "cutover.db"), *ladder(declared.routes, declared.flows))
    try:
        (tmp_path / "drop" / "PO-9.x12").write_bytes(x12_order(PARTNER_A, "PO-9", "000000709"))
        FlowRunner([flow], cutover).pass_once(flow)
        [row] = Journey(cutover.store).files(flow.name)
        assert row.state == "delivering" and "only inside a gateway" in row.reason
        assert (tmp_path / "drop" / "PO-9.x12").exists()
    finally:
        cutover.close()
