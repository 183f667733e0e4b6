"""Benchmark: events out of a legacy trigger table, and what the routes' events cost the gateway.

    python scripts/bench/events.py [--rows 20000] [--seconds 10] [--connections 32] [--json]

Needs NATS with JetStream on 127.0.0.1:4222 and the SQLite ODBC driver. In one run:

- `banyan events from-table` drains an export table of ROWS rows (read over the real SQLite ODBC
  driver, each row a CloudEvent, acknowledged by JetStream, the mark moved per batch), beside
  nats-py publishing the same number of events of the same size with nothing else to do: the
  ceiling on this machine;
- two gateways on the same write route (one worker, a SQLite store each, a memory backend): without
  events, and with an event per write relayed to JetStream; wrk, closed loop, then how long the
  relay took to publish the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from report import Report, add_json_flag

import gateway as gateway_bench  # scripts/bench/gateway.py: its wrk and port helpers
from cutover.store import open_store

NATS = "nats://127.0.0.1:4222"
KEY = gateway_bench.KEY
ROUTE = """\
routes:
  - name: order-put
    operation: {{method: POST, path: "/v1/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    writes: true
{events}    legacy: {{backend: {{backend: memory, system: erp}}}}
"""
BENCH_TYPE = "bench.order.created"  # purged from the events stream afterwards, whatever else it holds
EVENTS = f"    events:\n      - {{type: {BENCH_TYPE}, subject: /orderId, data: both}}\n"


async def nats_ceiling(count: int, body: bytes) -> float:
    """Events a second nats-py publishes to a fresh stream, each acknowledged, nothing else done."""
    import nats

    connection = await nats.connect(NATS, connect_timeout=2)
    jetstream = connection.jetstream()
    stream = f"BANYAN_BENCH_{uuid.uuid4().hex[:6].upper()}"
    await jetstream.add_stream(name=stream, subjects=[f"bench.{stream}"])
    try:
        started = time.perf_counter()
        for n in range(count):
            await jetstream.publish(f"bench.{stream}", body, headers={"Nats-Msg-Id": f"ceiling-{n}"})
        return count / (time.perf_counter() - started)
    finally:
        await jetstream.delete_stream(stream)
        await connection.close()


async def drop_stream(stream: str, subject: str | None = None) -> None:
    """Delete the bench's own stream, or purge only the bench's subject from a shared one."""
    import nats

    connection = await nats.connect(NATS, connect_timeout=2)
    try:
        jetstream = connection.jetstream()
        await (jetstream.purge_stream(stream, subject=subject) if subject else jetstream.delete_stream(stream))
    except Exception as exc:  # not there: nothing to drop
        print(f"stream {stream}: {type(exc).__name__}", file=sys.stderr)
    finally:
        await connection.close()


def from_table(folder: Path, rows: int, report: Report) -> None:
    database = folder / "erp.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE order_export (order_id INTEGER, status TEXT, exported_at TEXT)")
        connection.executemany(
            "INSERT INTO order_export VALUES (?, 'SHIPPED', datetime('now'))", ((n,) for n in range(rows))
        )
    store, stream = str(folder / "marks.db"), f"BANYAN_BENCH_{uuid.uuid4().hex[:6].upper()}"
    banyan = str(Path(sys.executable).parent / "banyan")
    open_store(store).close()
    env = {**os.environ, "BENCH_ODBC": f"DRIVER={{SQLite3}};DATABASE={database}"}
    command = [
        banyan,
        "events",
        "from-table",
        "order_export",
        "--connection-env",
        "BENCH_ODBC",
        "--type",
        "com.acme.order.status",
        "--source",
        "/erp/bench",
        "--subject",
        f"bench.{stream}",
        "--stream",
        stream,
        "--subject-column",
        "order_id",
        "--store",
        store,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    asyncio.run(drop_stream(stream))
    if done.returncode != 0:
        raise SystemExit(f"from-table failed: {done.stdout}{done.stderr}")
    rate = report.figure("from_table_events_per_s", rows / elapsed)
    body = json.dumps(
        {
            "specversion": "1.0",
            "type": "com.acme.order.status",
            "source": "/erp/bench",
            "id": "/erp/bench/order_export/12345",
            "data": {"order_id": 12345, "status": "SHIPPED", "exported_at": "2026-12-01 17:00:00"},
        }
    ).encode()
    ceiling = report.figure("nats_py_publish_events_per_s", asyncio.run(nats_ceiling(rows, body)))
    report.say(f"events from-table, {rows:,} rows      {rate:10,.0f} events/s  (whole command, start-up included)")
    report.say(f"nats-py publish alone, same count    {ceiling:10,.0f} events/s")
    report.say(
        f"from-table / nats-py alone           {report.figure('from_table_over_ceiling', rate / ceiling):.2f}×\n"
    )


def serve(folder: Path, name: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    return gateway_bench.serve(
        folder, name, folder / f"routes-{name}", port, "--store", str(folder / f"{name}.db"), *options
    )


def relayed(port: int, limit: float = 300) -> float:
    """Seconds until the gateway's event backlog is empty."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        backlog = next(
            (float(line.split()[1]) for line in text.splitlines() if line.startswith("banyan_events_backlog ")), 0.0
        )
        if backlog == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    return limit


def main() -> None:
    parser = argparse.ArgumentParser(description="events from a trigger table; the gateway with events on and off")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    gateway_bench.need("wrk")
    folder = Path(tempfile.mkdtemp(prefix="banyan-bench-events-"))
    for name, events in (("off", ""), ("on", EVENTS)):
        (folder / f"routes-{name}").mkdir()
        (folder / f"routes-{name}" / "orders.yaml").write_text(ROUTE.format(events=events))
    (folder / "consumers.yaml").write_text(
        f"consumers:\n  - name: bench\n    key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}\n"
        "    entities: [ACME-DE]\n    rate: 1000000\n    burst: 1000000\n"
    )
    writes = folder / "writes.lua"
    writes.write_text(gateway_bench.CAPACITY_LUA)
    off, on = gateway_bench.free_port(), gateway_bench.free_port()
    processes = [serve(folder, "off", off), serve(folder, "on", on, "--events-broker", NATS)]
    try:
        from_table(folder, args.rows, report)
        for port in (off, on):
            gateway_bench.wait_for(port)
        rates = {}
        for name, port in (("events_off", off), ("events_on", on)):
            url = f"http://127.0.0.1:{port}/"
            gateway_bench.wrk(url, 2, args.connections, writes)  # warm up
            rate, p50, p99, steal = gateway_bench.wrk(url, args.seconds, args.connections, writes)
            rates[name] = report.figure(f"writes_{name}_rps", rate)
            report.figure(f"writes_{name}_p99_ms", p99)
            report.figure(f"writes_{name}_steal_percent", steal)
            report.say(
                f"writes, {name:10}                  {rate:10,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
                f"   steal {steal:4.1f} %"
            )
        drained = report.figure("events_relayed_seconds_after", relayed(on))
        report.say(f"{'':38} the relay had published every event {drained:.1f} s after the last write")
        ratio = report.figure("events_on_over_off", rates["events_on"] / rates["events_off"])
        report.say(f"events on / off                       {ratio:.2f}×")
    finally:
        gateway_bench.stop(processes)
        asyncio.run(drop_stream("BANYAN_EVENTS", f"events.{BENCH_TYPE}"))
        shutil.rmtree(folder, ignore_errors=True)
    report.done()


if __name__ == "__main__":
    main()
