"""The request path against in-memory systems of record: every rung's writes, once each, in order.

The same gateway code as in production (policies, table, sides, outbox, group commit, a real SQLite
store) over `memory` backends, so what legacy and the cloud booked can be read back exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import requests

from gateway.state import KEY_TURNS
from legacy_adapters import memory
from tests.gateway.conftest import KEYS, Gateway, running_gateway

ROUTES = """\
routes:
  - name: order-put
    operation: {method: PUT, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE, ACME-US]}
    key: {from: path, name: orderId}
    writes: true
    legacy: {backend: {backend: memory, system: erp, jitter: 0.003}}
    cloud: {backend: {backend: memory, system: cloud, latency: 0.001}}
    cutover: {mode: dual_write}
    resilience: {retries: 0, breaker: {failures: 5, reset: 0.5}}
  - name: order-get
    operation: {method: GET, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE, ACME-US]}
    key: {from: path, name: orderId}
    legacy: {backend: {backend: memory, system: erp}}
    cloud: {backend: {backend: memory, system: cloud}}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    memory.forget()
    with running_gateway(tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), admin_key="admin-key-0123") as running:
        yield running
    memory.forget()


class Client:
    def __init__(self, gateway: Gateway) -> None:
        self.url, self.session = gateway.url, requests.Session()

    def put(self, order: str, body: dict[str, object], **headers: str) -> requests.Response:
        return self.session.put(
            f"{self.url}/v1/ACME-DE/orders/{order}",
            json=body,
            headers={"X-API-Key": KEYS["webshop"], **headers},
            timeout=10,
        )

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.session.get(f"{self.url}{path}", headers={"X-API-Key": KEYS["webshop"], **headers}, timeout=10)


def _until(condition, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the outbox did not deliver in time"
        time.sleep(0.02)


def test_dual_write_books_each_write_once_on_each_side(gateway: Gateway) -> None:
    client = Client(gateway)
    for n in range(5):
        answer = client.put(f"PO-{n}", {"qty": n})
        assert answer.status_code == 200 and answer.headers["X-Served-By"] == "legacy"
    erp, cloud = memory.system("erp"), memory.system("cloud")
    _until(lambda: len(cloud.writes) == 5)
    assert sorted(erp.records) == sorted(cloud.records) == [("ACME-DE", f"PO-{n}") for n in range(5)]
    assert len(erp.writes) == 5


def test_64_concurrent_writers_on_one_key_land_once_each_in_the_same_order(gateway: Gateway) -> None:
    async def write_all() -> list[int]:
        async with aiohttp.ClientSession(gateway.url) as session:

            async def one(n: int) -> int:
                headers = {"X-API-Key": KEYS["webshop"]}
                async with session.put("/v1/ACME-DE/orders/HOT", json={"n": n}, headers=headers) as answer:
                    return answer.status

            return await asyncio.gather(*(one(n) for n in range(64)))

    assert asyncio.run(write_all()) == [200] * 64
    erp, cloud = memory.system("erp"), memory.system("cloud")
    _until(lambda: len(cloud.writes) == 64)
    time.sleep(0.3)  # nothing more arrives: no write is delivered twice
    assert len(erp.writes) == len(cloud.writes) == 64
    assert cloud.writes_of("HOT") == erp.writes_of("HOT")  # the order legacy took them in
    assert cloud.records[("ACME-DE", "HOT")] == erp.records[("ACME-DE", "HOT")]  # both end on the same write
    assert len(gateway.app[KEY_TURNS]) == 0  # no lock left behind for the key


def test_a_retried_write_is_answered_once_and_booked_once(gateway: Gateway) -> None:
    client = Client(gateway)
    first = client.put("PO-9", {"qty": 1}, **{"Idempotency-Key": "retry-1"})
    again = client.put("PO-9", {"qty": 1}, **{"Idempotency-Key": "retry-1"})
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    cloud = memory.system("cloud")
    _until(lambda: len(cloud.writes) == 1)
    time.sleep(0.3)
    assert len(memory.system("erp").writes) == 1 and len(cloud.writes) == 1


def test_a_cloud_that_is_down_gets_its_copies_when_it_is_back(gateway: Gateway) -> None:
    cloud = memory.system("cloud")
    cloud.down = True
    client = Client(gateway)
    for n in range(3):
        assert client.put(f"PO-{n}", {"qty": n}).status_code == 200  # the consumer never waits for the cloud
    time.sleep(0.5)
    assert cloud.writes == []
    cloud.down = False
    _until(lambda: len(cloud.writes) == 3, seconds=20)  # after the backoff
    assert sorted(cloud.records) == [("ACME-DE", f"PO-{n}") for n in range(3)]


def test_a_write_legacy_refuses_is_not_sent_to_the_cloud(gateway: Gateway) -> None:
    memory.system("erp").refuse = "customer on credit hold"
    client = Client(gateway)
    answer = client.put("PO-1", {"qty": 1})
    assert answer.status_code == 422 and "credit hold" in answer.json()["detail"]
    status = client.get("/admin/outbox", **{"X-Admin-Key": "admin-key-0123"}).json()
    assert status["counts"]["cancelled"] == 1 and status["counts"]["pending"] == 0
    time.sleep(0.3)
    assert memory.system("cloud").writes == []


def test_reads_are_served_from_what_was_written(gateway: Gateway) -> None:
    client = Client(gateway)
    client.put("PO-5", {"qty": 5})
    found, missing = client.get("/v1/ACME-DE/orders/PO-5"), client.get("/v1/ACME-DE/orders/PO-6")
    assert found.status_code == 200 and found.json() == {"qty": 5, "entity": "ACME-DE", "orderId": "PO-5"}
    assert missing.status_code == 404


def test_an_open_breaker_costs_the_outbox_no_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three attempts at most, a cloud down for 1.5 s: with every refusal of the open breaker counted
    as an attempt, the copy would be dead within a fraction of a second; it waits for the trial call."""
    from cutover import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(outbox_module, "BACKOFF_SECONDS", 0.05)
    memory.forget()
    routes = ROUTES.replace("breaker: {failures: 5, reset: 0.5}", "breaker: {failures: 1, reset: 1.0}")
    with running_gateway(tmp_path, routes, store=str(tmp_path / "cutover.db"), admin_key="admin-key-0123") as gateway:
        cloud = memory.system("cloud")
        cloud.down = True
        client = Client(gateway)
        assert client.put("PO-1", {"qty": 1}).status_code == 200
        time.sleep(1.5)
        cloud.down = False
        _until(lambda: len(cloud.writes) == 1, seconds=20)
        counts = client.get("/admin/outbox", **{"X-Admin-Key": "admin-key-0123"}).json()["counts"]
        assert counts["delivered"] == 1 and counts["dead"] == 0
    memory.forget()
