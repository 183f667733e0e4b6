"""Benchmark: the gateway against nginx as a reverse proxy, on the same backend, in one run.

    python scripts/bench/gateway.py [--seconds 10] [--connections 32]

Starts two nginx processes (one worker each): one serves a small JSON body as the backend, one is
a reverse proxy in front of it. Then wrk measures, one after the other: the backend directly, the
nginx proxy, and the gateway (`banyan serve`, one worker, every policy on: correlation id, JSON
access log, API key, rate limit, body size, problem handling) on a SOAP passthrough route to the
same backend. It prints req/s and p50/p99 latency for each and the gateway/nginx ratio, then
sends the gateway half its measured throughput at a fixed rate and reports that p99.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
BODY = '{"ok": true, "items": [1, 2, 3], "entity": "ACME-DE"}'
SOAP = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    '<m:GetStock xmlns:m="urn:acme"><m:entity>ACME-DE</m:entity><m:sku>SKU-1</m:sku></m:GetStock>'
    "</s:Body></s:Envelope>"
)
KEY = "bench-key-0123456789"


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


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> tuple[float, float, float]:
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
    return rate, percentile("50"), percentile("99")


SOAP_REQUEST = (
    f"POST /soap/Bench HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\nContent-Type: text/xml\r\n"
    f'SOAPAction: "GetStock"\r\nContent-Length: {len(SOAP)}\r\n\r\n{SOAP}'
).encode()
ORDER = '{"customer": "C-1", "qty": 3}'
WRITE_REQUEST = (
    f"POST /v1/ACME-DE/orders/PO-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
    f"Content-Type: application/json\r\nContent-Length: {len(ORDER)}\r\n\r\n{ORDER}"
).encode()


async def fixed_rate(
    port: int, rate: float, seconds: float, connections: int = 16, request: bytes = SOAP_REQUEST
) -> list[float]:
    """Open-loop load: one request every 1/rate s spread over keep-alive connections; latencies in ms."""
    latencies: list[float] = []
    queue: asyncio.Queue[float] = asyncio.Queue()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            scheduled = await queue.get()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < seconds:
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)  # latency counts from when the request was due, not when it was sent
        sent += 1
    await queue.join()
    for task in workers:
        task.cancel()
    return latencies


def dual_write(port: int, seconds: int, report: Report, rate: float = 300) -> None:
    """The consumer's latency on a write route in legacy mode, then in dual_write, at the same rate."""
    import json
    import urllib.request

    results = {}
    for mode in ("legacy", "dual_write"):
        body = json.dumps({"mode": mode, "reason": "bench", "force": True}).encode()
        change = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/cutover/order-put/ACME-DE", data=body, method="PUT",
            headers={"Content-Type": "application/json", "X-Admin-Key": KEY, "X-Actor": "bench"},
        )  # fmt: skip
        if mode != "legacy":
            urllib.request.urlopen(change, timeout=10).close()
            time.sleep(0.5)  # the gateway reloads its rules
        asyncio.run(fixed_rate(port, rate, 2, request=WRITE_REQUEST))  # warm up
        latencies = asyncio.run(fixed_rate(port, rate, seconds, request=WRITE_REQUEST))
        results[mode] = statistics.quantiles(latencies, n=100)[98]
        p50 = report.figure(f"write_{mode}_p50_ms", statistics.median(latencies))
        report.figure(f"write_{mode}_p99_ms", results[mode])
        report.say(
            f"write route, {mode:10} at {rate:.0f} req/s (open loop): p50 {p50:.2f} ms, p99 {results[mode]:.2f} ms"
        )
    ratio = report.figure("dual_write_over_legacy_p99", results["dual_write"] / results["legacy"])
    report.say(f"dual_write / legacy p99: {ratio:.2f}×  (target ≤ 1.1×: {'met' if ratio <= 1.1 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description="the gateway versus nginx as a proxy, same backend")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path("/usr/sbin/nginx").exists():
            raise SystemExit(f"{tool} is needed: apt-get install nginx wrk (make bench does)")
    folder = Path(tempfile.mkdtemp(prefix="banyan-bench-"))
    backend_port, proxy_port, gateway_port = free_port(), free_port(), free_port()
    os.environ["BANYAN_BENCH_BACKEND"] = str(backend_port)
    serve_body = f"location / {{ default_type application/json; return 200 '{BODY}'; }}"
    proxy = 'location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    processes = [
        nginx(folder, "backend", f"server {{ listen 127.0.0.1:{backend_port}; {serve_body} }}"),
        nginx(folder, "proxy", f"server {{ listen 127.0.0.1:{proxy_port}; {proxy} }}"),
    ]
    routes = folder / "routes"
    routes.mkdir()
    (routes / "bench.yaml").write_text(
        "routes:\n  - name: bench\n    passthrough:\n      path: /soap/Bench\n"
        f"      entity_xpath: \"string(//*[local-name()='entity'])\"\n      legacy: http://127.0.0.1:{backend_port}/\n"
        '  - name: order-put\n    operation: {method: POST, path: "/v1/{entity}/orders/{orderId}"}\n'
        "    entity: {from: path, name: entity}\n    key: {from: path, name: orderId}\n    writes: true\n"
        f'    legacy: {{backend: {{backend: http, url: "http://127.0.0.1:{backend_port}/legacy"}}}}\n'
        f'    cloud: {{backend: {{backend: http, url: "http://127.0.0.1:{backend_port}/cloud"}}}}\n'
    )
    import hashlib

    (folder / "consumers.yaml").write_text(
        "consumers:\n  - name: bench\n"
        f"    key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}\n"
        "    entities: [ACME-DE]\n    rate: 1000000\n    burst: 1000000\n"
    )
    banyan = str(Path(sys.executable).parent / "banyan")
    log = open(folder / "access.log", "w")  # noqa: SIM115  (the access log policy stays on)
    processes.append(
        subprocess.Popen(
            [
                banyan,
                "serve",
                "--routes",
                str(routes),
                "--consumers",
                str(folder / "consumers.yaml"),
                "--port",
                str(gateway_port),
                "--store",
                str(folder / "cutover.db"),
            ],
            stderr=log,
            env={**os.environ, "BANYAN_ADMIN_KEY": KEY},
        )
    )
    script = folder / "post.lua"
    escaped = SOAP.replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "text/xml"\nwrk.headers["SOAPAction"] = "GetStock"\n'
    )
    try:
        for port in (backend_port, proxy_port, gateway_port):
            wait_for(port)
        time.sleep(0.5)
        results = {}
        for name, url, lua in (
            ("backend (nginx, direct)", f"http://127.0.0.1:{backend_port}/", None),
            ("nginx reverse proxy", f"http://127.0.0.1:{proxy_port}/", None),
            ("banyan gateway, all policies", f"http://127.0.0.1:{gateway_port}/soap/Bench", script),
        ):
            wrk(url, 2, args.connections, lua)  # warm up
            results[name] = wrk(url, args.seconds, args.connections, lua)
            rate, p50, p99 = results[name]
            label = name.split(",")[0].replace(" ", "_").replace("(", "").replace(")", "")
            report.figure(f"{label}_rps", rate)
            report.figure(f"{label}_p50_ms", p50)
            report.figure(f"{label}_p99_ms", p99)
            report.say(f"{name:30} {rate:10,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        gateway_rate = results["banyan gateway, all policies"][0]
        ratio = report.figure("gateway_over_nginx_proxy", gateway_rate / results["nginx reverse proxy"][0])
        report.say(
            f"\ngateway / nginx throughput: {ratio:.2f}  (target ≥ 0.33: {'met' if ratio >= 0.33 else 'MISSED'})"
        )
        half = gateway_rate / 2
        latencies = asyncio.run(fixed_rate(gateway_port, half, args.seconds))
        p99 = report.figure("half_load_p99_ms", statistics.quantiles(latencies, n=100)[98])
        report.figure("half_load_p50_ms", statistics.median(latencies))
        report.say(f"gateway at half load ({half:,.0f} req/s, open loop): p50 {statistics.median(latencies):.2f} ms, "
                   f"p99 {p99:.2f} ms  (target < 5 ms: {'met' if p99 < 5 else 'MISSED'})")  # fmt: skip
        dual_write(gateway_port, args.seconds, report)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # say so, and do not leave it running
                print(f"{Path(str(process.args[0])).name} did not stop within 20 s of SIGTERM: killed", file=sys.stderr)
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    report.done()


if __name__ == "__main__":
    main()
