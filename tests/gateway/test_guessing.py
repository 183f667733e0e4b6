"""Key guessing: wrong keys are slowed down fleet-wide, a right key is never refused or slowed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp.test_utils import make_mocked_request

from gateway import guessing
from gateway.guessing import Guesses, client_address, delay, trusted_networks
from tests.gateway.conftest import KEYS, running_gateway
from tests.gateway.test_rate_limits_fleet import redis_url  # noqa: F401 - the fixture

ROUTES = """\
routes:
  - name: ping
    operation: {method: GET, path: /v1/ping}
    legacy: {backend: {backend: http, url: "http://127.0.0.1:9/ping", timeout: 1}}
"""


def _request(remote: str, forwarded: list[str] | None = None) -> Any:
    headers = [("X-Forwarded-For", value) for value in forwarded or []]
    from multidict import CIMultiDict

    request = make_mocked_request("GET", "/", headers=CIMultiDict(headers))
    request._transport_peername = (remote, 40000)  # type: ignore[attr-defined]
    return request


def test_the_delay_spares_a_few_mistakes_then_doubles_up_to_a_ceiling() -> None:
    assert [delay(n) for n in range(1, 6)] == [0.0] * 5
    assert [delay(n) for n in (6, 7, 8)] == [0.25, 0.5, 1.0]
    assert delay(100) == guessing.MAX_DELAY


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    proxies = trusted_networks(["10.0.0.0/8", "127.0.0.1"])
    # straight from a client: its header is its own word, and ignored
    assert client_address(_request("203.0.113.7", ["198.51.100.1"]), proxies) == "203.0.113.7"
    # through nginx on loopback: the address nginx appended
    assert client_address(_request("127.0.0.1", ["198.51.100.1"]), proxies) == "198.51.100.1"
    # a client that writes the header itself, then two trusted proxies: what they appended, from the right
    assert client_address(_request("127.0.0.1", ["1.2.3.4, 198.51.100.9, 10.1.1.1"]), proxies) == "198.51.100.9"
    assert client_address(_request("127.0.0.1", ["garbage\x7f"]), proxies) == "127.0.0.1"
    assert client_address(_request("127.0.0.1"), proxies) == "127.0.0.1"
    assert client_address(_request("127.0.0.1", ["198.51.100.1"]), ()) == "127.0.0.1"  # no proxy trusted
    with pytest.raises(ValueError, match="--trusted-proxy takes an address or a network"):
        trusted_networks(["nginx.local"])


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the gateway holds wrong keys back for, instead of sleeping them."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(guessing, "sleep", sleep)
    return slept


def test_counts_are_shared_through_redis_by_every_process(waits: list[float], redis_url: str) -> None:  # noqa: F811
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    key = f"bnk_{uuid.uuid4().hex}"

    async def run() -> list[float]:
        one, two = Guesses(redis_url), Guesses(redis_url)  # two gateways
        try:
            request = _request(address)
            return [await (one if n % 2 else two).wrong(request, "api", f"{key}{n}") for n in range(8)]
        finally:
            await one.close()
            await two.close()

    assert asyncio.run(run()) == [0, 0, 0, 0, 0, 0.25, 0.5, 1.0]  # five free between them, not five each


def test_one_key_tried_from_many_addresses_adds_up(waits: list[float]) -> None:
    async def run() -> list[float]:
        guesses = Guesses()
        return [await guesses.wrong(_request(f"192.0.2.{n}"), "admin", "hunter2-and-more") for n in range(7)]

    assert asyncio.run(run())[-2:] == [0.25, 0.5]


def test_redis_away_counts_in_the_process(waits: list[float]) -> None:
    async def run() -> list[float]:
        guesses = Guesses("redis://127.0.0.1:9/0")  # nothing listens there
        try:
            return [await guesses.wrong(_request("192.0.2.1"), "api", f"k{n}") for n in range(6)]
        finally:
            await guesses.close()

    assert asyncio.run(run())[-1] == 0.25


def test_behind_a_proxy_wrong_keys_never_lock_out_a_right_one(tmp_path: Path, waits: list[float]) -> None:
    """Everyone reaches the gateway from the proxy's address: a hundred wrong admin and API keys
    from it slow those answers down, and the right keys from the same address still pass at once."""
    settings = {"admin_key": "admin-key-0123456789", "store": str(tmp_path / "cutover.db")}
    with running_gateway(tmp_path, ROUTES, **settings) as gateway:
        for n in range(30):
            wrong_admin = requests.get(
                f"{gateway.url}/admin/cutover", headers={"X-Admin-Key": f"guess-{n}"}, timeout=10
            )
            assert wrong_admin.status_code == 401
            wrong_api = requests.get(f"{gateway.url}/v1/ping", headers={"X-API-Key": f"bnk_guess{n}"}, timeout=10)
            assert wrong_api.status_code == 401
        slowed = list(waits)
        assert len(slowed) == 2 * (30 - guessing.FREE) and max(slowed) == guessing.MAX_DELAY
        right = requests.get(
            f"{gateway.url}/admin/cutover", headers={"X-Admin-Key": "admin-key-0123456789"}, timeout=10
        )
        assert right.status_code == 200
        person = requests.get(f"{gateway.url}/admin/whoami", headers={"X-Admin-Key": KEYS["ops"]}, timeout=10)
        assert person.status_code == 200
        api = requests.get(f"{gateway.url}/v1/ping", headers={"X-API-Key": KEYS["webshop"]}, timeout=10)
        assert api.status_code != 401 and api.status_code != 429
        assert waits == slowed  # the right keys waited for nothing
