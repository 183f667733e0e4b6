"""A running gateway on a loopback port, in front of a real spyne SOAP service."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from gateway.app import Settings, build_app
from gateway.consumers import Consumers, digest
from tests.legacy_soap import legacy_soap_service

KEYS = {
    "webshop": "key-webshop-0123456789",
    "limited": "key-limited-0123456789",
    "ops": "key-ops-0123456789",
    "de_only": "key-de-only-0123456789",
    "ana": "key-ana-operator-0123456789",  # a person's admin keys, with their roles
    "viv": "key-viv-viewer-0123456789",
    "dee": "key-dee-de-operator-0123456789",  # an operator for ACME-DE only
}


@pytest.fixture(scope="session")
def legacy_soap() -> Iterator[str]:
    with legacy_soap_service() as url:
        yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    url: str
    routes: Path
    app: web.Application

    def headers(self, consumer: str = "webshop", **extra: str) -> dict[str, str]:
        return {"X-API-Key": KEYS[consumer], **extra}


def routes_yaml(legacy: str, dead: str, drops: Path) -> str:
    return textwrap.dedent(
        f"""\
        routes:
          - name: order-create
            operation:
              method: POST
              path: /v1/{{entity}}/orders
              request:
                type: object
                required: [orderNumber, customer, lines]
                properties:
                  orderNumber: {{type: string, pattern: "^[A-Za-z0-9-]{{1,32}}$"}}
                  customer: {{type: string, minLength: 1}}
                  lines: {{type: array, minItems: 1, items: {{type: object, required: [qty], properties: {{qty: {{type: integer, minimum: 1}}}}}}}}
              response: {{type: object, properties: {{orderId: {{type: string}}, status: {{type: string}}}}}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: json, pointer: /orderNumber}}
            writes: true
            legacy:
              backend: {{backend: soap, url: "{legacy}", namespace: "urn:acme:erp:orders", operation: CreateOrder, timeout: 5}}
              request: {{map: {{customer: /customer, quantity: /lines/0/qty}}}}
              response: {{map: {{orderId: /CreateOrderResult, status: "=created"}}}}
            entities:
              ACME-UK:
                legacy:
                  backend: {{backend: file_drop, folder: "{drops / "in"}", name: "ORD_{{entity}}_{{correlation_id}}.json",
                            reply_folder: "{drops / "ack"}", timeout: 5}}
          - name: order-status
            operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}", response: {{type: object}}}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            key: {{from: path, name: orderId}}
            legacy:
              backend: {{backend: soap, url: "{legacy}", namespace: "urn:acme:erp:orders", operation: GetOrderStatus, retry_safe: true}}
              request: {{map: {{order_id: /orderId}}}}
              response: {{map: {{status: /GetOrderStatusResult}}}}
          - name: stock-dead
            operation: {{method: GET, path: "/v1/{{entity}}/stock/{{sku}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-UK, ACME-US]}}
            legacy:
              backend: {{backend: soap, url: "{dead}", namespace: "urn:x", operation: GetStock, retry_safe: true, timeout: 1}}
            resilience: {{retries: 0, breaker: {{failures: 2, reset: 60}}}}
          - name: order-service
            passthrough:
              path: /soap/OrderService
              entity_xpath: "string(//*[local-name()='customer'])"
              legacy: "{legacy}"
        """
    )


@contextmanager
def running_gateway(folder: Path, routes_text: str, **settings: str) -> Iterator[Gateway]:
    """A gateway serving `routes_text` on a free loopback port, in a thread of its own."""
    routes = folder / "routes"
    routes.mkdir(parents=True, exist_ok=True)  # a test may have put canonical schemas there first
    (routes / "orders.yaml").write_text(routes_text)
    consumers = {
        "consumers": [
            {
                "name": "webshop",
                "key_sha256": digest(KEYS["webshop"]),
                "entities": ["ACME-DE", "ACME-UK", "ACME-US"],
                "rate": 1000,
                "burst": 1000,
            },
            {
                "name": "limited",
                "key_sha256": digest(KEYS["limited"]),
                "routes": ["order-status"],
                "entities": ["ACME-DE"],
                "rate": 1,
                "burst": 2,
            },
            {"name": "ops", "key_sha256": digest(KEYS["ops"]), "admin": True},
            {"name": "Ana Lead", "key_sha256": digest(KEYS["ana"]), "role": "operator"},
            {"name": "Viv Viewer", "key_sha256": digest(KEYS["viv"]), "role": "viewer"},
            {"name": "Dee DE", "key_sha256": digest(KEYS["dee"]), "role": "operator", "entities": ["ACME-DE"]},
            {
                "name": "de_only",
                "key_sha256": digest(KEYS["de_only"]),
                "entities": ["ACME-DE"],
                "rate": 1000,
                "burst": 1000,
            },
        ]
    }
    (folder / "consumers.yaml").write_text(yaml.safe_dump(consumers))
    port = free_port()
    settings.setdefault("listen", f"http://127.0.0.1:{port}")  # where a process's steps call it
    app = build_app(
        Settings(routes=routes, consumers=Consumers.load(folder / "consumers.yaml"), max_body=64 * 1024, **settings)  # type: ignore[arg-type]
    )
    with app_in_thread(app, started_within=10, port=port) as url:
        yield Gateway(url, routes, app)


@pytest.fixture(scope="module")
def gateway(legacy_soap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    drops = folder / "drops"
    (drops / "in").mkdir(parents=True)
    (drops / "ack").mkdir()
    with running_gateway(folder, routes_yaml(legacy_soap, f"http://127.0.0.1:{free_port()}/", drops)) as running:
        yield running


@pytest.fixture(scope="module")
def soap_only_gateway(legacy_soap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The order routes over the SOAP service alone: every backend answers, so any 5xx is the gateway's."""
    text = routes_yaml(legacy_soap, legacy_soap, Path("/nonexistent"))
    text = text[: text.index("    entities:\n")] + text[text.index("  - name: order-status") :]
    with running_gateway(tmp_path_factory.mktemp("contract"), text) as running:
        yield running


SERVED: dict[str, Any] = {}  # URL → the `banyan serve` process behind it, for a test that kills one


@contextmanager
def serve_process(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `banyan serve` process (its own process group) on a free loopback port; its URL.
    `args` are serve's options besides --port; the group is stopped with SIGTERM afterwards (a test
    may kill it first: `SERVED[url]` is the process)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import requests

    from tests.conftest import REPO

    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--no-access-log", *args]
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.1)
        SERVED[url] = process
        yield url
    finally:
        SERVED.pop(url, None)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def app_in_thread(app: web.Application, started_within: float = 5, port: int | None = None) -> Iterator[str]:
    """`app` served on a (free) loopback port by an event loop in a thread of its own: its URL."""
    loop, runner, ready = asyncio.new_event_loop(), web.AppRunner(app), threading.Event()
    port = port or free_port()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(started_within)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@contextmanager
def stream_server_in_thread(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> Iterator[str]:
    """A raw TCP server (asyncio streams) on a free loopback port, in a thread of its own, for a
    test that writes its HTTP answers byte for byte: its http:// URL."""
    loop, port, ready = asyncio.new_event_loop(), free_port(), threading.Event()
    servers: list[asyncio.Server] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        servers.append(loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port)))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(servers[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
