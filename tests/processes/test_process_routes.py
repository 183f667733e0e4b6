"""Process routes end to end: a real gateway (SQLite and PostgreSQL stores) in front of a small
REST ERP that counts what it is asked; the process's steps go through the routes' own path."""

from __future__ import annotations

import json
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
from typer.testing import CliRunner

from cli.main import app
from cutover.store import open_store
from gateway.state import SETTINGS
from inbox.collect import collect
from inbox.desk import Desk
from inbox.store import Inbox
from processes.book import Book
from specs.files import load_folder
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
    invoices: Counter[str] = field(default_factory=Counter)
    refuse_customers: set[str] = field(default_factory=set)
    hold: set[str] = field(default_factory=set)  # customers on credit hold
    broken: set[str] = field(default_factory=set)  # orders whose invoice the ERP fails on (a 500)
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

    async def by_number(request: web.Request) -> web.Response:
        entity, number = request.match_info["entity"], request.match_info["number"]
        with erp.lock:
            found = [o for o in erp.orders.values() if o["entity"] == entity and o["orderNumber"] == number]
        if not found:
            return web.json_response({"error": f"no order {number}"}, status=404)
        return web.json_response({"orderId": found[0]["orderId"], "status": found[0]["status"]})

    async def invoice(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("amount", 0) > 10_000:
            return web.json_response({"error": "over the credit limit"}, status=422)
        if erp.orders.get(body["orderId"], {}).get("orderNumber") in erp.broken:
            return web.json_response({"error": "internal error"}, status=500)
        with erp.lock:
            erp.invoices[body["orderId"]] += 1
        return web.json_response({"invoice": f"INV-{body['orderId']}", "status": "posted"}, status=201)

    async def invoice_of(request: web.Request) -> web.Response:
        order_id = request.match_info["order"]
        if not erp.invoices[order_id]:
            return web.json_response({"error": f"no invoice for {order_id}"}, status=404)
        return web.json_response({"invoice": f"INV-{order_id}", "status": "posted"})

    app = web.Application()
    app.router.add_get("/crm/customers/{customer}/terms", terms)
    app.router.add_get("/erp/{entity}/stock/{sku}", stock)
    app.router.add_post("/erp/{entity}/orders", book)
    app.router.add_post("/erp/{entity}/orders/{order}/cancel", cancel)
    app.router.add_post("/erp/{entity}/invoices", invoice)
    app.router.add_get("/erp/{entity}/orders/by-number/{number}", by_number)
    app.router.add_get("/erp/{entity}/invoices/{order}", invoice_of)
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
          - name: order-by-number
            operation: {{method: GET, path: "/v1/{{entity}}/orders/by-number/{{number}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: number}}
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/orders/by-number/{{number}}"}}}}
          - name: invoice-of-order
            operation: {{method: GET, path: "/v1/{{entity}}/invoices/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: orderId}}
            legacy: {{backend: {{backend: http, url: "{erp}/erp/{{entity}}/invoices/{{orderId}}"}}}}
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
                check:
                  call: order-by-number
                  params: {{number: /request/orderNumber}}
                  found: {{pointer: /orderId, present: true}}
              - name: invoice
                call: invoice-post
                entity: /steps/book/entity
                body: {{map: {{orderId: /steps/book/answer/orderId, amount: /request/amount}}, optional: [amount]}}
                check:
                  call: invoice-of-order
                  params: {{orderId: /steps/book/answer/orderId}}
                  found: {{pointer: /invoice, present: true}}
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


def test_an_instance_in_doubt_waits_in_the_inbox_for_its_owner_and_the_cli_shows_it(gateway: Gateway, erp: Erp) -> None:
    erp.broken.add("GO-9")
    answer = requests.post(f"{gateway.url}/v1/group-orders", json=order("GO-9"), headers=gateway.headers(), timeout=30)
    assert answer.status_code == 502 and answer.json()["title"] == "Process in doubt"
    instance_id = answer.headers["X-Process-Instance"]
    store = open_store(str(gateway.app[SETTINGS].store))
    try:
        [calls] = [Book(store).calls(instance_id)]
        invoice = next(call for call in calls if call.call == "invoice")
        assert invoice.state == "in_doubt" and "500" in invoice.reason  # checked, sent once more, still unknown
        collect(store, load_folder(gateway.routes))
        [item] = Inbox(store).page(kind="process_in_doubt")
        assert item.owner == "order-to-cash" and item.subject == "group-order" and item.key == instance_id
        shown = CliRunner().invoke(
            app, ["processes", "show", instance_id, "--store", str(gateway.app[SETTINGS].store)], env={"COLUMNS": "250"}
        )
        assert shown.exit_code == 0, shown.output
        assert "in_doubt" in shown.output and "undo" not in shown.output and "invoice-post" in shown.output
        listed = CliRunner().invoke(
            app, ["processes", "list", "--state", "in_doubt", "--json", "--store", str(gateway.app[SETTINGS].store)]
        )
        assert [row["id"] for row in json.loads(listed.output)] == [instance_id]
        # the person who looked settles it; the next sync keeps it resolved
        Desk(store, load_folder(gateway.routes)).act(item.id, "completed", "ana", "invoice found posted by hand")
        assert Book(store).get(instance_id).state == "completed"  # type: ignore[union-attr]
        collect(store, load_folder(gateway.routes))
        assert not Inbox(store).page(kind="process_in_doubt")
    finally:
        store.close()
    admin = requests.get(f"{gateway.url}/admin/processes/{instance_id}", headers={"X-Admin-Key": "x"}, timeout=10)
    assert admin.status_code in (401, 403, 404)  # no admin key on this gateway: never an open door


def test_a_process_declared_while_the_gateway_runs_is_served_without_a_restart(erp: Erp, tmp_path: Path) -> None:
    text = routes(erp.url)
    only_routes = text.split("processes:\n", 1)[0]
    with running_gateway(tmp_path, only_routes, store=str(tmp_path / "store.db")) as gateway:
        url = f"{gateway.url}/v1/group-orders"
        assert requests.post(url, json=order("GO-10"), headers=gateway.headers(), timeout=10).status_code == 404
        (gateway.routes / "orders.yaml").write_text(text)  # the reloader reads the folder every second

        def served() -> bool:
            return requests.post(url, json=order("GO-10"), headers=gateway.headers(), timeout=30).status_code != 404

        deadline = time.monotonic() + 20
        while not served() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert erp.bookings == Counter({"GO-10": 1})


def test_a_body_that_breaks_the_processes_schema_is_refused_before_any_step(gateway: Gateway, erp: Erp) -> None:
    url = f"{gateway.url}/v1/group-orders"
    wrong = requests.post(url, json={"orderNumber": "GO-11", "qty": 0}, headers=gateway.headers(), timeout=10)
    assert wrong.status_code == 422 and any("customer" in e for e in wrong.json()["errors"])
    text = requests.post(url, data="orderNumber=GO-11", headers=gateway.headers(), timeout=10)
    assert text.status_code == 415
    deep = requests.post(
        url,
        data="[" * 20_000 + "]" * 20_000,
        headers=gateway.headers(**{"Content-Type": "application/json"}),
        timeout=10,
    )
    assert deep.status_code == 400
    assert not erp.bookings and not Book(open_store(str(gateway.app[SETTINGS].store))).page("group-order")
