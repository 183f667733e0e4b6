"""Benchmark: what the fleet-wide guarantees cost per call, and how fast an async route accepts writes.

    python scripts/bench/fleet.py [--seconds 10] [--connections 32] [--json]

nginx is the backend (legacy answers at once), so the gateway is what is measured. Two gateways
(`banyan serve`, one worker each, every policy on):

- local:  no store; rate-limit buckets and Idempotency-Key claims kept in the process (one process
  is all such a gateway can guarantee them for);
- shared: the PostgreSQL store (claims for the fleet; SQLite when there is no PostgreSQL) and Redis
  rate limits (`--rate-store`), as several workers and instances run.

Rows, closed loop with wrk, one after the other in one run, with the shared ÷ local ratios:

- reads on a managed JSON route (the limiter is the difference);
- writes with a distinct Idempotency-Key on each (the claim and its settlement are the difference);
- writes on an `async` route, answered 202 and made by the outbox worker, beside the same writes
  answered once legacy booked them: the acceptance rate, and how long the backlog takes to drain.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Report, add_json_flag

import gateway as gateway_bench  # scripts/bench/gateway.py: its nginx, wrk and store helpers

KEY = gateway_bench.KEY
REDIS = "redis://127.0.0.1:6379/14"

KEYED_LUA = """
wrk.method = "POST"
wrk.body = '{"customer": "C-1", "qty": 3}'
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local n = math.random(1, 1000000000)
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = "bench-" .. n
  return wrk.format(nil, PATH .. n, headers)
end
"""


def routes(folder: Path, backend: int, asynchronous: bool) -> None:
    """The bench's routes; the async one only for a gateway with a store (it keeps the accepted writes)."""
    folder.mkdir()
    legacy = f'{{backend: {{backend: http, url: "http://127.0.0.1:{backend}/legacy"}}}}'
    (folder / "bench.yaml").write_text(
        f"""\
routes:
  - name: stock-get
    operation: {{method: GET, path: "/v1/{{entity}}/stock/{{sku}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: sku}}
    legacy: {{backend: {{backend: http, url: "http://127.0.0.1:{backend}/stock"}}}}
  - name: order-put
    operation: {{method: POST, path: "/v1/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    writes: true
    legacy: {legacy}
"""
        + (
            ""
            if not asynchronous
            else f"""\
  - name: order-async
    operation: {{method: POST, path: "/v2/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    writes: true
    async: true
    legacy: {legacy}
"""
        )
    )


def redis_reachable() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=1).flushdb()
    except Exception as exc:  # no Redis here: the shared gateway is left out, and said so
        print(f"Redis is not reachable ({exc}): the shared rows need it", file=sys.stderr)
        return False
    return True


def serve(folder: Path, name: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    served = folder / f"{name}-routes"
    routes(served, int(os.environ["BANYAN_BENCH_BACKEND"]), asynchronous="--store" in options)
    return gateway_bench.serve(folder, name, served, port, *options)


def row(report: Report, label: str, url: str, seconds: int, connections: int, lua: Path | None) -> float:
    gateway_bench.wrk(url, 2, connections, lua)  # warm up
    rate, p50, p99, steal = gateway_bench.wrk(url, seconds, connections, lua)
    report.figure(f"{label}_rps", rate)
    report.figure(f"{label}_p99_ms", p99)
    report.figure(f"{label}_steal_percent", steal)
    report.say(f"{label:34} {rate:10,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   steal {steal:4.1f} %")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description="the cost of fleet-wide state, and the async route's acceptance")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    gateway_bench.need("nginx", "wrk")
    if not redis_reachable():
        raise SystemExit("Redis is needed on 127.0.0.1:6379 for the shared rate limits")
    folder = Path(tempfile.mkdtemp(prefix="banyan-bench-fleet-"))
    backend, local, shared = (gateway_bench.free_port() for _ in range(3))
    os.environ["BANYAN_BENCH_BACKEND"] = str(backend)
    answer = f"location / {{ default_type application/json; return 200 '{gateway_bench.BODY}'; }}"
    processes = [gateway_bench.nginx(folder, "backend", f"server {{ listen 127.0.0.1:{backend}; {answer} }}")]
    (folder / "consumers.yaml").write_text(
        f"consumers:\n  - name: bench\n    key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}\n"
        "    entities: [ACME-DE]\n    rate: 1000000\n    burst: 1000000\n"
    )
    store = gateway_bench.postgres_store() or str(folder / "shared.db")
    kind = "postgresql" if store.startswith("postgresql") else "sqlite"
    processes += [
        serve(folder, "local", local),
        serve(folder, "shared", shared, "--store", store, "--rate-store", REDIS),
    ]
    keyed, accepted = folder / "keyed.lua", folder / "async.lua"
    keyed.write_text(f'PATH = "/v1/ACME-DE/orders/PO-"\n{KEYED_LUA}')
    accepted.write_text(f'PATH = "/v2/ACME-DE/orders/PO-"\n{KEYED_LUA}')
    seconds, connections = args.seconds, args.connections
    try:
        for port in (backend, local, shared):
            gateway_bench.wait_for(port)
        time.sleep(0.5)
        report.say(f"shared state: the {kind} store and Redis\n")
        rates = {
            "reads_local": row(
                report,
                "reads_local_limiter",
                f"http://127.0.0.1:{local}/v1/ACME-DE/stock/SKU-1",
                seconds,
                connections,
                None,
            ),
            "reads_shared": row(
                report,
                "reads_redis_limiter",
                f"http://127.0.0.1:{shared}/v1/ACME-DE/stock/SKU-1",
                seconds,
                connections,
                None,
            ),
            "keyed_local": row(
                report, "keyed_writes_local_claims", f"http://127.0.0.1:{local}/", seconds, connections, keyed
            ),
            "keyed_shared": row(
                report, f"keyed_writes_{kind}_claims", f"http://127.0.0.1:{shared}/", seconds, connections, keyed
            ),
        }
        gateway_bench.wait_drained(shared)
        rates["async"] = row(
            report, "async_writes_accepted", f"http://127.0.0.1:{shared}/", seconds, connections, accepted
        )
        drained = report.figure("async_backlog_drain_seconds", gateway_bench.wait_drained(shared, limit=300))
        report.say(f"{'':34} the accepted backlog was made within {drained:.1f} s of the last 202\n")
        for name, mine, theirs in (
            ("redis_limiter_over_local", "reads_shared", "reads_local"),
            ("store_claims_over_local", "keyed_shared", "keyed_local"),
            ("async_accepted_over_sync_keyed", "async", "keyed_shared"),
        ):
            ratio = report.figure(name, rates[mine] / rates[theirs])
            report.say(f"{name:34} {ratio:.2f}×")
    finally:
        gateway_bench.stop(processes)
        if not os.environ.get("BANYAN_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
    report.done()


if __name__ == "__main__":
    main()
