"""Benchmark: the gateway against nginx and a bare aiohttp proxy, on the same backend, in one run.

    python scripts/bench/gateway.py [--seconds 10] [--connections 32] [--only PART …] [--json]

Starts nginx twice (one worker each: a backend serving a small JSON body, and a reverse proxy in
front of it), a bare aiohttp forwarding proxy (bare_proxy.py: the Python ceiling), and gateways
(`banyan serve`, every policy on: correlation id, JSON access log, API key, scope, rate limit, body
size, idempotency, problems, metrics): one worker on SQLite, two workers on SQLite, one worker on
PostgreSQL, each with the deliverer beside its workers (the process that delivers the outbox).
Then it measures, one after the other:

- throughput with wrk: backend, nginx proxy, bare proxy, the gateway's SOAP passthrough (1 and 2
  workers) and a managed JSON route, with the ratios the gateway is held to;
- p99 at half the gateway's own peak, open loop (wrk with open_loop.lua), 5 runs of 5 s, and the
  same for the bare proxy at half of its peak;
- a write route at 300 req/s, open loop: legacy, legacy with an Idempotency-Key on every write (the
  fleet-wide claim in the store), dual_write on distinct orders, dual_write with every write on one
  hot order, and how long the outbox takes to drain after each; three rounds of the four, each
  ratio the median of its rounds';
- closed-loop dual-write capacity (acknowledged writes/s) on the SQLite and the PostgreSQL store.

`--only writes capacity` measures those parts alone (throughput, half, writes, capacity; half-load
runs at half of the peaks, so it measures throughput too): a figure "in one run" is one of the
whole bench.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
BODY = '{"ok": true, "items": [1, 2, 3], "entity": "ACME-DE"}'
SOAP = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    '<m:GetStock xmlns:m="urn:acme"><m:entity>ACME-DE</m:entity><m:sku>SKU-1</m:sku></m:GetStock>'
    "</s:Body></s:Envelope>"
)
KEY = "bench-key-0123456789"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PARTS = ["throughput", "half", "writes", "capacity"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def nginx(folder: Path, name: str, server: str) -> subprocess.Popen[bytes]:
    (folder / name).mkdir()
    conf = folder / name / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1; daemon off; pid {folder / name}/nginx.pid; error_log {folder / name}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {folder / name}; proxy_temp_path {folder / name};
  fastcgi_temp_path {folder / name}; uwsgi_temp_path {folder / name}; scgi_temp_path {folder / name};
  upstream backend {{ server 127.0.0.1:{os.environ.get("BANYAN_BENCH_BACKEND", "0")}; keepalive 64; }}
  {server} }}
"""
    )
    return subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(folder / name)])


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> tuple[float, float, float, float]:
    """Closed loop: req/s, p50 and p99 (ms), and the CPU share stolen meanwhile (percent)."""
    stolen = Stolen()
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"X-API-Key: {KEY}"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed responses\n{output}")
    return rate, percentile("50"), percentile("99"), stolen.percent()


OPEN_LOOP = Path(__file__).with_name("open_loop.lua")
RUN = f"{time.time_ns():x}"  # order ids and keys of this run: the store may keep an earlier run's for a day
runs = itertools.count()  # each open-loop run its own order ids and keys


class Stolen:
    """The share of CPU time the hypervisor gave to others while a figure was taken (/proc/stat's
    steal). On a shared VM a tail is often this, not the code: each figure says how much there was."""

    def __init__(self) -> None:
        self.steal, self.total = self.read()

    @staticmethod
    def read() -> tuple[int, int]:
        try:
            fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):  # not Linux: nothing to say
            return 0, 0
        return fields[7], sum(fields)

    def percent(self) -> float:
        steal, total = self.read()
        return 100 * (steal - self.steal) / (total - self.total) if total > self.total else 0.0


def open_loop(port: int, rate: float, seconds: int, kind: str = "soap", connections: int = 16) -> dict[str, float]:
    """Open-loop load from wrk and open_loop.lua: `rate` requests/s over `connections`, whatever the
    answers do, each latency counted from when its request was due. KIND is the lua's: soap,
    distinct, keyed or hot. Returns p50_ms, p99_ms, max_ms, answers, unanswered and steal_percent."""
    stolen = Stolen()
    every = 1e6 * connections / rate  # µs between one connection's requests
    command = [
        "wrk",
        f"-t{connections}",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        f"X-API-Key: {KEY}",
        "-s",
        str(OPEN_LOOP),
        f"http://127.0.0.1:{port}/",
        "--",
        str(every),
        str(connections),
        kind,
        f"{RUN}{next(runs)}",
        str(seconds),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    lines = [line for line in output.splitlines() if line.startswith("open-loop ")]
    if not lines:
        raise SystemExit(f"wrk printed no open-loop figures:\n{output}")
    figures: dict[str, float] = json.loads(lines[0].removeprefix("open-loop "))
    if figures["failures"]:
        raise SystemExit(f"{kind} at {rate:.0f} req/s: {figures['failures']:.0f} answers were not 2xx")
    figures["steal_percent"] = stolen.percent()
    return figures


def admin(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body else None,
        method=method,
        headers={"Content-Type": "application/json", "X-Admin-Key": KEY, "X-Actor": "bench"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def set_mode(port: int, mode: str) -> None:
    admin(port, "PUT", "/admin/cutover/order-put/ACME-DE", {"mode": mode, "reason": "bench", "force": True})
    time.sleep(0.5)  # every worker reloads its rules


def wait_drained(port: int, limit: float = 60) -> float:
    """Seconds until the outbox has nothing left to deliver (or `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            counts = admin(port, "GET", "/admin/outbox?state=pending")["counts"]
        except urllib.error.HTTPError as exc:  # said, with the gateway's reason, and asked again
            print(f"GET /admin/outbox answered {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
            time.sleep(0.5)
            continue
        if counts["pending"] + counts["intent"] == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    return limit


WRITE_RUNS = (
    ("legacy", "legacy", "distinct"),
    ("legacy_keyed", "legacy", "keyed"),
    ("dual_write", "dual_write", "distinct"),
    ("dual_write_hot_key", "dual_write", "hot"),
)


def dual_write(port: int, seconds: int, report: Report, rate: float = 300, rounds: int = 3) -> None:
    """The consumer's latency on a write route at one rate: legacy, legacy with an Idempotency-Key,
    dual_write on distinct orders and on one hot order. The four run one after the other in each of
    `rounds` rounds, and each ratio is the median of its rounds': the machine's speed drifts over a
    minute (the same run's p50 went from 1 to 3 ms in ten, with no CPU stolen), and a ratio of runs
    taken next to each other carries less of that drift than one of runs a minute apart."""
    each = max(3, seconds // 2)
    p99s: dict[str, list[float]] = {name: [] for name, _, _ in WRITE_RUNS}
    for round_ in range(1, rounds + 1):
        for name, mode, kind in WRITE_RUNS:
            set_mode(port, mode)
            open_loop(port, rate, 1, kind)  # warm up
            figures = open_loop(port, rate, each, kind)
            p99s[name].append(report.figure(f"write_{name}_p99_ms_round{round_}", figures["p99_ms"]))
            p50 = report.figure(f"write_{name}_p50_ms_round{round_}", figures["p50_ms"])
            steal = report.figure(f"write_{name}_steal_percent_round{round_}", figures["steal_percent"])
            drained = wait_drained(port) if mode != "legacy" else 0.0
            report.figure(f"write_{name}_drain_s_round{round_}", drained)
            after = f", outbox drained {drained:.1f} s after" if mode != "legacy" else ""
            report.say(
                f"write route, round {round_}, {name:18} {rate:.0f} req/s (open loop): p50 {p50:6.2f} ms, "
                f"p99 {p99s[name][-1]:6.2f} ms  (steal {steal:4.1f} %){after}"
            )
    for name, values in p99s.items():
        report.figure(f"write_{name}_p99_ms", statistics.median(values))

    def ratio(name: str) -> tuple[float, str]:
        each_round = [mine / legacy for mine, legacy in zip(p99s[name], p99s["legacy"], strict=True)]
        return statistics.median(each_round), ", ".join(f"{r:.2f}" for r in each_round)

    shared, rounds_said = ratio("legacy_keyed")
    report.figure("legacy_keyed_over_legacy_p99", shared)
    report.say(
        f"  legacy_keyed / legacy p99: {shared:.2f}× (rounds: {rounds_said})  "
        "(the Idempotency-Key claimed and settled in the store)"
    )
    for name, target in (("dual_write", 1.5), ("dual_write_hot_key", 2.0)):
        median, rounds_said = ratio(name)
        report.figure(f"{name}_over_legacy_p99", median)
        report.say(
            f"  {name} / legacy p99: {median:.2f}× median (rounds: {rounds_said})  "
            f"(target ≤ {target}×: {'met' if median <= target else 'MISSED'})"
        )


CAPACITY_LUA = """
wrk.method = "POST"
wrk.body = '{"customer": "C-1", "qty": 3}'
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format(nil, "/v1/ACME-DE/orders/PO-" .. math.random(1, 1000000000))
end
"""


def capacity(port: int, seconds: int, connections: int, script: Path, report: Report, store: str) -> None:
    """Closed loop: acknowledged dual writes per second (each with its durable copy for the cloud)."""
    set_mode(port, "dual_write")
    wrk(f"http://127.0.0.1:{port}/", 2, connections, script)
    rate, p50, p99, steal = wrk(f"http://127.0.0.1:{port}/", seconds, connections, script)
    report.figure(f"dual_write_capacity_{store}_rps", rate)
    report.figure(f"dual_write_capacity_{store}_p99_ms", p99)
    report.figure(f"dual_write_capacity_{store}_steal_percent", steal)
    met = "met" if rate >= 1000 else "MISSED"
    report.say(
        f"dual-write capacity, {store:10} store {rate:8,.0f} writes/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
        f"  (steal {steal:4.1f} %)  (target ≥ 1,000: {met})"
    )
    set_mode(port, "legacy")
    drained = report.figure(f"dual_write_capacity_{store}_drain_s", wait_drained(port, limit=300))
    report.say(f"  its outbox drained {drained:.1f} s after (the copies the cloud had not yet been sent)")


def serve(folder: Path, name: str, routes: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """`banyan serve` on `routes` with the bench's consumer, its log in FOLDER/NAME.log; with a store
    (in `options`) the admin API is on, with the bench's key."""
    banyan = str(Path(sys.executable).parent / "banyan")
    log = open(folder / f"{name}.log", "w")  # noqa: SIM115  (the access log policy stays on)
    command = [
        banyan,
        "serve",
        "--routes",
        str(routes),
        "--consumers",
        str(folder / "consumers.yaml"),
        "--port",
        str(port),
        *options,
    ]
    admin = {"BANYAN_ADMIN_KEY": KEY} if "--store" in options else {}  # the admin API needs a store
    return subprocess.Popen(command, stderr=log, env={**os.environ, **admin})


def gateway(folder: Path, name: str, port: int, store: str, workers: int = 1) -> subprocess.Popen[bytes]:
    return serve(folder, name, folder / "routes", port, "--store", store, "--workers", str(workers))


def need(*tools: str) -> None:
    """Stop with what to install when a tool the bench runs is missing."""
    for tool in tools:
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            raise SystemExit(f"{tool} is needed: apt-get install {tool} (make bench installs wrk; make test, nginx)")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait; one that does not stop in 20 s is said so and killed."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # say so, and do not leave it running
            name = Path(str(process.args[0] if isinstance(process.args, list) else process.args)).name
            print(f"{name} did not stop within 20 s of SIGTERM: killed", file=sys.stderr)
            process.kill()
            process.wait()


def postgres_store() -> str | None:
    """A fresh database on the local PostgreSQL for the store, or None when there is none."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as connection:
            connection.execute("DROP DATABASE IF EXISTS banyan_bench WITH (FORCE)")
            connection.execute("CREATE DATABASE banyan_bench")
    except Exception as exc:  # no server here: the row is left out, and said so
        print(f"PostgreSQL store row left out: {exc}", file=sys.stderr)
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + "/banyan_bench"


def throughput(
    rows: list[tuple[str, str, Path | None]], seconds: int, connections: int, report: Report
) -> dict[str, float]:
    rates = {}
    for label, url, lua in rows:
        wrk(url, 2, connections, lua)  # warm up
        rate, p50, p99, steal = wrk(url, seconds, connections, lua)
        rates[label] = report.figure(f"{label}_rps", rate)
        report.figure(f"{label}_p50_ms", p50)
        report.figure(f"{label}_p99_ms", p99)
        report.figure(f"{label}_steal_percent", steal)
        report.say(f"{label:36} {rate:10,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   steal {steal:4.1f} %")
    return rates


def half_load(port: int, rate: float, name: str, report: Report) -> None:
    """Five open-loop runs of 5 s at `rate` (half a peak): p99 each, and the CPU stolen meanwhile."""
    p99s, steals = [], []
    for run in range(1, 6):
        figures = open_loop(port, rate, 5)
        p99s.append(report.figure(f"{name}half_load_p99_ms_run{run}", figures["p99_ms"]))
        steals.append(report.figure(f"{name}half_load_steal_percent_run{run}", figures["steal_percent"]))
    report.figure(f"{name}half_load_p99_ms_worst", max(p99s))
    met = sum(p99 < 5 for p99 in p99s)
    who, target = ("bare aiohttp proxy", "") if name else ("gateway", f"  (target < 5 ms in 5 of 5: {met} of 5)")
    report.say(
        f"{who} at half load ({rate:,.0f} req/s, open loop, 5 runs of 5 s): p99 "
        f"{', '.join(f'{p:.2f}' for p in p99s)} ms{target}"
    )
    report.say(f"  CPU stolen by the hypervisor in those runs: {', '.join(f'{s:.1f}' for s in steals)} %")


def main() -> None:
    parser = argparse.ArgumentParser(description="the gateway versus nginx and a bare aiohttp proxy, same backend")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        metavar="PART",
        help=f"measure these parts alone: {', '.join(PARTS)}",
    )
    add_json_flag(parser)
    args = parser.parse_args()
    parts = set(args.only) | ({"throughput"} if "half" in args.only else set())
    report = Report.from_args(args)
    need("nginx", "wrk")
    folder = Path(tempfile.mkdtemp(prefix="banyan-bench-"))
    backend, proxy, bare, one, two, pg = (free_port() for _ in range(6))
    os.environ["BANYAN_BENCH_BACKEND"] = str(backend)
    serve_body = f"location / {{ default_type application/json; return 200 '{BODY}'; }}"
    proxy_conf = 'location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    processes = [
        nginx(folder, "backend", f"server {{ listen 127.0.0.1:{backend}; {serve_body} }}"),
        nginx(folder, "proxy", f"server {{ listen 127.0.0.1:{proxy}; {proxy_conf} }}"),
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare_proxy.py")), str(bare), f"http://127.0.0.1:{backend}/"]
        ),
    ]
    routes = folder / "routes"
    routes.mkdir()
    (routes / "bench.yaml").write_text(
        "routes:\n  - name: bench\n    passthrough:\n      path: /soap/Bench\n"
        f"      entity_xpath: \"string(//*[local-name()='entity'])\"\n      legacy: http://127.0.0.1:{backend}/\n"
        '  - name: order-put\n    operation: {method: POST, path: "/v1/{entity}/orders/{orderId}"}\n'
        "    entity: {from: path, name: entity}\n    key: {from: path, name: orderId}\n    writes: true\n"
        f'    legacy: {{backend: {{backend: http, url: "http://127.0.0.1:{backend}/legacy"}}}}\n'
        f'    cloud: {{backend: {{backend: http, url: "http://127.0.0.1:{backend}/cloud"}}}}\n'
        '  - name: stock-get\n    operation: {method: GET, path: "/v1/{entity}/stock/{sku}"}\n'
        "    entity: {from: path, name: entity, values: [ACME-DE]}\n    key: {from: path, name: sku}\n"
        f'    legacy: {{backend: {{backend: http, url: "http://127.0.0.1:{backend}/stock"}}}}\n'
    )
    (folder / "consumers.yaml").write_text(
        "consumers:\n  - name: bench\n"
        f"    key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}\n"
        "    entities: [ACME-DE]\n    rate: 1000000\n    burst: 1000000\n"
    )
    pg_store = postgres_store()
    processes += [
        gateway(folder, "one", one, str(folder / "one.db")),
        gateway(folder, "two", two, str(folder / "two.db"), workers=2),
    ]
    if pg_store:
        processes.append(gateway(folder, "pg", pg, pg_store))
    soap = folder / "soap.lua"
    escaped = SOAP.replace('"', '\\"')
    soap.write_text(
        f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "text/xml"\nwrk.headers["SOAPAction"] = "GetStock"\n'
    )
    writes = folder / "writes.lua"
    writes.write_text(CAPACITY_LUA)
    try:
        for port in (backend, proxy, bare, one, two) + ((pg,) if pg_store else ()):
            wait_for(port)
        time.sleep(0.5)
        if "throughput" in parts:
            measure_throughput(backend, proxy, bare, one, two, soap, args, report, "half" in parts)
        if "writes" in parts:
            dual_write(one, args.seconds, report)
            report.say()
        if "capacity" in parts:
            capacity(one, args.seconds, 64, writes, report, "sqlite")
            if pg_store:
                capacity(pg, args.seconds, 64, writes, report, "postgresql")
    finally:
        stop(processes)
        shutil.rmtree(folder, ignore_errors=True)
    report.done()


def measure_throughput(
    backend: int,
    proxy: int,
    bare: int,
    one: int,
    two: int,
    soap: Path,
    args: argparse.Namespace,
    report: Report,
    half: bool,
) -> None:
    """Peak throughput of each server, the ratios the gateway is held to, and (`half`) the half-load tails."""
    rates = throughput(
        [
            ("backend_nginx_direct", f"http://127.0.0.1:{backend}/", None),
            ("nginx_reverse_proxy", f"http://127.0.0.1:{proxy}/", None),
            ("bare_aiohttp_proxy", f"http://127.0.0.1:{bare}/", soap),
            ("gateway_passthrough", f"http://127.0.0.1:{one}/soap/Bench", soap),
            ("gateway_passthrough_2_workers", f"http://127.0.0.1:{two}/soap/Bench", soap),
            ("gateway_managed_json", f"http://127.0.0.1:{one}/v1/ACME-DE/stock/SKU-1", None),
        ],
        args.seconds,
        args.connections,
        report,
    )
    report.say()
    for name, mine, theirs, target in (
        ("gateway_over_nginx_proxy", "gateway_passthrough", "nginx_reverse_proxy", 0.12),
        ("gateway_over_bare_aiohttp", "gateway_passthrough", "bare_aiohttp_proxy", 1.0),
        ("workers_2_over_1", "gateway_passthrough_2_workers", "gateway_passthrough", 1.6),
    ):
        ratio = report.figure(name, rates[mine] / rates[theirs])
        report.say(f"{mine} / {theirs}: {ratio:.3f}×  (target ≥ {target}: {'met' if ratio >= target else 'MISSED'})")
    if half:
        half_load(one, rates["gateway_passthrough"] / 2, "", report)
        half_load(bare, rates["bare_aiohttp_proxy"] / 2, "bare_", report)
    report.say()


if __name__ == "__main__":
    main()
