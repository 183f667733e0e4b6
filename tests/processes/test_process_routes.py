"""Process routes end to end: a real gateway (SQLite and PostgreSQL stores) in front of a small
REST ERP that counts what it is asked; the process's steps go through the routes' own path."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from cutover.store import open_store
from gateway.state import SETTINGS
from processes.book import Book
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures
from tests.gateway.conftest import Gateway, app_in_thread, running_gateway

STOCK = {"ACME-DE": {"SKU-1": 5}, "ACME-UK": {"SKU-1": 40}, "ACME-US": {"SKU-1": 0}}


@dataclass
class Erp:
    """Each entity's stock, its orders, and every booking and cancellation it was asked for."""

    url: str = ""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    bookings: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    refuse_customers: set[str] = field(default_factory=set)
    hold: set[str] = field(default_factory=set)  # customers on credit hold
    lock: threading.Lock = field(default_factory=threading.Lock)


def erp_app(erp: Erp) -> web.Application:
    async def terms(request: web.Request) -> web.Response:
        customer = request.match_info["customer"]
        return web.json_response({"customer": customer, "creditHold": customer in erp.hold, "terms": "NET30"})

    async def stock(request: web.Request) -> web.Response:
        entity, sku = request.match_info["entity"], request.match_info["sku"]
        return web.json_response({"sku": sku, "available": STOCK[entity].get(sku, 0)})

    async def book(request: web.Request) -> web.Response:
        body = await request.json()
        entity = request.match_info["entity"]
        if body["customer"] in erp.refuse_customers:
            return web.json_response({"error": f"customer {body['customer']} is blocked in {entity}"}, status=422)
        with erp.lock:
            erp.bookings[body["orderNumber"]] += 1
            order_id = f"{entity}-{len(erp.orders) + 1}"
            erp.orders[order_id] = {"orderId": order_id, "status": "booked", "entity": entity, **body}
        return web.json_response({"orderId": order_id, "status": "booked"}, status=201)

    async def cancel(request: web.Request) -> web.Response:
        order_id = request.match_info["order"]
        with erp.lock:
            erp.cancels[order_id] += 1
            if order_id not in erp.orders:
                return web.json_response({"error": f"no order {order_id}"}, status=404)
            erp.orders[order_id]["status"] = "cancelled"
        return web.json_response({"orderId": order_id, "status": "cancelled"})

    async def invoice(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("amount", 0) > 10_000:
            return web.json_response({"error": "over the credit limit"}, status=422)
        return web.json_response({"invoice": f"INV-{body['orderId']}", "status": "posted"}, status=201)

    app = web.Application()
    app.router.add_get("/crm/customers/{customer}/terms", terms)
    app.router.add_get("/erp/{entity}/stock/{sku}", stock)
    app.router.add_post("/erp/{entity}/orders", book)
    app.router.add_post("/erp/{entity}/orders/{order}/cancel", cancel)
    app.router.add_post("/erp/{entity}/invoices", invoice)
    return app


def routes(erp: str) -> str:
    return textwrap.dedent(
        f"""\
        routes:
          - name: customer-terms
            operation: {{method: GET, path: "/v1/{{entity}}/customers/{{customer}}/terms"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: customer}}
            legacy: {{backend: {{backend: http, url: "{erp}/crm/customers/{{customer}}/terms"}}}}
          - name: stock
            operation: {{method: GET, path: "/v1/{{entity}}/stock/{{sku}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: sku}}
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/stock/{{sku}}"}}}}
          - name: order-book
            operation: {{method: POST, path: "/v1/{{entity}}/orders"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: json, pointer: /orderNumber}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/orders"}}}}
          - name: order-cancel
            operation: {{method: POST, path: "/v1/{{entity}}/orders/{{orderId}}/cancel"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/orders/{{orderId}}/cancel"}}}}
          - name: invoice-post
            operation: {{method: POST, path: "/v1/{{entity}}/invoices"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: json, pointer: /orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/invoices"}}}}
        processes:
          - name: group-order
            owner: {{team: order-to-cash}}
            operation:
              method: POST
              path: /v1/group-orders
              request:
                type: object
                required: [orderNumber, customer, sku, qty]
                properties:
                  orderNumber: {{type: string}}
                  customer: {{type: string}}
                  sku: {{type: string}}
                  qty: {{type: integer, minimum: 1}}
                  amount: {{type: number}}
            entity: /steps/stock/entity
            steps:
              - name: terms
                call: customer-terms
                entity: =ACME-DE
                params: {{customer: /request/customer}}
                refuse: {{pointer: /steps/terms/answer/creditHold, equals: true, reason: the customer is on credit hold}}
              - name: stock
                call: stock
                each: [ACME-DE, ACME-UK, ACME-US]
                params: {{sku: /request/sku}}
                choose: {{pointer: /available, at_least: /request/qty, otherwise: no entity holds the stock}}
              - name: book
                call: order-book
                entity: /steps/stock/entity
                body: {{map: {{orderNumber: /request/orderNumber, customer: /request/customer, sku: /request/sku, qty: /request/qty}}}}
                event: com.acme.order.routed
                compensate:
                  call: order-cancel
                  entity: /steps/book/entity
                  params: {{orderId: /steps/book/answer/orderId}}
              - name: invoice
                call: invoice-post
                entity: /steps/book/entity
                body: {{map: {{orderId: /steps/book/answer/orderId, amount: /request/amount}}, optional: [amount]}}
            result:
              map: {{orderId: /steps/book/answer/orderId, entity: /steps/book/entity, invoice: /steps/invoice/answer/invoice}}
        """
    )


@pytest.fixture
def erp() -> Iterator[Erp]:
    made = Erp()
    with app_in_thread(erp_app(made)) as url:
        made.url = url
        yield made


@pytest.fixture
def gateway(erp: Erp, tmp_path: Path, store_location: str) -> Iterator[Gateway]:  # noqa: F811
    with running_gateway(tmp_path, routes(erp.url), store=store_location) as running:
        yield running


def order(number: str, customer: str = "C-1", qty: int = 10, amount: float = 100.0) -> dict[str, Any]:
    return {"orderNumber": number, "customer": customer, "sku": "SKU-1", "qty": qty, "amount": amount}


def test_a_group_order_is_booked_where_the_stock_is(gateway: Gateway, erp: Erp) -> None:
    answer = requests.post(f"{gateway.url}/v1/group-orders", json=order("GO-1"), headers=gateway.headers(), timeout=30)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["entity"] == "ACME-UK"  # DE holds 5 of the 10, US none: UK fulfils
    assert body["invoice"] == f"INV-{body['orderId']}"
    assert erp.bookings == Counter({"GO-1": 1})
    status = requests.get(f"{gateway.url}{answer.headers['Location']}", headers=gateway.headers(), timeout=10)
    told = status.json()
    assert told["state"] == "completed" and told["entity"] == "ACME-UK"
    calls = {call["call"]: call for call in told["calls"]}
    assert set(calls) == {"terms", "stock[ACME-DE]", "stock[ACME-UK]", "stock[ACME-US]", "book", "invoice"}
    assert all(call["state"] == "done" and call["served_by"] == "legacy" for call in calls.values())
    # another consumer cannot read it
    other = requests.get(f"{gateway.url}{answer.headers['Location']}", headers=gateway.headers("de_only"), timeout=10)
    assert other.status_code == 404


def test_a_retried_call_with_the_same_key_starts_one_instance(gateway: Gateway, erp: Erp) -> None:
    headers = gateway.headers(**{"Idempotency-Key": "group-order-7"})
    first = requests.post(f"{gateway.url}/v1/group-orders", json=order("GO-7"), headers=headers, timeout=30)
    again = requests.post(f"{gateway.url}/v1/group-orders", json=order("GO-7"), headers=headers, timeout=30)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert erp.bookings == Counter({"GO-7": 1})


def test_a_credit_hold_refuses_before_anything_is_booked(gateway: Gateway, erp: Erp) -> None:
    erp.hold.add("C-HOLD")
    answer = requests.post(
        f"{gateway.url}/v1/group-orders", json=order("GO-2", "C-HOLD"), headers=gateway.headers(), timeout=30
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["title"] == "Process refused" and "credit hold" in problem["detail"]
    assert not erp.bookings


def test_no_entity_with_the_stock_refuses_with_the_processes_reason(gateway: Gateway, erp: Erp) -> None:
    answer = requests.post(
        f"{gateway.url}/v1/group-orders", json=order("GO-3", qty=100), headers=gateway.headers(), timeout=30
    )
    assert answer.status_code == 422 and "no entity holds the stock" in answer.json()["detail"]
    assert not erp.bookings


def test_a_refused_later_step_takes_the_booking_back(gateway: Gateway, erp: Erp) -> None:
    answer = requests.post(
        f"{gateway.url}/v1/group-orders", json=order("GO-4", amount=50_000), headers=gateway.headers(), timeout=30
    )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert "over the credit limit" in problem["detail"] and "taken back: book" in problem["detail"]
    [(order_id, booked)] = erp.orders.items()
    assert booked["status"] == "cancelled" and erp.cancels == Counter({order_id: 1})
    book = Book(open_store(str(gateway.app[SETTINGS].store)))
    [instance] = book.page("group-order")
    assert instance.state == "refused"
    assert [call.call for call in book.calls(instance.id)][-1] == "undo:book"
    book.store.close()


def test_a_step_the_consumer_may_not_call_directly_is_still_made_for_it(gateway: Gateway, erp: Erp) -> None:
    """A process is its own API: a key scoped to it alone runs its steps, within the key's entities."""
    answer = requests.post(
        f"{gateway.url}/v1/group-orders", json=order("GO-5"), headers=gateway.headers("de_only"), timeout=30
    )
    # de_only may serve ACME-DE only: the terms step (ACME-DE) passes, UK's and US's stock are not asked
    detail = answer.json()["detail"]
    assert answer.status_code == 422 and "no entity holds the stock" in detail
    assert "ACME-UK: stock: 403 Entity not allowed: your key is not scoped to legal entity ACME-UK" in detail
    assert not erp.bookings


def test_a_forged_step_token_is_refused(gateway: Gateway) -> None:
    answer = requests.get(
        f"{gateway.url}/v1/ACME-DE/stock/SKU-1",
        headers={"X-Banyan-Step": "guessed", "X-Banyan-On-Behalf": "webshop"},
        timeout=10,
    )
    assert answer.status_code == 401


def test_an_accepted_process_answers_202_and_its_status_url_tells_the_end(erp: Erp, tmp_path: Path) -> None:
    text = routes(erp.url).replace("    steps:\n", "    respond: accepted\n    steps:\n", 1)
    with running_gateway(tmp_path, text, store=str(tmp_path / "store.db")) as gateway:
        answer = requests.post(
            f"{gateway.url}/v1/group-orders", json=order("GO-6"), headers=gateway.headers(), timeout=30
        )
        assert answer.status_code == 202 and answer.headers["Location"].startswith("/processes/")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            told = requests.get(
                f"{gateway.url}{answer.headers['Location']}", headers=gateway.headers(), timeout=10
            ).json()
            if told["state"] != "running":
                break
            time.sleep(0.1)
        assert told["state"] == "completed" and told["result"]["entity"] == "ACME-UK"
