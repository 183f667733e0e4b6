"""Traces: the consumer's traceparent is the parent of the gateway's span, the gateway starts a trace
when none came, each side's call is a span beneath it and the backend is sent that span's
traceparent; spans reach an OTLP/HTTP collector (here a real receiver decoding the protobuf the
SDK sends); every log line is JSON naming the trace and the correlation id."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from gateway.tracing import CURRENT, JsonLines, parse
from legacy_adapters import memory
from tests.gateway.conftest import Gateway, free_port, running_gateway

CONSUMER_TRACE, CONSUMER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{CONSUMER_TRACE}-{CONSUMER_SPAN}-01"


class Collector:
    """An OTLP/HTTP trace receiver: what the gateway's exporter sends, decoded."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

        async def receive(request: web.Request) -> web.Response:
            export = ExportTraceServiceRequest.FromString(await request.read())
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace": span.trace_id.hex(),
                                "id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "error": span.status.code == 2,
                                "attributes": {
                                    a.key: a.value.string_value or a.value.int_value for a in span.attributes
                                },
                            }
                        )
            return web.Response(content_type="application/x-protobuf", body=b"")

        app = web.Application()
        app.router.add_post("/v1/traces", receive)
        self.loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(runner.setup())
            self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert started.wait(5)

    def named(self, prefix: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["name"].startswith(prefix)]


class Backend:
    """A legacy HTTP service that keeps the traceparent of every call it gets."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                backend.seen.append(self.headers.get("traceparent"))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b'{"status": "open"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def routes(backend: Backend) -> str:
    return f"""\
routes:
  - name: order-status
    operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    legacy: {{backend: {{backend: http, url: "{backend.url}/orders/{{orderId}}"}}}}
  - name: order-put
    operation: {{method: PUT, path: "/v1/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    writes: true
    legacy: {{backend: {{backend: memory, system: erp}}}}
    cloud: {{backend: {{backend: http, url: "{backend.url}/orders/{{orderId}}", method: PUT}}}}
    cutover: {{mode: dual_write}}
"""


@pytest.fixture
def backend() -> Iterator[Backend]:
    memory.forget()
    served = Backend()
    yield served
    served.server.shutdown()
    memory.forget()


def get(gateway: Gateway, **headers: str) -> requests.Response:
    return requests.get(f"{gateway.url}/v1/ACME-DE/orders/SO-1", headers=gateway.headers(**headers), timeout=10)


def test_spans_reach_the_collector_in_the_consumers_trace(backend: Backend, tmp_path: Path) -> None:
    collector = Collector()
    store = str(tmp_path / "cutover.db")
    with running_gateway(tmp_path, routes(backend), store=store, otlp_endpoint=collector.url) as gateway:
        assert get(gateway, traceparent=TRACEPARENT).status_code == 200
        assert get(gateway).status_code == 200  # no traceparent: the gateway starts the trace
        put = requests.put(
            f"{gateway.url}/v1/ACME-DE/orders/SO-2", json={"qty": 1}, headers=gateway.headers(), timeout=10
        )
        assert put.status_code == 200
        deadline = time.monotonic() + 10
        while len(backend.seen) < 3:  # the cloud's copy, through the outbox
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # the gateway stopped: its last spans were exported on the way out
    servers = collector.named("GET ")
    assert len(servers) == 2
    mine = next(span for span in servers if span["trace"] == CONSUMER_TRACE)
    assert mine["parent"] == CONSUMER_SPAN and mine["kind"] == 2  # SERVER, a child of the consumer's span
    assert mine["attributes"]["http.route"] == "order-status" and mine["attributes"]["http.response.status_code"] == 200
    [client] = [s for s in collector.named("legacy order-status") if s["trace"] == CONSUMER_TRACE]
    assert client["parent"] == mine["id"] and client["kind"] == 3  # CLIENT
    sent = parse(backend.seen[0])
    assert sent is not None and sent[:2] == (CONSUMER_TRACE, client["id"])  # the backend's parent is that span
    started = next(span for span in servers if span["trace"] != CONSUMER_TRACE)
    assert started["parent"] == ""  # a new trace, rooted at the gateway
    assert parse(backend.seen[1]) is not None and parse(backend.seen[1])[0] == started["trace"]  # type: ignore[index]
    # the dual write: legacy inside the call's span, the cloud's copy delivered later, in the same trace
    [write] = collector.named("PUT ")
    delivered = [s for s in collector.named("cloud order-put") if s["trace"] == write["trace"]]
    assert len(delivered) == 1 and delivered[0]["parent"] == write["id"]
    assert len([s for s in collector.named("legacy order-put") if s["trace"] == write["trace"]]) == 1


def test_without_a_collector_the_backend_still_gets_the_gateways_own_span(backend: Backend, tmp_path: Path) -> None:
    with running_gateway(tmp_path, routes(backend)) as gateway:
        get(gateway, traceparent=TRACEPARENT)
    sent = parse(backend.seen[0])
    assert sent is not None and sent[0] == CONSUMER_TRACE and sent[1] != CONSUMER_SPAN


def test_every_log_line_is_json_with_the_trace_and_correlation_id() -> None:
    record = logging.LogRecord("banyan.gateway", logging.WARNING, __file__, 1, "route %s reloaded", ("x",), None)
    token = CURRENT.set((CONSUMER_TRACE, "corr-1"))
    try:
        line = json.loads(JsonLines().format(record))
    finally:
        CURRENT.reset(token)
    assert line["message"] == "route x reloaded" and line["level"] == "warning" and line["logger"] == "banyan.gateway"
    assert (line["trace_id"], line["correlation_id"]) == (CONSUMER_TRACE, "corr-1")
    assert line["at"].endswith("+00:00")


def test_a_serving_gateway_writes_only_json_lines(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "orders.yaml").write_text(routes(Backend()))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--routes",
            str(tmp_path / "routes"),
            "--insecure-no-auth",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/v1/ACME-DE/orders/SO-1", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        (tmp_path / "routes" / "orders.yaml").write_text("routes: [")  # a reload that fails: an error line
        time.sleep(2.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]  # every one parses
    assert any(line.get("route") == "order-status" and line.get("trace_id") for line in lines)  # the access log
    assert any(line.get("level") == "error" and "not reloaded" in line.get("message", "") for line in lines)
