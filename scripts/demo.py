"""The demo distributor, start to finish: find its integrations, wrap them, shift them to the cloud ERP.

    banyan demo [FOLDER] [--once]          # or: make demo

ACME has three legal entities on three legacy ERPs, and one cloud ERP to move them to:

- ACME-DE behind a SOAP order service, fed by a Mule flow that imports X12 orders;
- ACME-UK on file drops: orders come in as files (from the gateway as JSON, from partners as CSV and
  X12), an importer books them and writes acknowledgements;
- ACME-US on a SQLite database, reached over ODBC, whose triggers feed export tables.

The demo builds that estate in FOLDER (default .demo) and runs the three journeys on it: it scans the
estate into a catalog, an HTML report and a graph; serves the shipped `routes/` in front of the
running systems and sends a webshop's traffic to each entity; then walks each entity up the cutover
ladder on evidence, and when the cloud ERP ships a release that gets ACME-US's stock figure wrong,
the guardrail moves that entity straight back to shadow by itself, where the comparisons go on.
Every `banyan` command shown is run, and what follows it is what it printed. The gateway then keeps
serving, with the migration console, until Ctrl-C (`--once` exits instead).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import demo_edi  # noqa: E402
import demo_erp  # noqa: E402
import demo_estate  # noqa: E402

REPO = HERE.parent
BANYAN = [sys.executable, "-m", "cli.main"]
ADMIN_KEY = "demo-admin-key"
WIDTH = "120"


def say(text: str) -> None:
    print(text, flush=True)


def chapter(title: str) -> None:
    say(f"\n{'━' * 100}\n{title}\n{'━' * 100}")


def banyan(*args: str, env: dict[str, str] | None = None, show: bool = True, quiet: bool = False) -> str:
    """Run a banyan command as a user would, show it and what it printed; its output is returned too."""
    if show:
        say("\n$ banyan " + " ".join(f'"{a}"' if " " in a else a for a in args))
    environment = {**os.environ, **(env or {}), "COLUMNS": WIDTH, "NO_COLOR": "1"}
    run = subprocess.run([*BANYAN, *args], env=environment, cwd=REPO, capture_output=True, text=True, check=False)
    if show and not quiet:
        print(run.stdout + run.stderr, end="", flush=True)
    if run.returncode not in (0, 1):
        raise SystemExit(f"banyan {args[0]} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Consumer:
    """The webshop: calls the managed API with its key, as any consumer would."""

    def __init__(self, port: int, key: str) -> None:
        self.base, self.key = f"http://127.0.0.1:{port}", key
        self.pool = ThreadPoolExecutor(8)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, str, bytes]:
        """One call: its status, the side that served it, and the answer's body."""
        soap = isinstance(body, bytes)  # an envelope, as an existing SOAP client sends it
        data = body if soap else json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("X-API-Key", self.key)
        if data is not None:
            request.add_header("Content-Type", "text/xml; charset=utf-8" if soap else "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers.get("X-Served-By", ""), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("X-Served-By", ""), error.read()
        except OSError:
            return 599, "", b""  # no answer at all: counted as "error 599"

    def refusal(self, method: str, path: str, body: Any) -> str:
        """The problem a consumer gets for a call that is refused: status, title and detail."""
        status, _, data = self.send(method, path, body)
        if status < 400:
            return f"{status}: accepted"
        problem = json.loads(data)
        return f"{problem['status']} {problem['title']}: {problem['detail']}"

    def headers(self, path: str, names: tuple[str, ...]) -> str:
        """The status and the named headers of a GET, as `curl -i` would show them."""
        request = urllib.request.Request(self.base + path, headers={"X-API-Key": self.key})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        shown = [f"HTTP {status}", *(f"{name}: {headers[name]}" for name in names if name in headers)]
        return "\n".join([*shown, body.decode("utf-8", "replace")])

    def burst(self, calls: list[tuple[str, str, Any]]) -> Counter[str]:
        """Send the calls eight at a time; count who served them (and errors by status)."""
        served: Counter[str] = Counter()
        for status, side, _ in self.pool.map(lambda c: self.send(*c), calls):
            served[(side or "gateway") if status < 400 else f"error {status}"] += 1
        time.sleep(1.5)  # mirrored calls finish and the gateway flushes its evidence (every second)
        return served


def admin_refusal(base: str, key: str, method: str, path: str, body: Any) -> str:
    """An admin API call with a person's key, as `curl` shows a refusal: status, title and detail."""
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method)
    request.add_header("X-Admin-Key", key)
    request.add_header("Content-Type", "application/json")
    say(f"\n$ curl -X {method} {path} -H 'X-Admin-Key: …' -d '{json.dumps(body)}'")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return f"{answer.status}: accepted"
    except urllib.error.HTTPError as error:
        problem = json.loads(error.read())
        return f"{problem['status']} {problem['title']}: {problem['detail']}"


def tally(served: Counter[str]) -> str:
    return ", ".join(f"{n} {side}" for side, n in sorted(served.items()))


class Traffic:
    """Realistic calls per entity, numbered so that every burst is new business."""

    def __init__(self, estate: demo_erp.Estate) -> None:
        self.estate, self.n = estate, 0
        self.skus = list(estate.prices["ACME-DE"])
        self.history = {entity: list(orders) for entity, orders in estate.orders.items()}  # migrated to the cloud

    def _next(self) -> int:
        self.n += 1
        return self.n

    def order(self, entity: str) -> tuple[str, str, Any]:
        n = self._next()
        customers = list(self.estate.customers[entity])
        lines = [{"sku": self.skus[(n * 7 + k) % len(self.skus)], "qty": 1 + (n + k) % 12} for k in range(1 + n % 3)]
        body = {"orderNumber": f"PO-{entity[-2:]}-{n:06d}", "customer": customers[n % len(customers)], "lines": lines}
        return "POST", f"/v1/{entity}/orders", body

    def order_status(self, entity: str) -> tuple[str, str, Any]:
        orders = self.history[entity]
        return "GET", f"/v1/{entity}/orders/{orders[(self._next() * 37) % len(orders)]}", None

    def stock(self, entity: str) -> tuple[str, str, Any]:
        return "GET", f"/v1/{entity}/inventory/{self.skus[self._next() % len(self.skus)]}", None

    def customer(self, entity: str) -> tuple[str, str, Any]:
        n = self._next()
        customer_id, name = list(self.estate.customers[entity].items())[n % 12]
        body = {"name": name, "country": entity[-2:].replace("UK", "GB"), "creditLimit": 5000 + n % 7 * 2500}
        return "PUT", f"/v1/{entity}/customers/{customer_id}", body

    def shipment(self, entity: str) -> tuple[str, str, Any]:
        n = self._next()
        body = {
            "shipmentId": f"SH-{entity[-2:]}-{n:06d}",
            "orderNumber": f"PO-{entity[-2:]}-{n:06d}",
            "carrier": "DHL",
            "lines": [{"sku": self.skus[n % len(self.skus)], "qty": 1 + n % 5}],
        }
        return "POST", f"/v1/{entity}/shipments", body

    def soap_order(self, entity: str) -> tuple[str, str, Any]:
        """ACME-DE's EDI translator still speaks SOAP to the order service: it only changed the URL."""
        n = self._next()
        customer = list(self.estate.customers[entity])[n % 12]
        envelope = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:acme:erp:orders">'
            f"<soap:Body><o:CreateOrder><o:customer>{customer}</o:customer><o:quantity>{1 + n % 9}</o:quantity>"
            "</o:CreateOrder></soap:Body></soap:Envelope>"
        )
        return "POST", "/soap/OrderService", envelope.encode()

    def invoice(self, entity: str) -> tuple[str, str, Any]:
        n = self._next()
        currency = demo_erp.ENTITIES[entity][0]
        customer = list(self.estate.customers[entity])[n % 12]
        body = {
            "invoiceNumber": f"INV-{entity[-2:]}-{n:06d}",
            "customer": customer,
            "total": 100 + n % 900,
            "currency": currency,
        }
        return "POST", f"/v1/{entity}/invoices", body


NATS = "nats://127.0.0.1:4222"


def nats_up() -> bool:
    """Is a NATS server listening where the demo publishes its events?"""
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def gateway(folder: Path, port: int, env: dict[str, str], events: bool) -> Iterator[None]:
    command = [
        *BANYAN,
        "serve",
        "--routes",
        str(REPO / "routes"),
        "--consumers",
        str(folder / "consumers.yaml"),
        "--port",
        str(port),
        "--store",
        str(folder / "cutover.db"),
        "--no-access-log",
    ]
    command += ["--events-broker", NATS] if events else []
    log = (folder / "gateway.log").open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=log,
        env={**os.environ, **env, "BANYAN_ADMIN_KEY": ADMIN_KEY},
        start_new_session=True,  # Ctrl-C stops the demo, which then stops the gateway in order
    )

    def healthy() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return True
        except OSError:
            return process.poll() is not None  # it died: stop waiting

    if not demo_erp.wait_for(healthy, 30) or process.poll() is not None:
        raise SystemExit(f"the gateway did not start: see {folder / 'gateway.log'}")
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def find(folder: Path) -> None:
    chapter("1 · Find: scan ACME's estate for every integration point")
    demo_estate.build(folder)
    banyan("scan", "run", str(folder / "scan.yaml"))
    banyan(
        "catalog",
        "report",
        str(folder / "catalog.json"),
        "--html",
        str(folder / "report.html"),
        "--markdown",
        str(folder / "report.md"),
    )
    banyan("catalog", "graph", str(folder / "catalog.json"), "--format", "mermaid", "--out", str(folder / "graph.mmd"))
    banyan("catalog", "roadmap", str(folder / "catalog.json"), "--csv", str(folder / "roadmap.csv"))


def systems(
    folder: Path, stack: ExitStack
) -> tuple[demo_erp.Estate, demo_erp.CloudErp, demo_erp.UkImporter, dict[str, str]]:
    """Start the legacy systems and the cloud ERP; the environment the routes need to reach them."""
    estate = demo_erp.Estate.seeded()
    german = demo_erp.GermanErp(estate)
    stack.callback(german.stop)
    drops = folder / "drops"
    importer = demo_erp.UkImporter(estate, drops)
    stack.callback(importer.stop)
    us_odbc = demo_erp.american_erp(estate, folder / "databases" / "erp_us.db")
    ledger_odbc = demo_erp.ledger(folder / "databases" / "ledger.db")
    crm = demo_erp.crm()
    stack.callback(crm.stop)
    cloud = demo_erp.CloudErp(estate)
    stack.callback(cloud.stop)
    for desk in (
        demo_erp.cloud_edi(cloud, drops / "cloud" / "edi", "ACME-UK"),
        demo_erp.cloud_edi(cloud, drops / "cloud" / "edi-de", "ACME-DE", most_per_line=35),
        demo_erp.german_edi(estate, drops / "de" / "edi"),
    ):
        stack.callback(desk.stop)
    for entity, place in itertools.product(("uk", "de"), ("in", "out")):  # the retailers' EDI mailboxes
        (drops / "partners" / entity / place).mkdir(parents=True, exist_ok=True)
    say(f"""
ACME-DE  SOAP order service   {german.url}  (WSDL: {german.url}?wsdl)
ACME-UK  file importer        {drops / "uk" / "orders"}/{{in,ack,out,processed,error}}, stock: {drops / "uk" / "stock"}
ACME-US  SQLite over ODBC     {folder / "databases" / "erp_us.db"}  (triggers feed order_export, stock_outbox)
shared   CRM (HTTP)           {crm.url}
shared   ledger (ODBC)        {folder / "databases" / "ledger.db"}
cloud    cloud ERP (REST)     {cloud.url}/api/…  release {cloud.version}
ACME-DE  EDI translator       {drops / "de" / "edi"}/{{in,ack,processed}}
cloud    EDI intakes          {drops / "cloud" / "edi"}/{{in,ack,processed}} (ACME-UK), {drops / "cloud" / "edi-de"}""")
    env = {
        "ACME_DE_ERP": german.url,
        "ACME_CLOUD": cloud.url,
        "ACME_CRM": crm.url,
        "ACME_DROPS": str(drops),
        "BANYAN_ERP_US_ODBC": us_odbc,
        "BANYAN_LEDGER_ODBC": ledger_odbc,
        "ACME_STOCK_CRON": "* * * * *",  # the nightly stock export runs every minute here
        "ACME_GATE_MINUTES": "0",
    }  # a gate counts calls here: the demo cannot wait half an hour a rung
    return estate, cloud, importer, env


def partner_files(importer: demo_erp.UkImporter) -> None:
    """Trading partners keep sending ACME-UK files the old way while the API takes over."""
    when = datetime.now(UTC)
    [rng] = demo_estate.streams("partner_files")
    for n in range(3):
        text = demo_estate.x12_850(rng, 510000 + n, "PARTNERCO", "ACMEUK", when)
        (importer.inbound / f"PO{510000 + n}.x12").write_text(text)
    for n in range(2):
        rows = ["order;customer;sku;qty", *(f"CSV-{n}-{k};C-UK-0003;SKU-{1000 + k};{k + 2}" for k in range(4))]
        (importer.inbound / f"orders_{when:%Y%m%d}_{n}.csv").write_text("\n".join(rows) + "\n")
    (importer.inbound / "PO510099.x12").write_text("ISA*00*  the partner's translator cut this one short")
    demo_erp.wait_for(
        lambda: not any(importer.inbound.iterdir()) and importer.booked["x12"] + importer.booked["csv"] == 5
    )


def wrap(folder: Path, consumer: Consumer, traffic: Traffic, importer: demo_erp.UkImporter) -> None:
    chapter("2 · Wrap: the webshop calls one managed API; each entity's legacy system answers")
    per_entity = {
        "ACME-DE": [
            traffic.order,
            traffic.order_status,
            traffic.stock,
            traffic.customer,
            traffic.shipment,
            traffic.invoice,
        ],
        "ACME-UK": [traffic.order, traffic.stock, traffic.customer, traffic.shipment, traffic.invoice],
        "ACME-US": [traffic.order, traffic.stock, traffic.customer, traffic.shipment, traffic.invoice],
    }
    for entity, kinds in per_entity.items():
        calls = [kind(entity) for _ in range(10) for kind in kinds]
        served = consumer.burst(calls)
        say(f"{entity}: {len(calls)} calls ({', '.join(k.__name__.replace('_', ' ') for k in kinds)}): {tally(served)}")
    method, path, body = traffic.order("ACME-UK")
    refused = consumer.refusal(method, path, {**body, "customer": "C-UK-0099"})
    say(f"an ACME-UK order for a customer its ERP does not know → {refused}")
    served = consumer.burst([traffic.soap_order("ACME-DE") for _ in range(10)])
    say(f"ACME-DE's EDI translator, still on SOAP, now through the gateway's passthrough: 10 calls: {tally(served)}")
    partner_files(importer)
    with sqlite3.connect(folder / "databases" / "erp_us.db") as database:
        exported = database.execute("SELECT count(*) FROM order_export").fetchone()[0]
    booked, out = importer.booked, importer.inbound.parent / "out"
    say(
        f"ACME-UK's importer booked {booked['json']} API orders, {booked['csv']} CSV and {booked['x12']} X12 partner "
        f"files (997s in {out}); the {booked['errors']} files it could not book wait in error/ for a person"
    )
    say(f"the warehouse hand-off folder took {booked['shipments']} shipment confirmations")
    say(f"ACME-US's triggers exported {exported} orders to order_export")
    say("\none contract for stock whichever ERP answers (routes/canonical/inventory.json):")
    for entity in ("ACME-DE", "ACME-UK", "ACME-US"):
        _, stock_path, _ = traffic.stock(entity)
        status, _, data = consumer.send("GET", stock_path)
        say(f"  GET {stock_path} → {status} {data.decode()}")
    _, order_path, _ = traffic.order_status("ACME-DE")
    say(f"\nv1 of order status is deprecated; its answers say until when, and where v2 is:\n$ curl -i {order_path}")
    say(consumer.headers(order_path, ("Deprecation", "Sunset", "Link")))
    say(f"$ curl -i {order_path.replace('/v1/', '/v2/', 1)}")
    say(consumer.headers(order_path.replace("/v1/", "/v2/", 1), ("Deprecation", "Content-Type")))
    say(f"every call went through the policies: see {consumer.base}/metrics, {consumer.base}/docs")
    group_orders(folder, consumer, traffic)


def group_orders(folder: Path, consumer: Consumer, traffic: Traffic) -> None:
    """The process API: one call asks the group CRM for the customer's terms, every entity for its
    stock, and books the order in the first entity that can fulfil it, on that entity's rung."""
    say(
        "\na process API (routes/processes.yaml): the webshop's group order is one call; the gateway asks the "
        "CRM for the customer's terms,\nevery entity for the item's stock, and books the order where it can be "
        "fulfilled, on that entity's own rung:"
    )
    available = {}
    for sku in traffic.skus:  # an item ACME-DE holds too little of, and ACME-UK enough
        stock = {}
        for entity in ("ACME-DE", "ACME-UK"):
            status, _, data = consumer.send("GET", f"/v1/{entity}/inventory/{sku}")
            stock[entity] = json.loads(data)["available"] if status == 200 else -1
        if 0 <= stock["ACME-DE"] < stock["ACME-UK"]:
            available = {"sku": sku, **stock}
            break
    line = {"sku": available["sku"], "qty": available["ACME-DE"] + 1}
    body = {"orderNumber": "GO-000001", "customerNo": "0003", "lines": [line]}
    status, _, data = consumer.send("POST", "/v1/group-orders", body)
    say(f"  ACME-DE holds {available['ACME-DE']} of {line['sku']}, ACME-UK {available['ACME-UK']}")
    say(f"  POST /v1/group-orders {json.dumps(body)}\n  → {status} {data.decode()}")
    held = {**body, "orderNumber": "GO-000002", "customerNo": "0009"}
    say(f"  the same for a customer on credit hold → {consumer.refusal('POST', '/v1/group-orders', held)}")
    store = {"BANYAN_STORE": str(folder / "cutover.db")}
    listed = json.loads(banyan("processes", "list", "group-order", "--json", env=store, show=False))
    booked = next(row["id"] for row in listed if row["state"] == "completed")
    banyan("processes", "list", "group-order", env=store)
    banyan("processes", "show", booked, env=store)


def last_events(stream: str, count: int = 1) -> list[dict[str, Any]]:
    """The newest events of a stream, oldest first, as a consumer reads them from JetStream."""
    import asyncio

    import nats

    async def read() -> list[dict[str, Any]]:
        connection = await nats.connect(NATS, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            jetstream = connection.jetstream()
            last = (await jetstream.stream_info(stream)).state.last_seq
            messages = [await jetstream.get_msg(stream, seq) for seq in range(max(last - count + 1, 1), last + 1)]
            return [dict(json.loads(message.data)) for message in messages]
        finally:
            await connection.close()

    return asyncio.run(read())


def events(folder: Path, env: dict[str, str], broker: bool, estate: demo_erp.Estate) -> None:
    """The business events: the gateway's, recorded with each booked write, and ACME-US's triggers'."""
    store = str(folder / "cutover.db")
    say(
        "\nbusiness events: each order, shipment and invoice a legacy system booked became a CloudEvent, "
        "recorded with the write itself"
    )
    if not broker:
        banyan("events", "list", "--store", store)
        say(f"(no NATS at {NATS}: the events wait in the store for a gateway with --events-broker)")
        return
    for _ in range(100):  # the relay publishes within a moment of each write
        counts = json.loads(banyan("events", "list", "--store", store, "--json", show=False))
        if not sum(states["pending"] for states in counts.values()):
            break
        time.sleep(0.1)
    banyan("events", "list", "--store", store)
    say("the newest order event, as a consumer reads it from JetStream (subject events.com.acme.order.created):")
    newest = last_events("BANYAN_EVENTS", 50)
    say(json.dumps(next(e for e in reversed(newest) if e["type"] == "com.acme.order.created")))
    with sqlite3.connect(folder / "databases" / "erp_us.db") as database:  # the ERP's own work, not the gateway's
        database.execute("UPDATE stock SET on_hand = on_hand - 2 WHERE sku IN (SELECT sku FROM stock LIMIT 3)")
    say(
        "\nACME-US's warehouse picks three items; its triggers write order_export and stock_outbox, as ever. "
        "Published without touching the ERP:"
    )
    for table, kind, subject, column in (
        ("order_export", "order.status", "acme.us.orders", "order_id"),
        ("stock_outbox", "inventory.changed", "acme.us.stock", "sku"),
    ):
        banyan(
            "events",
            "from-table",
            table,
            "--connection-env",
            "BANYAN_ERP_US_ODBC",
            "--type",
            f"com.acme.{kind}",
            "--source",
            "/erp/us",
            "--subject",
            subject,
            "--subject-column",
            column,
            "--entity",
            "ACME-US",
            "--stream",
            f"BANYAN_US_{table.upper()}",
            "--store",
            store,
            env=env,
        )
    changes = last_events("BANYAN_US_STOCK_OUTBOX", 3)
    say(json.dumps(changes[-1]))
    for change in changes:  # the cloud ERP consumes the stream: its figures follow the legacy warehouse's
        sku, on_hand = change["data"]["sku"], change["data"]["on_hand"]
        estate.stock["ACME-US"][sku] = (on_hand, estate.stock["ACME-US"][sku][1])
    say(f"the cloud ERP consumes acme.us.stock and books the {len(changes)} new figures: both ERPs agree again")


def shift(
    folder: Path, consumer: Consumer, traffic: Traffic, cloud: demo_erp.CloudErp, env: dict[str, str], uk_lead: str
) -> None:
    chapter("3 · Shift: each entity climbs the ladder on evidence; a bad cloud release is stepped back")
    store = {**env, "BANYAN_STORE": str(folder / "cutover.db")}

    def cutover(*args: str, show: bool = True) -> str:
        return banyan("cutover", *args, env=store, show=show)

    def step(command: str, route: str, entity: str, *rest: str) -> None:
        cutover(command, route, entity, *rest, "--actor", "ana")
        time.sleep(1)  # the gateway picks the change up within a second; evidence then counts for the new rung

    def load(entity: str, make: Any, count: int) -> None:
        say(f"{count} calls: {tally(consumer.burst([make(entity) for _ in range(count)]))}")

    def delivered() -> None:
        """Wait until the outbox has delivered every write to the other side, and the evidence is in."""
        for _ in range(100):
            counts = json.loads(banyan("outbox", "status", "--json", env=store, show=False))
            if counts["intent"] + counts["pending"] == 0:
                break
            time.sleep(0.2)
        time.sleep(1.2)

    say("\nACME-DE's order status reads move first: read-only, the cloud can listen without risk.")
    step("set", "order-status", "ACME-DE", "shadow", "--reason", "CHG-101 listen to the cloud")
    say("a fifth of these reads also ask legacy twice: what differs then, legacy changes on its own (noise);")
    say("until the gateway has learnt that, differences are counted but not judged")
    load("ACME-DE", traffic.order_status, 150)
    time.sleep(1.5)  # the gateway learns the noise from what it has flushed
    load("ACME-DE", traffic.order_status, 150)
    cutover("mismatches", "order-status", "--entity", "ACME-DE")
    for change in ("CHG-102 shadow is clean", "CHG-103 first canary", "CHG-104 5 %", "CHG-105 25 %", "CHG-106 half"):
        step("promote", "order-status", "ACME-DE", "--reason", change)
        load("ACME-DE", traffic.order_status, 150)

    say("\nACME-UK's order files: a write, so the cloud gets each order through the outbox as well. The first")
    say("step is forced (at legacy no evidence can show how the cloud books writes), and order-create's gate asks")
    say("a second person for a forced step, as for cloud_primary and cloud: ana proposes it, bo approves it.")
    cutover(
        "propose",
        "order-create",
        "ACME-UK",
        "dual_write",
        "--force",
        "--reason",
        "CHG-201 sign-off: the cloud books test orders right",
        "--actor",
        "ana",
    )
    [proposed] = json.loads(cutover("changes", "--state", "proposed", "--json", show=False))
    number = str(proposed["id"])
    cutover("approve", number, "--reason", "fine by me", "--actor", "ana")
    cutover("approve", number, "--reason", "CHG-201: the test bookings checked in both ERPs", "--actor", "bo")
    time.sleep(1)  # the gateway picks the change up within a second
    load("ACME-UK", traffic.order, 60)
    delivered()
    banyan("outbox", "status", env=store)
    for change in ("CHG-202 prices agree", "CHG-203 5 %"):
        step("promote", "order-create", "ACME-UK", "--reason", change)
        load("ACME-UK", traffic.order, 60)
        delivered()
    say("\nA person's admin key reaches the entities its entry names; ACME-UK's lead, on an ACME-US row:")
    attempt = {"mode": "dual_write", "reason": "try"}
    say(admin_refusal(consumer.base, uk_lead, "PUT", "/admin/cutover/order-create/ACME-US", attempt))

    retail_orders(folder / "drops", step, cutover)
    german_orders(folder / "drops", step, cutover)

    say("\nACME-US's stock figure: its database answers legacy, the cloud answers the same question.")
    step("set", "inventory-availability", "ACME-US", "shadow", "--reason", "CHG-301 listen to the cloud")
    load("ACME-US", traffic.stock, 150)
    time.sleep(1.5)  # noise learnt (stock moves between two legacy reads), then judged
    load("ACME-US", traffic.stock, 150)
    for change in ("CHG-302 shadow is clean", "CHG-303 first canary", "CHG-304 5 %", "CHG-305 25 %"):
        step("promote", "inventory-availability", "ACME-US", "--reason", change)
        load("ACME-US", traffic.stock, 150)
    cloud.release("2026.12", forgets_reservations="ACME-US")
    say(
        f"\nthe cloud ERP ships release {cloud.version}: its available-to-promise now forgets reserved stock "
        "for ACME-US"
    )
    load("ACME-US", traffic.stock, 150)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "guardrail" not in cutover(
        "history", "--entity", "ACME-US", "--json", show=False
    ):
        load("ACME-US", traffic.stock, 30)  # the guardrail checks every 5 s
    say("\nin shadow legacy answers every call again, and the cloud's answers are still compared:")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "guardrail_alert" not in cutover(
        "history", "--entity", "ACME-US", "--json", show=False
    ):
        load("ACME-US", traffic.stock, 30)  # the evidence goes on; the guardrail alerts, and the rung stays
    cutover("history", "--entity", "ACME-US")
    cutover("mismatches", "inventory-availability", "--entity", "ACME-US")
    nightly_stock(folder, cloud, step, cutover)
    the_books(folder, cloud, store)
    the_inbox(folder, consumer, traffic, cloud, store)
    say("\nEach entity's business SLOs, from every call of the demo (the order latency counts to the ERP's answer:")
    say("the SOAP reply, the UK importer's ack file, the row ACME-US's trigger wrote):")
    banyan("slo", "status", "--routes", str(REPO / "routes"), env=store)
    say("\nWhere each entity stands on the routes it moved:")
    for route, entity in (
        ("order-status", "ACME-DE"),
        ("order-create", "ACME-UK"),
        ("uk-retail-orders", "ACME-UK"),
        ("de-retail-orders", "ACME-DE"),
        ("inventory-availability", "ACME-US"),
    ):
        cutover("status", "--route", route, "--entity", entity)


def nightly_stock(folder: Path, cloud: demo_erp.CloudErp, step: Any, cutover: Any) -> None:
    """ACME-US's nightly stock export, the legacy job's and the cloud's, compared record by record."""
    from cutover.store import open_store
    from flows.batches import runs

    say("\nACME-US's warehouse system gets a stock export every night; the batch us-nightly-stock compares the")
    say("legacy job's export with the cloud's, record by record, and delivers the serving side's:")
    step(
        "set",
        "us-nightly-stock",
        "ACME-US",
        "dual_write",
        "--force",
        "--reason",
        "CHG-311 the cloud exports stock too: compare it",
    )
    while datetime.now(UTC).second > 40:  # a run a minute here: both exports within one
        time.sleep(0.5)
    when = datetime.now(UTC)
    drops = folder / "drops"
    demo_erp.export_us_stock(folder / "databases" / "erp_us.db", drops / "us" / "exports", when)
    cloud.export_stock("ACME-US", drops / "cloud" / "exports", when)
    store = open_store(str(folder / "cutover.db"))
    try:
        for _ in range(300):
            made = [run for run in runs(store, "us-nightly-stock", 5) if run["state"] not in ("waiting", "missed")]
            if made:
                break
            time.sleep(0.1)
    finally:
        store.close()
    time.sleep(1.2)
    banyan("flows", "runs", "us-nightly-stock", "--limit", "2", env={"BANYAN_STORE": str(folder / "cutover.db")})
    cutover("mismatches", "us-nightly-stock", "--entity", "ACME-US")


def the_books(folder: Path, cloud: demo_erp.CloudErp, store: dict[str, str]) -> None:
    """Do both ERPs hold the same orders? ACME-US's reconciled, repaired, reconciled again; and the
    month's intercompany invoices between ACME-DE and ACME-UK matched."""
    import sqlite3

    with sqlite3.connect(folder / "databases" / "erp_us.db") as connection:
        rows = connection.execute(
            "SELECT reference, customer, total, sku, qty FROM orders WHERE reference IS NOT NULL ORDER BY id"
        ).fetchall()
    missing = {rows[-1][0], rows[len(rows) // 2][0]}  # booked in legacy while the migration's load ran
    loaded = cloud.migrate_orders("ACME-US", rows, missing)
    say(
        f"\nBefore ACME-US's orders go to cloud_primary: do both ERPs hold the same ones? The migration loaded {loaded}"
    )
    say("of its orders into the cloud ERP; the reconciliation us-orders reads legacy's table over ODBC and the")
    say("cloud's order API, page by page, and matches them by order number:")
    banyan("reconcile", "run", "us-orders", "--entity", "ACME-US", env=store)
    banyan(
        "reconcile",
        "repair",
        "1",
        "--to",
        "cloud",
        "--actor",
        "ana",
        "--reason",
        "CHG-520 backfill the orders booked while the migration ran",
        env=store,
    )
    for _ in range(100):  # the gateway's deliverer makes them through order-create's outbox
        if all(("ACME-US", reference) in cloud.by_number for reference in missing):
            break
        time.sleep(0.1)
    banyan("reconcile", "run", "us-orders", "--entity", "ACME-US", env=store)
    say("\nThe month's intercompany invoices: ACME-DE's receivables (EUR, by invoice number) against ACME-UK's")
    say("payables (GBP, by supplier reference), converted at the group's rate:")
    demo_erp.intercompany_exports(folder / "drops" / "ledger")
    banyan("reconcile", "run", "ic-de-uk", "--entity", "ACME-DE", env=store)
    banyan("reconcile", "show", "3", env=store)


def the_inbox(
    folder: Path, consumer: Consumer, traffic: Traffic, cloud: demo_erp.CloudErp, store: dict[str, str]
) -> None:
    """What needs a person lands in one inbox with its owner: two partner files ACME-UK's flow could not
    take, and an order copy the cloud refused; each assigned, the copy replayed once the cause is fixed."""
    from cutover.store import open_store
    from flows.journey import Journey

    say("\nA normal day goes wrong in small ways. A retailer sends ACME-UK a file that is no EDIFACT, and one")
    say("from a GLN nobody set up; and an order for a customer the cloud's migration has not loaded yet:")
    drops = folder / "drops" / "partners" / "uk" / "in"
    for name, text in (
        ("ORDERS_BROKEN.edi", "PDF-1.4 this is a scanned purchase order, not EDIFACT\n"),
        (
            "ORDERS_640001.edi",
            demo_edi.edifact_orders(640001, "5012345999999", "5099999000001", [("SKU-1001", 4)], datetime.now(UTC)),
        ),
    ):
        (drops / f".{name}.part").write_text(text)
        (drops / f".{name}.part").rename(drops / name)
    customer = sorted(traffic.estate.customers["ACME-UK"])[-1]
    cloud.not_migrated.add(customer)
    for _ in range(10):  # the key the canary gives legacy: legacy books it, the cloud's copy is refused
        method, path, body = traffic.order("ACME-UK")
        status, side, _ = consumer.send(method, path, {**body, "customer": customer})
        if status < 400 and side == "legacy":
            break
    journey = Journey(open_store(str(folder / "cutover.db")))
    try:
        for _ in range(200):
            refused = [
                row
                for row in journey.files("uk-retail-orders", state="refused")
                if row.name in ("ORDERS_BROKEN.edi", "ORDERS_640001.edi")
            ]
            dead = json.loads(banyan("outbox", "status", "--json", env=store, show=False)).get("dead", 0)
            if len(refused) == 2 and dead:
                break
            time.sleep(0.1)
    finally:
        journey.store.close()
    say("\nEverything that needs a person, in one inbox, each with the owner its route or flow names:")
    routes = ["--routes", str(REPO / "routes")]
    listed = json.loads(banyan("exceptions", "list", *routes, "--json", env=store, show=False))["exceptions"]
    banyan("exceptions", "list", *routes, env=store)
    for item in listed:  # the day's three: each to a person of the team that owns it
        person = {"uk-edi": "priya", "order-to-cash": "bo"}.get(item["owner"])
        if person is not None and item["kind"] in ("file_refused", "outbox_dead"):
            banyan(
                "exceptions",
                "assign",
                str(item["id"]),
                "--to",
                person,
                "--actor",
                "ana",
                *routes,
                env=store,
                show=False,
            )
    copy = next(item for item in listed if item["kind"] == "outbox_dead")
    say(f"\nbo loads {customer} into the cloud ERP, then replays the refused copy with its own Idempotency-Key:")
    cloud.not_migrated.discard(customer)
    banyan(
        "exceptions",
        "replay",
        str(copy["id"]),
        "--actor",
        "bo",
        "--reason",
        f"CHG-530 customer {customer} migrated to the cloud ERP",
        *routes,
        env=store,
    )
    banyan("exceptions", "show", str(copy["id"]), *routes, env=store)
    banyan("exceptions", "list", *routes, env=store)


RETAILERS = {"5012345000017": "Retailer One", "5012345000024": "Retailer Two"}  # ACME-UK's, by their GLN


def _handled(drops: Path, flow: str, names: list[str], sides: int, kinds: int = 2) -> None:
    """Wait until each file is delivered to its sides and, on each, answered with `kinds` documents
    (an acknowledgement and an order response), which are compared kind by kind."""
    from cutover.store import open_store
    from flows.journey import Journey

    journey = Journey(open_store(str(drops.parent / "cutover.db")))
    try:
        for _ in range(300):
            files = [journey.described(row) for row in journey.files(flow, limit=200)]
            mine = [f for f in files if f["name"] in names]
            if len(mine) == len(names) and all(
                f["state"] == "delivered" and sum(len(side["replies"]) == kinds for side in f["sides"]) == sides
                for f in mine
            ):
                break
            time.sleep(0.1)
    finally:
        journey.store.close()
    time.sleep(1.2)  # the evidence is flushed every second
    say(f"{len(names)} files, {sides} side{'s' if sides > 1 else ''} each: delivered, acknowledged and confirmed")


def retail_orders(drops: Path, step: Any, cutover: Any) -> None:
    """ACME-UK's retailers' EDIFACT order files climb the ladder like a route, one retailer at a time."""
    say("\nACME-UK's retailers send EDIFACT ORDERS to their drop; the flow uk-retail-orders moves them like a route,")
    say("and each side answers a file with a CONTRL and an ORDRSP, each compared with the other side's:")
    inbox, numbers = drops / "partners" / "uk" / "in", itertools.count(620000)
    [rng] = demo_estate.streams("retail_orders")
    senders = list(RETAILERS)

    def send(count: int) -> list[str]:
        names = []
        for n in range(count):
            po, retailer = next(numbers), senders[n % 2]
            lines = [(f"SKU-{rng.randint(1000, 1019)}", rng.randint(1, 40)) for _ in range(2)]
            partial = inbox / f".ORDERS_{po}.edi.part"  # written whole, then renamed: as a careful sender does
            partial.write_text(demo_edi.edifact_orders(po, retailer, "5099999000001", lines, datetime.now(UTC)))
            partial.rename(inbox / f"ORDERS_{po}.edi")
            names.append(f"ORDERS_{po}.edi")
        return names

    _handled(drops, "uk-retail-orders", send(10), 1)  # legacy, where every flow starts: the UK importer books them
    step(
        "set",
        "uk-retail-orders",
        "ACME-UK",
        "dual_write",
        "--force",
        "--reason",
        "CHG-211 sign-off: the cloud's EDI intake books test orders right",
    )
    _handled(drops, "uk-retail-orders", send(20), 2)  # both book; both answer; the answers are compared
    step(
        "set",
        "uk-retail-orders",
        "ACME-UK",
        "canary",
        "--percent",
        "1",
        "--pin",
        "5012345000024=cloud",
        "--reason",
        "CHG-212 the answers agree: Retailer Two (GLN 5012345000024) is the cloud's first",
    )
    _handled(drops, "uk-retail-orders", send(10), 2)
    banyan(
        "flows",
        "files",
        "uk-retail-orders",
        "--entity",
        "ACME-UK",
        "--limit",
        "4",
        env={"BANYAN_STORE": str(drops.parent / "cutover.db")},
    )
    outbox = sorted(p.name for p in (drops / "partners" / "uk" / "out").iterdir())
    cloud = sum(n.startswith(("ack_", "rsp_")) for n in outbox)
    say(
        f"the retailers' outbox: {len(outbox) - cloud} documents from the UK importer, {cloud} from the cloud "
        "(Retailer Two's, since CHG-212): one CONTRL and one ORDRSP a file, from the side that books it"
    )


def german_orders(drops: Path, step: Any, cutover: Any) -> None:
    """ACME-DE's retailer's X12 850s in dual_write: the two sides' 855s compared line by line."""
    say("\nACME-DE's retailer sends X12 850s; in dual_write both ERPs book each one and answer with a 997 and an")
    say("855, and the two 855s are compared line by line:")
    step(
        "set",
        "de-retail-orders",
        "ACME-DE",
        "dual_write",
        "--force",
        "--reason",
        "CHG-401 the cloud's EDI intake for ACME-DE is configured",
    )
    inbox, [rng] = drops / "partners" / "de" / "in", demo_estate.streams("german_orders")
    names = []
    for po in range(630000, 630010):
        partial = inbox / f".PO{po}.x12.part"
        partial.write_text(demo_estate.x12_850(rng, po, "RETAILCO", "ACMEDE", datetime.now(UTC)))
        partial.rename(inbox / f"PO{po}.x12")
        names.append(f"PO{po}.x12")
    _handled(drops, "de-retail-orders", names, 2)
    cutover("mismatches", "de-retail-orders", "--entity", "ACME-DE")
    say(
        "the cloud backorders any line above 35 units, a rule ACME-DE's ERP never had: found before any partner "
        "saw a cloud 855"
    )


def keep_serving(consumer: Consumer, traffic: Traffic) -> None:
    """Leave everything up for the console, with a trickle of traffic, until Ctrl-C."""
    try:
        while True:
            calls = [traffic.order_status("ACME-DE") for _ in range(10)]
            calls += [traffic.stock("ACME-US") for _ in range(10)] + [traffic.order("ACME-UK") for _ in range(2)]
            consumer.burst(calls)
            time.sleep(2)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        say("stopping")


def _interrupted(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    try:
        _story()
    except KeyboardInterrupt:  # Ctrl-C mid-story: the estate and the gateway are already shut down
        print("\nstopped: the gateway and the estate are shut down", file=sys.stderr)
        raise SystemExit(130) from None


def _story() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=".demo", type=Path, help="working folder (replaced)")
    parser.add_argument("--once", action="store_true", help="exit at the end instead of serving the console")
    parser.add_argument("--port", type=int, default=0, help="the gateway's port (default: a free one)")
    args = parser.parse_args()
    folder: Path = args.folder.absolute()
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():  # ACME-US's ERP and the ledger are reached through it
        raise SystemExit("the demo needs the SQLite ODBC driver: apt-get install libsqliteodbc (make demo does)")
    if folder.exists():
        shutil.rmtree(folder)
    find(folder)
    chapter("The running estate: three legacy ERPs, the CRM, the ledger and the cloud ERP, on loopback")
    with ExitStack() as stack:
        estate, cloud, importer, env = systems(folder, stack)
        key = banyan(
            "keys", "create", "webshop", "--consumers", str(folder / "consumers.yaml"), "--rate", "1000", quiet=True
        ).strip()
        say(f"{key}   (the webshop's key: shown once, only its hash is kept in {folder / 'consumers.yaml'})")
        uk_lead = banyan(  # ACME-UK's migration lead: an operator for ACME-UK's rows only
            *("keys", "create", "Uma UK", "--role", "operator", "--entity", "ACME-UK"),
            *("--consumers", str(folder / "consumers.yaml")),
            quiet=True,
        ).strip()
        port = args.port or free_port()
        say(
            f"\n$ banyan serve --routes routes --consumers {folder / 'consumers.yaml'} --port {port} "
            f"--store {folder / 'cutover.db'}" + (f" --events-broker {NATS}" if nats_up() else "")
        )
        broker = nats_up()
        stack.enter_context(gateway(folder, port, env, broker))
        say(f"gateway on http://127.0.0.1:{port} (log: {folder / 'gateway.log'})")
        consumer, traffic = Consumer(port, key), Traffic(estate)
        wrap(folder, consumer, traffic, importer)
        events(folder, env, broker, estate)
        shift(folder, consumer, traffic, cloud, env, uk_lead)
        chapter("Where to look")
        cli = Path(sys.executable).parent / "banyan"
        say(f"""report      {folder / "report.html"}   (open it in a browser: entities, systems, roadmap, graph)
catalog     {folder / "catalog.json"}   graph {folder / "graph.mmd"}   roadmap {folder / "roadmap.csv"}
API docs    http://127.0.0.1:{port}/docs/api   metrics http://127.0.0.1:{port}/metrics
console     http://127.0.0.1:{port}/console   (admin key: {ADMIN_KEY}, any name)
drops       {folder / "drops"}   databases {folder / "databases"}

Try it yourself, in another terminal (these commands work as printed):
  curl -H 'X-API-Key: {key}' http://127.0.0.1:{port}/v1/ACME-US/inventory/{traffic.skus[0]}
  export BANYAN_STORE={folder / "cutover.db"}
  {cli} cutover status --routes {REPO / "routes"}
  {cli} cutover history --routes {REPO / "routes"}
  {cli} outbox status""")
        if not args.once:
            say("\nthe gateway keeps serving, with a trickle of webshop traffic; Ctrl-C to stop")
            keep_serving(consumer, traffic)


if __name__ == "__main__":
    main()
