"""Rate limits held by the fleet, not per process: two workers sharing buckets in the real Redis let
a consumer's rate through once, not twice; and with Redis gone the gateway serves on, limiting per
process, and says so."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import missing_service
from tests.gateway.conftest import KEYS, digest, free_port, serve_process

ROUTES = """\
routes:
  - name: order-get
    operation: {method: GET, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: orderId}
    legacy: {backend: {backend: memory, system: erp}}
"""
REDIS = "redis://127.0.0.1:6379/15"  # a database of its own, flushed by the test


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        missing_service(f"Redis is not reachable on 127.0.0.1:6379 ({exc})")
    yield REDIS
    client.flushdb()


@contextmanager
def gateway(folder: Path, *extra: str) -> Iterator[str]:
    (folder / "routes").mkdir(exist_ok=True)
    (folder / "routes" / "orders.yaml").write_text(ROUTES)
    (folder / "consumers.yaml").write_text(
        f'consumers:\n  - {{name: webshop, key_sha256: "{digest(KEYS["webshop"])}", rate: 10, burst: 20}}\n'
    )
    with serve_process(
        "--routes", str(folder / "routes"), "--consumers", str(folder / "consumers.yaml"), *extra
    ) as url:
        yield url


def burst(url: str, calls: int = 200) -> tuple[Counter[int], float, list[requests.Response]]:
    def one(n: int) -> requests.Response:
        headers = {"X-API-Key": KEYS["webshop"], "Connection": "close"}  # fresh connections: both workers
        return requests.get(f"{url}/v1/ACME-DE/orders/SO-{n}", headers=headers, timeout=10)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(calls)))
    return Counter(a.status_code for a in answers), time.monotonic() - started, answers


def test_two_workers_share_one_bucket_in_redis(tmp_path: Path, redis_url: str) -> None:
    with gateway(tmp_path, "--workers", "2", "--rate-store", redis_url) as url:
        counts, seconds, answers = burst(url)
        passed = counts[404]  # the memory ERP has no such orders: a 404 is a call let through
        assert passed + counts[429] == 200
        assert passed <= 20 + 10 * seconds + 1, f"{passed} passed in {seconds:.1f} s"  # burst + rate, fleet-wide
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["RateLimit-Limit"] == "20" and int(refused.headers["Retry-After"]) >= 1
        let_through = next(a for a in answers if a.status_code == 404)
        assert 0 <= int(let_through.headers["RateLimit-Remaining"]) < 20


def test_per_process_buckets_let_more_through(tmp_path: Path) -> None:
    """What the shared store is for: without it, each worker has a bucket of its own."""
    with gateway(tmp_path, "--workers", "2") as url:
        counts, seconds, _ = burst(url)
        assert counts[404] > 20 + 10 * seconds + 1


def test_with_redis_gone_the_gateway_limits_per_process_and_says_so(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with gateway(tmp_path, "--rate-store", dead) as url:
        counts, _, _ = burst(url, 60)
        assert counts[404] >= 20 and counts[429] > 0  # still limited: by this process's bucket
        assert "banyan_rate_store_down 1.0" in requests.get(f"{url}/metrics", timeout=5).text
