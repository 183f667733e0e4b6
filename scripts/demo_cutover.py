"""A cutover in miniature: one route, one legal entity, real gateways, real traffic, real evidence.

    python scripts/demo_cutover.py [FOLDER] [--once]

Starts two small ERPs on loopback (the legacy one, and a cloud ERP that rounds a few order totals
differently) and `banyan serve` with a SQLite cutover store in FOLDER. Then it walks order-status
for ACME-DE up the ladder with `banyan cutover`, sending traffic through the gateway at each rung
so the gate has evidence to judge; and at canary the cloud ERP starts failing, so the guardrail
steps the route down by itself. Every command shown is run, and its output is what it printed.
Then the gateway keeps serving, with the migration console at /console, until Ctrl-C (`--once`
exits instead).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BANYAN = [sys.executable, "-m", "gateway.cli"]
ADMIN_KEY = "demo-admin-key"
ENTITY = "ACME-DE"


class Erp:
    """An order service: the cloud one differs on about one order in a hundred, and can be made to fail."""

    def __init__(self, name: str, differs: bool) -> None:
        self.name, self.differs, self.failing = name, differs, False
        erp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                order = self.path.rsplit("/", 1)[-1]
                total = 100 + int(hashlib.sha256(order.encode()).hexdigest()[:4], 16) % 900 + 0.25
                if erp.differs and order.endswith("7") and order[-2] == "9":  # ~1 % of orders: rounded
                    total = round(total)
                status, body = (503, {"error": "maintenance"}) if erp.failing else (200, {"id": order, "total": total})
                data = json.dumps({**body, "system": erp.name}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def routes(folder: Path, legacy: str, cloud: str) -> Path:
    path = folder / "routes"
    path.mkdir(parents=True, exist_ok=True)
    (path / "orders.yaml").write_text(
        textwrap.dedent(
            f"""\
            routes:
              - name: order-status
                operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
                entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
                key: {{from: path, name: orderId}}
                legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{orderId}}"}}}}
                cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{orderId}}"}}}}
                compare: {{ignore: [/system], noise_sample: 0.2}}
                resilience: {{retries: 0}}
                cutover:
                  gate: {{min_samples: 200, max_mismatch_rate: 0.02, max_error_rate: 0.01, min_minutes: 0}}
                  guardrail: {{min_samples: 20, max_error_rate: 0.05}}
            """
        )
    )
    return path


@contextmanager
def gateway(routes_folder: Path, store: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [*BANYAN, "serve", "--routes", str(routes_folder), "--insecure-no-auth", "--port", str(port),
               "--store", str(store), "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env={**os.environ, "BANYAN_ADMIN_KEY": ADMIN_KEY})
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not start") from None
            time.sleep(0.1)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def banyan(store: Path, routes_folder: Path, *args: str) -> None:
    shown = " ".join(f'"{a}"' if " " in a else a for a in args)
    print(f"\n$ banyan cutover {shown}", flush=True)
    environment = {**os.environ, "BANYAN_STORE": str(store), "COLUMNS": "120"}
    subprocess.run([*BANYAN, "cutover", *args, "--routes", str(routes_folder)], env=environment, check=False)


def traffic(port: int, count: int, start: int) -> str:
    served: dict[str, int] = {}
    for n in range(start, start + count):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/{ENTITY}/orders/SO-{n:05d}", timeout=10) as answer:
                side = answer.headers["X-Served-By"]
        except urllib.error.HTTPError as error:
            side = f"error {error.code}"
        served[side] = served.get(side, 0) + 1
    time.sleep(1.5)  # mirrored calls finish and the gateway flushes its evidence
    return ", ".join(f"{n} {side}" for side, n in sorted(served.items()))


def keep_serving(port: int, cloud: Erp) -> None:
    """Leave the gateway up for the console, with a trickle of traffic, until Ctrl-C."""
    cloud.failing = False
    print(f"\nthe cloud ERP is back. Migration console: http://127.0.0.1:{port}/console "
          f"(admin key: {ADMIN_KEY}, any name) — Ctrl-C to stop", flush=True)  # fmt: skip
    n = 2000
    try:
        while True:
            traffic(port, 20, n)
            n += 20
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        print("stopping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=".demo")
    parser.add_argument("--once", action="store_true", help="exit at the end instead of serving the console")
    args = parser.parse_args()
    folder = Path(args.folder) / "cutover"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    legacy, cloud = Erp("legacy", differs=False), Erp("cloud", differs=True)
    routes_folder, store, port = routes(folder, legacy.url, cloud.url), folder / "cutover.db", free_port()
    with gateway(routes_folder, store, port):
        print(f"gateway on 127.0.0.1:{port}, cutover store {store}")

        def run(*command: str) -> None:
            banyan(store, routes_folder, *command)

        def change(*command: str) -> None:  # a lead's change: it names its actor
            run(*command, "--actor", "ana")

        change("set", "order-status", ENTITY, "shadow", "--reason", "CHG-101 listen to the cloud")
        print(f"400 calls: {traffic(port, 400, 0)}")
        run("status", "--route", "order-status", "--entity", ENTITY)
        run("mismatches", "order-status", "--entity", ENTITY)
        change("promote", "order-status", ENTITY, "--reason", "CHG-102 shadow is clean")
        print(f"400 calls: {traffic(port, 400, 400)}")
        change("promote", "order-status", ENTITY, "--reason", "CHG-103 start canary")
        change("set", "order-status", ENTITY, "canary", "--percent", "25", "--force", "--reason",
               "CHG-104 quarter of the orders")  # fmt: skip
        print(f"400 calls: {traffic(port, 400, 800)}")
        cloud.failing = True
        print("the cloud ERP goes into maintenance without notice")
        print(f"400 calls: {traffic(port, 400, 1200)}")
        time.sleep(5)  # the next guardrail tick
        run("history", "--entity", ENTITY)
        print(f"400 calls: {traffic(port, 400, 1600)}")
        if not args.once:
            keep_serving(port, cloud)
    legacy.server.shutdown()
    cloud.server.shutdown()


if __name__ == "__main__":
    main()
