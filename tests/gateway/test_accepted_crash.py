"""SIGKILL a gateway while it drains accepted (202) writes into an ERP that does not honour
Idempotency-Key: no write is booked twice, none is lost, and the one being made at the kill is in
doubt for a person, never made again. On SQLite and PostgreSQL, the two gateways side by side."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import requests

from cutover.outbox import LEASE_SECONDS, Outbox
from cutover.store import open_store
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import wait_until
from tests.gateway.test_idempotency_fleet import Legacy
from tests.gateway.test_outbox_crash import start
from tests.gateway.test_surge import _surge_routes

WRITES = 60


def _accept(url: str) -> list[str]:
    """60 writes, each accepted with 202: their status URLs."""

    async def surge() -> list[str]:
        async with aiohttp.ClientSession() as session:

            async def one(n: int) -> str:
                body = {"orderNumber": f"PO-{n}", "customer": "globex"}
                async with session.post(
                    f"{url}/v1/ACME-DE/orders", json=body, headers={"Idempotency-Key": f"drain-{n}"}
                ) as response:
                    assert response.status == 202, await response.text()
                    return response.headers["Location"]

            return await asyncio.gather(*(one(n) for n in range(WRITES)))

    return asyncio.run(surge())


def test_sigkill_mid_drain_books_nothing_twice(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    stores = {"sqlite": str(tmp_path / "cutover.db"), "postgres": postgres_url}
    legacies = {name: Legacy(delay=0.05, one_at_a_time=True) for name in stores}  # 20 bookings a second
    folders = {name: _surge_routes(tmp_path / f"routes-{name}", legacies[name].url) for name in stores}
    ports = {name: free_port() for name in stores}
    gateways: dict[str, subprocess.Popen[bytes]] = {}
    locations: dict[str, list[str]] = {}
    try:
        for name, store in stores.items():
            gateways[name] = start(folders[name], store, ports[name])  # type: ignore[arg-type]
            locations[name] = _accept(f"http://127.0.0.1:{ports[name]}")
        # mid-drain: some booked, most still waiting, one being made
        wait_until(lambda: all(legacy.total >= 15 for legacy in legacies.values()), 20)
        for gateway in gateways.values():
            os.killpg(gateway.pid, signal.SIGKILL)  # supervisor, worker and deliverer: no goodbye
            gateway.wait(10)
        booked_before = {name: legacy.total for name, legacy in legacies.items()}
        for name, store in stores.items():
            gateways[name] = start(folders[name], store, ports[name])  # type: ignore[arg-type]
        # the write the dead gateway was making is in doubt once its lease has run out; the rest are made
        outboxes = {name: Outbox(open_store(store)) for name, store in stores.items()}
        wait_until(lambda: all(o.counts()["pending"] == 0 for o in outboxes.values()), LEASE_SECONDS + 40)
        for name, legacy in legacies.items():
            outbox = outboxes[name]
            assert set(legacy.bookings.values()) <= {1}, f"{name}: a write was booked twice: {legacy.bookings}"
            doubtful = outbox.list("in_doubt")
            assert len(doubtful) <= 1, f"{name}: only the write in flight may be in doubt"
            assert legacy.total + len(doubtful) >= WRITES and legacy.total <= WRITES, name
            assert legacy.total > booked_before[name]  # the new gateway went on draining
            url = f"http://127.0.0.1:{ports[name]}"
            told = [requests.get(f"{url}{location}", timeout=5).json()["status"] for location in locations[name]]
            assert told.count("done") == WRITES - len(doubtful), (name, told)
            assert told.count("in_doubt") == len(doubtful), (name, told)
            # a status URL says done only for a write the ERP booked
            assert told.count("done") <= legacy.total
            outbox.store.close()
    finally:
        for gateway in gateways.values():
            if gateway.poll() is None:
                os.killpg(gateway.pid, signal.SIGTERM)
                gateway.wait(20)


def test_a_claim_holds_as_long_as_its_calls_can_take(tmp_path: Path) -> None:
    """A dead worker's accepted write is in doubt once its longest call could have ended, not after
    a fixed half minute: each attempt's timeout, the route's retries, and a margin."""
    from cutover.outbox import LEASE_SECONDS, Message
    from gateway.outbox_worker import LEASE_MARGIN, lease_for
    from tests.gateway.conftest import running_gateway

    routes = (_surge_routes(tmp_path / "routes", "http://127.0.0.1:9") / "orders.yaml").read_text()
    with running_gateway(tmp_path, routes, store=str(tmp_path / "c.db")) as gateway:

        def message(route: str) -> Message:
            return Message(
                1,
                0.0,
                "",
                route,
                "ACME-DE",
                "PO-1",
                "legacy",
                "ACME-DE@0",
                {},
                "k",
                "pending",
                0,
                0.0,
                "",
                None,
                "accepted",
            )

        assert lease_for(gateway.app, [message("order-create")]) == 5 * 1 + LEASE_MARGIN  # timeout 5 s, no retries
        assert lease_for(gateway.app, [message("no-such-route")]) == LEASE_SECONDS
