"""Benchmark: a 3-step process route beside the same three route calls made by the client.

    python scripts/bench/processes.py [--calls 300] [--seconds 10] [--concurrency 64] [--json]

In one run, on this machine, each figure side by side:

- latency: a client calls the process (check the customer's terms, book the order, post the
  invoice) CALLS times, and as often makes the same three route calls itself, one after another,
  alternating the two: p50 and p99 of each and their ratios (goal ≤ 1.3). `banyan serve` with a
  SQLite store, in front of a small REST ERP of its own process;
- saturation: CONCURRENCY clients start instances for SECONDS, SQLite and PostgreSQL stores:
  instances a second, and where an instance's time goes (its calls, as each step's record says,
  against its whole life from start to end).

The SIGKILL of a gateway under 200 running instances is tests/processes/test_process_crash.py,
which runs with the suite on both stores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cutover.store import open_store  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/banyan_bench_processes"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def erp(port: int) -> None:
    """The ERP: terms, bookings and invoices, answered at once (the figures are the gateway's)."""
    from aiohttp import web

    numbers = iter(range(1, 1 << 62))

    async def terms(request: web.Request) -> web.Response:
        return web.json_response({"customer": request.match_info["customer"], "creditHold": False})

    async def book(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"orderId": f"O-{next(numbers)}", "orderNumber": body["orderNumber"]}, status=201)

    async def invoice(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"invoice": f"INV-{body['orderId']}"}, status=201)

    app = web.Application()
    app.router.add_get("/crm/{customer}/terms", terms)
    app.router.add_post("/erp/{entity}/orders", book)
    app.router.add_post("/erp/{entity}/invoices", invoice)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def routes(erp_url: str) -> str:
    return textwrap.dedent(
        f"""\
        routes:
          - name: terms
            operation: {{method: GET, path: "/v1/{{entity}}/customers/{{customer}}/terms"}}
            entity: {{from: path, name: entity}}
            legacy: {{backend: {{backend: http, url: "{erp_url}/crm/{{customer}}/terms"}}}}
          - name: book
            operation: {{method: POST, path: "/v1/{{entity}}/orders"}}
            entity: {{from: path, name: entity}}
            key: {{from: json, pointer: /orderNumber}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{erp_url}/erp/{{entity}}/orders"}}}}
          - name: invoice
            operation: {{method: POST, path: "/v1/{{entity}}/invoices"}}
            entity: {{from: path, name: entity}}
            key: {{from: json, pointer: /orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{erp_url}/erp/{{entity}}/invoices"}}}}
        processes:
          - name: order-to-invoice
            operation: {{method: POST, path: /v1/order-to-invoice}}
            steps:
              - name: terms
                call: terms
                entity: =ACME-DE
                params: {{customer: /request/customer}}
                refuse: {{pointer: /steps/terms/answer/creditHold, equals: true, reason: credit hold}}
              - name: book
                call: book
                entity: =ACME-DE
                body: {{map: {{orderNumber: /request/orderNumber, customer: /request/customer}}}}
              - name: invoice
                call: invoice
                entity: =ACME-DE
                body: {{map: {{orderId: /steps/book/answer/orderId}}}}
            result: {{map: {{orderId: /steps/book/answer/orderId, invoice: /steps/invoice/answer/invoice}}}}
        """
    )


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{command[2]} did not start on port {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def gateway(folder: Path, store: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--routes", str(folder), "--insecure-no-auth"]
    command += ["--port", str(port), "--store", store, "--no-access-log"]
    return start(command, port), f"http://127.0.0.1:{port}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def latency(url: str, calls: int) -> tuple[list[float], list[float]]:
    process, by_hand = [], []
    async with aiohttp.ClientSession() as session:
        for n in range(calls + 20):  # the first 20 of each warm the pools, and are not counted
            began = time.perf_counter()
            async with session.post(
                f"{url}/v1/order-to-invoice", json={"orderNumber": f"P-{n}", "customer": "C-1"}
            ) as answer:
                assert answer.status == 201, await answer.text()
                await answer.read()
            took = time.perf_counter() - began
            if n >= 20:
                process.append(took)
            began = time.perf_counter()
            async with session.get(f"{url}/v1/ACME-DE/customers/C-1/terms") as answer:
                assert (await answer.json())["creditHold"] is False
            async with session.post(
                f"{url}/v1/ACME-DE/orders", json={"orderNumber": f"H-{n}", "customer": "C-1"}
            ) as answer:
                order = await answer.json()
            async with session.post(f"{url}/v1/ACME-DE/invoices", json={"orderId": order["orderId"]}) as answer:
                assert answer.status == 201
                await answer.read()
            if n >= 20:
                by_hand.append(time.perf_counter() - began)
    return process, by_hand


async def saturate(url: str, seconds: float, concurrency: int, tag: str) -> int:
    done = 0
    stop_at = time.monotonic() + seconds

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        nonlocal done
        k = 0
        while time.monotonic() < stop_at:
            async with session.post(
                f"{url}/v1/order-to-invoice", json={"orderNumber": f"{tag}-{n}-{k}", "customer": "C-1"}
            ) as answer:
                await answer.read()
                if answer.status == 201:
                    done += 1
            k += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(n, session) for n in range(concurrency)))
    return done


def where_time_goes(store: str) -> tuple[float, float]:
    """Mean seconds of an instance's life, and of its calls (as each step's record says)."""
    opened = open_store(store, create=False)
    try:
        with opened.reading() as cursor:
            rows = opened.execute(
                cursor,
                "SELECT i.id, i.created, MAX(s.finished), SUM(s.finished - s.started) FROM process_instances i "
                "JOIN process_steps s ON s.instance_id = i.id WHERE i.state = 'completed' GROUP BY i.id, i.created",
            ).fetchall()
    finally:
        opened.close()
    lives = [float(last) - float(created) for _, created, last, _ in rows]
    calls = [float(spent) for _, _, _, spent in rows]
    return statistics.mean(lives), statistics.mean(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--erp", type=int, help=argparse.SUPPRESS)  # run as the ERP on this port
    add_json_flag(parser)
    args = parser.parse_args()
    if args.erp:
        erp(args.erp)
        return
    report = Report.from_args(args)
    erp_port = free_port()
    the_erp = start([sys.executable, __file__, "--erp", str(erp_port)], erp_port)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "routes"
            folder.mkdir()
            (folder / "routes.yaml").write_text(routes(f"http://127.0.0.1:{erp_port}"))
            served, url = gateway(folder, str(Path(scratch) / "latency.db"))
            try:
                process, by_hand = asyncio.run(latency(url, args.calls))
            finally:
                stop(served)
            for name, share in (("p50", 0.5), ("p99", 0.99)):
                mine, theirs = percentile(process, share) * 1000, percentile(by_hand, share) * 1000
                report.say(
                    f"{name}: the process {mine:.2f} ms, the three calls by the client {theirs:.2f} ms: "
                    f"ratio {mine / theirs:.2f} (goal ≤ 1.3)"
                )
                report.figure(f"process_{name}_ms", mine)
                report.figure(f"by_hand_{name}_ms", theirs)
                report.figure(f"ratio_{name}", mine / theirs)
            import psycopg

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
                admin.execute("DROP DATABASE IF EXISTS banyan_bench_processes WITH (FORCE)")
                admin.execute("CREATE DATABASE banyan_bench_processes")
            for name, store in (("sqlite", str(Path(scratch) / "saturation.db")), ("postgres", PG)):
                served, url = gateway(folder, store)
                try:
                    done = asyncio.run(saturate(url, args.seconds, args.concurrency, name))
                finally:
                    stop(served)
                life, calls = where_time_goes(store)
                rate = done / args.seconds
                report.say(
                    f"{name}: {rate:,.0f} instances/s with {args.concurrency} clients; an instance lives "
                    f"{life * 1000:.1f} ms, {calls * 1000:.1f} ms of it in its three calls "
                    f"({calls / life:.0%}); the rest is its records and waiting for the loop"
                )
                report.figure(f"{name}_instances_per_s", rate)
                report.figure(f"{name}_life_ms", life * 1000)
                report.figure(f"{name}_calls_ms", calls * 1000)
    finally:
        stop(the_erp)
    report.done()


if __name__ == "__main__":
    main()
