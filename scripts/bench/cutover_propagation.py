"""Benchmark: how fast a cutover change reaches another gateway, on PostgreSQL and on SQLite.

    python scripts/bench/cutover_propagation.py [--flips 100]

Starts two `banyan serve` processes on one store and two small ERPs (legacy, cloud). Each flip
changes order-get for ACME-US through gateway A's admin API, between legacy and cloud_primary, and
polls gateway B's real traffic every 2 ms until B serves from the new side. The delay runs from
just before the change is sent to A until B's answer shows it, so it includes A's handling, the
commit, the signal (LISTEN/NOTIFY on PostgreSQL, the generation check on SQLite) and B's reload.
Prints p50, p99 and max per store, and how each compares with the one-second target.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "bench-admin-key-0123456789"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/banyan_cutover_bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def erp(name: str) -> Iterator[str]:
    body = json.dumps({"orderId": "SO-1", "total": 10.0, "system": name}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def routes(folder: Path, legacy: str, cloud: str) -> Path:
    path = folder / "routes"
    path.mkdir(exist_ok=True)
    (path / "orders.yaml").write_text(
        textwrap.dedent(
            f"""\
            routes:
              - name: order-get
                operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
                entity: {{from: path, name: entity, values: [ACME-US]}}
                key: {{from: path, name: orderId}}
                legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{orderId}}"}}}}
                cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{orderId}}"}}}}
            """
        )
    )
    return path


@contextmanager
def gateway(folder: Path, store: str) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--routes",
        str(folder),
        "--insecure-no-auth",
        "--port",
        str(port),
        "--store",
        store,
        "--no-access-log",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "BANYAN_ADMIN_KEY": ADMIN_KEY}, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway on {store} did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def served_by(url: str) -> str:
    with urllib.request.urlopen(f"{url}/v1/ACME-US/orders/SO-1", timeout=5) as answer:
        return str(answer.headers["X-Served-By"])


def change(url: str, mode: str, n: int) -> None:
    body = json.dumps({"mode": mode, "reason": f"propagation flip {n}", "force": True}).encode()
    request = urllib.request.Request(
        f"{url}/admin/cutover/order-get/ACME-US",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "X-Admin-Key": ADMIN_KEY, "X-Actor": "bench"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def measure(folder: Path, store: str, flips: int) -> tuple[list[float], list[float]]:
    delays, puts = [], []
    with gateway(folder, store) as a, gateway(folder, store) as b:
        for n in range(flips):
            mode, side = ("cloud_primary", "cloud") if n % 2 == 0 else ("legacy", "legacy")
            started = time.perf_counter()
            change(a, mode, n)
            puts.append((time.perf_counter() - started) * 1000)
            while served_by(b) != side:
                if time.perf_counter() - started > 10:
                    raise SystemExit(f"gateway B did not see flip {n} within 10 s")
                time.sleep(0.002)
            delays.append((time.perf_counter() - started) * 1000)
    return delays, puts


def postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=100)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    results = {}
    with tempfile.TemporaryDirectory() as scratch, erp("legacy") as legacy, erp("cloud") as cloud:
        folder = routes(Path(scratch), legacy, cloud)
        postgres("DROP DATABASE IF EXISTS banyan_cutover_bench WITH (FORCE)")
        postgres("CREATE DATABASE banyan_cutover_bench")
        try:
            results["PostgreSQL (LISTEN/NOTIFY)"] = measure(folder, PG_BENCH, args.flips)
        finally:
            postgres("DROP DATABASE IF EXISTS banyan_cutover_bench WITH (FORCE)")
        results["SQLite (generation check)"] = measure(folder, str(Path(scratch) / "cutover.db"), args.flips)
    report.say(f"change on gateway A → seen in gateway B's traffic, {args.flips} flips each (ms)")
    report.say(f"{'store':<30}{'p50':>9}{'p99':>9}{'max':>9}{'p99 / 1 s target':>19}{'A answers PUT, p50':>21}")
    for name, (delays, puts) in results.items():
        ordered = sorted(delays)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
        store = name.split()[0].lower()
        report.figure(f"{store}_p50_ms", statistics.median(ordered))
        report.figure(f"{store}_p99_ms", p99)
        report.figure(f"{store}_max_ms", ordered[-1])
        report.figure(f"{store}_p99_over_target", p99 / 1000)
        report.figure(f"{store}_put_p50_ms", statistics.median(puts))
        report.say(
            f"{name:<30}{statistics.median(ordered):>9.1f}{p99:>9.1f}{ordered[-1]:>9.1f}{p99 / 1000:>19.3f}"
            f"{statistics.median(puts):>21.1f}"
        )
    report.done()


if __name__ == "__main__":
    main()
