"""The demo distributor's running systems, on loopback, holding the same master data.

- ACME-DE's ERP is a SOAP order service (spyne; its WSDL at `?wsdl`): CreateOrder, GetOrderStatus,
  GetStock.
- ACME-UK's ERP takes files: an importer books order files from its inbound folder (JSON from the
  gateway, CSV and X12 850 from trading partners), writes an acknowledgement (a JSON `.ack` named
  after the file's correlation id; a 997 for X12) and moves the file to processed/ or error/.
  Shipment confirmations land in a folder it books the same way.
- ACME-US's ERP is a SQLite database: the gateway reads stock and books orders over ODBC, and the
  database's triggers copy every change into the export tables a nightly job reads.
- The CRM is the legacy customer master, over HTTP/JSON.
- The cloud ERP is one REST/JSON API for every entity: customers, items, stock, orders, shipments,
  invoices, migrated from the legacy systems so both sides should answer alike. `release()` ships a
  version whose stock figure forgets reservations for one entity: the wrong field the cutover has to
  catch.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import demo_edi

ENTITIES = {"ACME-DE": ("EUR", "DE-HH-01"), "ACME-UK": ("GBP", "UK-MK-01"), "ACME-US": ("USD", "US-NJ-01")}
ITEMS = [
    "Stretch film 500 mm x 300 m",
    "Nitrile gloves L, box of 100",
    "Cable ties 300 mm, bag of 500",
    "Pallet label A5, roll of 500",
    "Corrugated box 600x400x400",
    "Packing tape 48 mm brown",
    "Safety cutter, retractable",
    "Bubble wrap 1000 mm x 100 m",
    "Hi-vis vest, size XL",
    "Void fill paper 50 cm, roll",
    "Strapping PP 12 mm x 3000 m",
    "Thermal labels 100x150, 1000",
    "Dust masks FFP2, box of 20",
    "Pallet 1200x800 heat-treated",
    "Edge protector 35x35x1200",
    "Cleaning wipes, tub of 150",
    "Hand trolley 200 kg",
    "Barcode scanner, cordless",
    "Shelf bin 300x200x150 blue",
    "Floor marking tape yellow",
]
CUSTOMERS = [
    "Globex",
    "Initech",
    "Umbrella Retail",
    "Stark Supplies",
    "Wayne Hardware",
    "Hooli Stores",
    "Vandelay Import",
    "Cyberdyne Parts",
    "Soylent Foods",
    "Tyrell Trading",
    "Wonka Confectionery",
    "Oceanic Freight",
]
SUFFIX = {"ACME-DE": " GmbH", "ACME-UK": " Ltd", "ACME-US": " Inc."}
STATUSES = ["open", "picked", "shipped", "invoiced"]


@dataclass
class Estate:
    """The master data every system of the distributor starts from (the cloud's copy is a migration of it)."""

    prices: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # entity → sku → unit price
    stock: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # entity → sku → (on hand, reserved)
    customers: dict[str, dict[str, str]] = field(default_factory=dict)  # entity → id → name
    orders: dict[str, dict[str, str]] = field(default_factory=dict)  # entity → order id → status

    @classmethod
    def seeded(cls, seed: int = 20261127, orders: int = 600) -> Estate:
        rng = random.Random(seed)
        estate = cls()
        base = {f"SKU-{1000 + n}": Decimal(rng.randint(150, 25000)) / 100 for n in range(len(ITEMS))}
        rate = {"ACME-DE": Decimal("1"), "ACME-UK": Decimal("0.86"), "ACME-US": Decimal("1.08")}
        for entity in ENTITIES:
            estate.prices[entity] = {
                sku: (price * rate[entity]).quantize(Decimal("0.01")) for sku, price in base.items()
            }
            estate.stock[entity] = {
                sku: (rng.randint(0, 900), rng.choice([0, 0, rng.randint(1, 40)])) for sku in base
            }  # about a third of the items have stock reserved for open orders
            prefix = entity[-2:]
            estate.customers[entity] = {
                f"C-{prefix}-{n:04d}": f"{name}{SUFFIX[entity]}" for n, name in enumerate(CUSTOMERS, start=1)
            }
            estate.orders[entity] = {
                f"SO-{prefix}-{n:05d}": rng.choices(STATUSES, weights=[2, 1, 3, 6])[0] for n in range(1, orders + 1)
            }
        return estate

    def available(self, entity: str, sku: str) -> int:
        on_hand, reserved = self.stock[entity][sku]
        return on_hand - reserved

    def total(self, entity: str, lines: Iterable[dict[str, Any]]) -> float:
        prices = self.prices[entity]
        return float(sum((prices.get(line["sku"], Decimal(0)) * int(line["qty"]) for line in lines), Decimal(0)))


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class Service:
    """A server on a loopback port, in a daemon thread."""

    server: Any
    url: str

    def _start(self, server: Any) -> None:
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GermanErp(Service):
    """ACME-DE's SOAP order service, a real SOAP stack (spyne) with its WSDL."""

    def __init__(self, estate: Estate) -> None:
        from spyne import Application, Fault, Integer, ServiceBase, Unicode, rpc
        from spyne.protocol.soap import Soap11
        from spyne.server.wsgi import WsgiApplication

        orders, stock, customers = estate.orders["ACME-DE"], estate, estate.customers["ACME-DE"]
        numbers = itertools.count(len(orders) + 1)
        lock = threading.Lock()

        class OrderService(ServiceBase):  # type: ignore[misc]
            @rpc(Unicode, Integer, _returns=Unicode)  # type: ignore[misc]
            def CreateOrder(ctx, customer, quantity):  # type: ignore[no-untyped-def]
                if customer not in customers:
                    raise Fault(faultcode="Client", faultstring=f"unknown customer {customer}")
                with lock:
                    order = f"SO-DE-{next(numbers):05d}"
                    orders[order] = "open"
                return order

            @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
            def GetOrderStatus(ctx, order_id):  # type: ignore[no-untyped-def]
                if order_id not in orders:
                    raise Fault(faultcode="Client", faultstring=f"no order {order_id}")
                return orders[order_id]

            @rpc(Unicode, _returns=Integer)  # type: ignore[misc]
            def GetStock(ctx, sku):  # type: ignore[no-untyped-def]
                if sku not in stock.stock["ACME-DE"]:
                    raise Fault(faultcode="Client", faultstring=f"no item {sku}")
                return stock.available("ACME-DE", sku)

        application = Application(
            [OrderService], tns="urn:acme:erp:orders", in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
        )
        # spyne logs each Client fault (an unknown order: the consumer's mistake, answered as a Fault)
        # with a traceback; that is the service's answer, not its failure. Server faults still log.
        logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
        server = make_server("127.0.0.1", 0, WsgiApplication(application), _ThreadingWSGIServer, _Quiet)
        self.url = f"http://127.0.0.1:{server.server_port}/"
        self._start(server)


class UkImporter:
    """ACME-UK's file importer: books order files, acknowledges them, files them away; answers stock
    enquiries the same way, a file in and a reply file out (figures as text, as files carry them)."""

    def __init__(self, estate: Estate, drops: Path) -> None:
        self.estate = estate
        self.inbound, self.acks = drops / "uk" / "orders" / "in", drops / "uk" / "orders" / "ack"
        self.shipments = drops / "shipments" / "in"
        self.enquiries, self.answers = drops / "uk" / "stock" / "in", drops / "uk" / "stock" / "ack"
        for folder in (
            self.inbound,
            self.acks,
            self.shipments,
            self.inbound.parent / "processed",
            self.inbound.parent / "error",
            self.inbound.parent / "out",
            self.enquiries,
            self.answers,
            self.enquiries.parent / "processed",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        self.numbers = itertools.count(len(estate.orders["ACME-UK"]) + 1)
        self.booked = {"json": 0, "csv": 0, "x12": 0, "edifact": 0, "shipments": 0, "errors": 0}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for folder in (self.inbound, self.shipments, self.enquiries):
                for path in sorted(folder.iterdir()):
                    if path.name.startswith(".") or not path.is_file():
                        continue  # still being written: the writer renames it when complete
                    self._import(path)

    def _import(self, path: Path) -> None:
        done = path.parent.parent / "processed"
        try:
            if path.parent == self.shipments:
                json.loads(path.read_bytes())
                self.booked["shipments"] += 1
            elif path.parent == self.enquiries:
                self._stock(path)
            elif path.suffix == ".json":
                self._order_json(path)
            elif path.suffix == ".csv":
                self._order_csv(path)
            elif path.suffix in (".x12", ".edi"):
                self._order_edi(path)
            else:
                raise ValueError(f"unknown file type {path.suffix}")
        except (ValueError, KeyError, OSError):
            self.booked["errors"] += 1
            done = path.parent.parent / "error"
        done.mkdir(exist_ok=True)
        path.replace(done / path.name)

    def _book(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        order = f"SO-UK-{next(self.numbers):05d}"
        self.estate.orders["ACME-UK"][order] = "open"
        return {"orderId": order, "status": "booked", "total": self.estate.total("ACME-UK", lines), "currency": "GBP"}

    def _write(self, folder: Path, name: str, data: bytes) -> None:
        temporary = folder / f".{name}.part"
        temporary.write_bytes(data)
        temporary.replace(folder / name)  # the gateway sees the acknowledgement appear whole

    def _order_json(self, path: Path) -> None:
        order = json.loads(path.read_bytes())
        correlation = path.stem.rsplit("_", 1)[-1]  # ORDERS_{entity}_{correlation_id}.json
        if order["customer"] not in self.estate.customers["ACME-UK"]:
            refusal = {"error": f"unknown customer {order['customer']}"}  # a negative acknowledgement
            self._write(self.acks, f"{correlation}.ack", json.dumps(refusal).encode())
            raise ValueError(refusal["error"])
        reply = self._book(order["lines"])
        self._write(self.acks, f"{correlation}.ack", json.dumps(reply).encode())
        self.booked["json"] += 1

    def _stock(self, path: Path) -> None:
        """STOCK_{entity}_{sku}_{correlation_id}.json in; {correlation_id}.ack out with the figure."""
        sku = json.loads(path.read_bytes())["sku"]
        correlation = path.stem.rsplit("_", 1)[-1]
        if sku not in self.estate.stock["ACME-UK"]:
            self._write(self.answers, f"{correlation}.ack", json.dumps({"error": f"no item {sku}"}).encode())
            raise ValueError(f"no item {sku}")
        on_hand, reserved = self.estate.stock["ACME-UK"][sku]
        answer = {"item": sku, "free_stock": str(on_hand - reserved), "depot": "UK-MK-01"}
        self._write(self.answers, f"{correlation}.ack", json.dumps(answer).encode())

    def _order_csv(self, path: Path) -> None:
        rows = [line.split(";") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        reply = self._book([{"sku": sku, "qty": int(qty)} for _order, _customer, sku, qty in rows])
        self._write(self.inbound.parent / "out", f"{path.stem}.ack.json", json.dumps(reply).encode())
        self.booked["csv"] += 1

    def _order_edi(self, path: Path) -> None:
        """A retailer's X12 850 or EDIFACT ORDERS: booked whole, acknowledged (997 / CONTRL) and
        confirmed line by line (855 / ORDRSP), both echoing the partner's interchange number."""
        order = demo_edi.read_order(path.read_text(encoding="latin-1"))
        self._book(order.lines)
        out, stem = self.inbound.parent / "out", path.stem
        suffix = ".x12" if order.syntax == "x12" else ".edi"
        kind = "997" if order.syntax == "x12" else "CONTRL"
        self._write(out, f"{kind}_{stem}{suffix}", demo_edi.acknowledgement(order))
        if order.syntax == "edifact":  # the X12 partners of the scan's story take no 855 from ACME-UK
            confirmed = [int(line["qty"]) for line in order.lines]
            self._write(out, f"ORDRSP_{stem}{suffix}", demo_edi.order_response(order, confirmed))
        self.booked["x12" if order.syntax == "x12" else "edifact"] += 1

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


class EdiDesk:
    """An ERP's EDI intake: books the purchase orders (X12 850, EDIFACT ORDERS) dropped in its
    folder as orders of the entity whose partner sent them, acknowledges each (997, CONTRL) and
    confirms it line by line (855, ORDRSP). `book` makes the order and says the quantity confirmed
    per line; `own_numbers`: answers carry a control number and time of the desk's own (the cloud's
    way), else they echo the partner's (an old translator's)."""

    def __init__(
        self, folder: Path, book: Callable[[demo_edi.Order], list[int]], own_numbers: bool, start: int = 700001
    ) -> None:
        self.book, self.own_numbers = book, own_numbers
        self.inbound, self.acks, self.processed = folder / "in", folder / "ack", folder / "processed"
        for place in (self.inbound, self.acks, self.processed, folder / "error"):
            place.mkdir(parents=True, exist_ok=True)
        self.controls = itertools.count(start)
        self.booked = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for path in sorted(self.inbound.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    order = demo_edi.read_order(path.read_text(encoding="latin-1"))
                except (ValueError, IndexError, OSError):
                    path.replace(self.inbound.parent / "error" / path.name)
                    continue
                confirmed = self.book(order)
                control, when = (f"{next(self.controls):09d}", datetime.now(UTC)) if self.own_numbers else (None, None)
                x12 = order.syntax == "x12"
                suffix = ".x12" if x12 else ".edi"
                ack, rsp = ("ack", "rsp") if self.own_numbers else ("997", "855") if x12 else ("CONTRL", "ORDRSP")
                self._write(f"{ack}_{path.stem}{suffix}", demo_edi.acknowledgement(order, control, when))
                control = f"{next(self.controls):09d}" if self.own_numbers else None
                self._write(f"{rsp}_{path.stem}{suffix}", demo_edi.order_response(order, confirmed, control, when))
                path.replace(self.processed / path.name)
                self.booked += 1

    def _write(self, name: str, data: bytes) -> None:
        temporary = self.acks / f".{name}.part"
        temporary.write_bytes(data)
        temporary.replace(self.acks / name)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def cloud_edi(cloud: CloudErp, folder: Path, entity: str, most_per_line: int | None = None) -> EdiDesk:
    """The cloud ERP's EDI intake for one entity. `most_per_line`: a line asking for more is
    confirmed for that many, the rest backordered (a rule the cloud was configured with)."""

    def book(order: demo_edi.Order) -> list[int]:
        lines = [dict(line) for line in order.lines]
        with cloud.lock:
            number = f"SO-{next(cloud.numbers)}"
            cloud.orders[entity][number] = {"orderId": number, "status": "open", "lines": lines}
        return [min(int(line["qty"]), most_per_line or int(line["qty"])) for line in lines]

    return EdiDesk(folder, book, own_numbers=True)


def german_edi(estate: Estate, folder: Path) -> EdiDesk:
    """ACME-DE's EDI translator: books its retailer's 850s into the German ERP and answers with a
    997 and an 855 that confirms every line."""
    numbers = itertools.count(len(estate.orders["ACME-DE"]) + 1)

    def book(order: demo_edi.Order) -> list[int]:
        estate.orders["ACME-DE"][f"SO-DE-EDI-{next(numbers):05d}"] = "open"
        return [int(line["qty"]) for line in order.lines]

    return EdiDesk(folder, book, own_numbers=False)


US_SCHEMA = """
CREATE TABLE items (sku TEXT PRIMARY KEY, description TEXT NOT NULL, price NUMERIC NOT NULL);
ALTER TABLE stock ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stock ADD COLUMN warehouse TEXT NOT NULL DEFAULT 'US-NJ-01';
ALTER TABLE orders ADD COLUMN reference TEXT;
ALTER TABLE orders ADD COLUMN sku TEXT;
ALTER TABLE orders ADD COLUMN qty INTEGER;
CREATE UNIQUE INDEX orders_reference ON orders (reference);
CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL);
"""


def american_erp(estate: Estate, database: Path) -> str:
    """Load ACME-US's master data into its (trigger-laden) database; the ODBC connection string to it."""
    with sqlite3.connect(database) as connection:
        connection.executescript(US_SCHEMA)
        connection.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(sku, ITEMS[n], str(price)) for n, (sku, price) in enumerate(estate.prices["ACME-US"].items())],
        )
        connection.execute("DELETE FROM stock")
        connection.executemany(
            "INSERT INTO stock (sku, on_hand, reserved) VALUES (?, ?, ?)",
            [(sku, on_hand, reserved) for sku, (on_hand, reserved) in estate.stock["ACME-US"].items()],
        )
        connection.executemany("INSERT INTO customers VALUES (?, ?)", estate.customers["ACME-US"].items())
    return f"DRIVER={{SQLite3}};DATABASE={database.absolute()};Timeout=10000"


def export_us_stock(database: Path, folder: Path, when: datetime) -> Path:
    """ACME-US's nightly job: the stock table, as the warehouse system has always received it."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT sku, warehouse, on_hand, reserved FROM stock ORDER BY sku").fetchall()
    lines = ["sku;warehouse;on_hand;reserved;available;exported_at"]
    lines += [
        f"{sku};{house};{on_hand};{reserved};{on_hand - reserved};{when:%H:%M:%S}"
        for sku, house, on_hand, reserved in rows
    ]
    return _written(folder / f"stock_{when:%Y%m%d_%H%M%S}.csv", "\n".join(lines) + "\n")


def _written(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.part"
    partial.write_text(text)
    partial.replace(path)  # whole, as a careful job writes it
    return path


def ledger(database: Path) -> str:
    """The group ledger's interface table, which the finance system books from."""
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS invoice_interface (number TEXT PRIMARY KEY, entity TEXT, customer TEXT,"
            " total NUMERIC, currency TEXT, received_at TEXT DEFAULT (datetime('now')))"
        )
    return f"DRIVER={{SQLite3}};DATABASE={database.absolute()};Timeout=10000"


Handler = Callable[[dict[str, str], Any], tuple[int, Any]]


class JsonService(Service):
    """A small REST/JSON server: (method, path pattern) → handler(params, body) → (status, body)."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        compiled = [
            (m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), h) for (m, p), h in routes.items()
        ]

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                status, body = 404, {"error": f"no resource {path}"}
                for method, pattern, handler in compiled:
                    match = pattern.match(path)
                    if match and method == self.command:
                        try:
                            params = dict(urllib.parse.parse_qsl(query)) | match.groupdict()
                            status, body = handler(params, json.loads(raw) if raw else None)
                        except (ValueError, KeyError, TypeError) as exc:
                            status, body = 422, {"error": f"invalid request: {exc}"}
                        break
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_port}"
        self._start(server)


ON_HOLD = {"0009"}  # the group's customers on credit hold: Soylent Foods, in every entity


def crm() -> JsonService:
    """The legacy CRM: customer master records, one per customer number, shared by the entities, and
    each group customer's terms: its credit standing and its account number in each entity."""
    records: dict[str, dict[str, Any]] = {}

    def put(params: dict[str, str], body: Any) -> tuple[int, Any]:
        records[params["customer_no"]] = body
        return 200, {"customerId": params["customer_no"], "name": body["name1"], "country": body["country_code"]}

    def terms(params: dict[str, str], body: Any) -> tuple[int, Any]:
        number = params["customer_no"]
        if not number.isdigit() or not 1 <= int(number) <= len(CUSTOMERS):
            return 404, {"error": f"no group customer {number}"}
        accounts = {entity: f"C-{entity[-2:]}-{int(number):04d}" for entity in ENTITIES}
        return 200, {
            "customerNo": number,
            "name": CUSTOMERS[int(number) - 1],
            "paymentTerms": "NET30",
            "creditHold": number in ON_HOLD,
            "accounts": accounts,
        }

    return JsonService({("PUT", "/erp/customers/{customer_no}"): put, ("GET", "/erp/terms/{customer_no}"): terms})


class CloudErp(JsonService):
    """The cloud ERP's REST API, per entity; its data is the migrated copy of the legacy systems'."""

    def __init__(self, estate: Estate) -> None:
        self.estate = estate
        self.version = "2026.11"
        self.forgets_reservations: set[str] = set()
        self.not_migrated: set[str] = set()  # customers legacy has and the cloud's migration has not loaded yet
        self.orders: dict[str, dict[str, dict[str, Any]]] = {
            e: {o: {"orderId": o, "status": s} for o, s in orders.items()} for e, orders in estate.orders.items()
        }
        for n, order in enumerate(self.orders["ACME-DE"].values()):
            if n % 50 == 0 and order["status"] == "shipped":  # invoiced in the cloud the night before legacy
                order["status"] = "invoiced"
        self.by_number: dict[tuple[str, str], dict[str, Any]] = {}
        self.placed: dict[tuple[str, str], dict[str, Any]] = {}  # (entity, order number) → customer and lines
        self.documents: dict[str, dict[str, Any]] = {"customers": {}, "shipments": {}, "invoices": {}}
        self.numbers = itertools.count(900001)
        self.lock = threading.Lock()
        super().__init__(
            {
                ("GET", "/api/items"): self.items,
                ("GET", "/api/{entity}/customers"): self.customers,
                ("PUT", "/api/{entity}/customers/{customerId}"): self.put_customer,
                ("GET", "/api/{entity}/inventory/{sku}"): self.inventory,
                ("POST", "/api/{entity}/orders"): self.create_order,
                ("GET", "/api/{entity}/orders"): self.list_orders,
                ("GET", "/api/{entity}/orders/{orderId}"): self.order,
                ("POST", "/api/{entity}/shipments"): self.shipment,
                ("POST", "/api/{entity}/invoices"): self.invoice,
            }
        )

    def release(self, version: str, forgets_reservations: str) -> None:
        """Deploy a version whose available-to-promise figure for one entity ignores reserved stock."""
        self.version = version
        self.forgets_reservations.add(forgets_reservations)

    def _entity(self, params: dict[str, str]) -> str:
        if params["entity"] not in ENTITIES:
            raise KeyError(f"no legal entity {params['entity']}")
        return params["entity"]

    def items(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        prices = self.estate.prices["ACME-DE"]
        return 200, [
            {"sku": sku, "description": ITEMS[n], "priceEUR": float(p)} for n, (sku, p) in enumerate(prices.items())
        ]

    def customers(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        entity = self._entity(params)
        return 200, [{"customerId": c, "name": n} for c, n in self.estate.customers[entity].items()]

    def put_customer(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.documents["customers"][params["customerId"]] = body
        return 200, {"customerId": params["customerId"], "name": body["name"], "country": body["country"]}

    def inventory(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        entity, sku = self._entity(params), params["sku"]
        if sku not in self.estate.stock[entity]:
            return 404, {"error": f"no item {sku}"}
        on_hand, reserved = self.estate.stock[entity][sku]
        available = on_hand if entity in self.forgets_reservations else on_hand - reserved
        return 200, {"sku": sku, "available": available, "warehouse": ENTITIES[entity][1]}

    def export_stock(self, entity: str, folder: Path, when: datetime) -> Path:
        """The cloud's nightly stock export for `entity`: a CSV of every item's figures, written whole."""
        rows = ["sku;warehouse;on_hand;reserved;available;exported_at"]
        for sku, (on_hand, reserved) in sorted(self.estate.stock[entity].items()):
            available = on_hand if entity in self.forgets_reservations else on_hand - reserved
            rows.append(f"{sku};{ENTITIES[entity][1]};{on_hand};{reserved};{available};{when:%H:%M:%S}")
        return _written(folder / f"stock-{when:%Y%m%d%H%M%S}.csv", "\n".join(rows) + "\n")

    def create_order(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        entity = self._entity(params)
        if body["customer"] not in self.estate.customers[entity] or body["customer"] in self.not_migrated:
            return 422, {"error": f"unknown customer {body['customer']}"}
        with self.lock:  # one order per order number: a redelivered write books nothing twice
            existing = self.by_number.get((entity, body["orderNumber"]))
            if existing is None:
                total, currency = self.estate.total(entity, body["lines"]), ENTITIES[entity][0]
                existing = {
                    "orderId": f"CL-{next(self.numbers)}",
                    "status": "released",
                    "total": total,
                    "currency": currency,
                }
                self.by_number[(entity, body["orderNumber"])] = existing
                self.orders[entity][existing["orderId"]] = existing
                self.placed[(entity, body["orderNumber"])] = {"customer": body["customer"], "lines": body["lines"]}
        return 201, existing

    def list_orders(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        """The orders placed by number, a page at a time (what a reconciliation reads)."""
        entity, page, size = (
            self._entity(params),
            int(params.get("page", 1)),
            min(int(params.get("per_page", 100)), 500),
        )
        with self.lock:
            numbers = sorted(number for e, number in self.by_number if e == entity)
            shown = [
                {
                    "orderNumber": number,
                    "orderId": self.by_number[(entity, number)]["orderId"],
                    "total": self.by_number[(entity, number)]["total"],
                    **self.placed[(entity, number)],
                }
                for number in numbers[(page - 1) * size : page * size]
            ]
        return 200, {"orders": shown, "page": page}

    def migrate_orders(self, entity: str, rows: list[tuple[str, str, float, str, int]], missing: set[str]) -> int:
        """The migration's load of an entity's open orders (reference, customer, total, sku, qty), as
        its team ran it: the orders in `missing` were booked in legacy while it ran, and never came."""
        loaded = 0
        with self.lock:
            for reference, customer, total, sku, qty in rows:
                if reference in missing or (entity, reference) in self.by_number:
                    continue
                order = {
                    "orderId": f"CL-{next(self.numbers)}",
                    "status": "released",
                    "total": float(total),
                    "currency": ENTITIES[entity][0],
                }
                self.by_number[(entity, reference)] = order
                self.orders[entity][order["orderId"]] = order
                self.placed[(entity, reference)] = {"customer": customer, "lines": [{"sku": sku, "qty": qty}]}
                loaded += 1
        return loaded

    def order(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        found = self.orders[self._entity(params)].get(params["orderId"])
        return (200, found) if found else (404, {"error": f"no order {params['orderId']}"})

    def shipment(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.documents["shipments"][body["shipmentId"]] = body
        return 201, {"shipmentId": body["shipmentId"], "status": "confirmed"}

    def invoice(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.documents["invoices"][body["invoiceNumber"]] = body
        return 201, {"invoiceNumber": body["invoiceNumber"], "status": "posted"}


def wait_for(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def intercompany_exports(folder: Path, unbooked: int = 1) -> tuple[Path, Path]:
    """The month's intercompany invoices ACME-DE raised on ACME-UK, as each ledger exports them: DE's
    receivables in EUR by invoice number, UK's payables in GBP by supplier reference, at the group's
    rate. The last `unbooked` of them UK never booked."""
    rate = 1.17  # EUR per GBP, the group's rate table for the month
    invoices = [(f"IC-DE-{n:04d}", round(250 + n * 37.5, 2)) for n in range(1, 13)]
    receivables = ["invoice;customer;amount;currency"] + [
        f"{number};ACME-UK;{amount:.2f};EUR" for number, amount in invoices
    ]
    booked = invoices[: len(invoices) - unbooked]
    payables = ["supplier_ref;supplier;gross;ccy"] + [
        f"{number};ACME-DE;{amount / rate:.2f};GBP" for number, amount in booked
    ]
    return (
        _written(folder / "de_ic_receivables.csv", "\n".join(receivables) + "\n"),
        _written(folder / "uk_ic_payables.csv", "\n".join(payables) + "\n"),
    )
