"""The fleet as a distributor runs it: two `banyan serve` instances behind a real nginx round-robin
upstream, on one PostgreSQL store, with Redis for the rate limits. The guarantees hold for the
fleet: one booking per Idempotency-Key, one rate per consumer, and an instance killed mid-stream
loses no acknowledged write and doubles none."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.conftest import missing_service
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import KEYS, SERVED, digest, free_port, serve_process
from tests.gateway.test_idempotency_fleet import ORDER, Legacy, routes
from tests.gateway.test_rate_limits_fleet import redis_url  # noqa: F401 - the fixture

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@contextmanager
def nginx(folder: Path, upstreams: list[str]) -> Iterator[str]:
    """nginx round-robin over `upstreams` on a free port. A POST that fails on one upstream is not
    sent to the next (nginx's default for a request that is not idempotent)."""
    if NGINX is None:
        missing_service("nginx is not installed (make test installs it)")
    folder.mkdir()
    port = free_port()
    servers = " ".join(f"server {url.removeprefix('http://')} max_fails=1 fail_timeout=5s;" for url in upstreams)
    (folder / "nginx.conf").write_text(f"""\
worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {folder}; proxy_temp_path {folder};
  fastcgi_temp_path {folder}; uwsgi_temp_path {folder}; scgi_temp_path {folder};
  upstream gateways {{ {servers} }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://gateways; proxy_set_header Connection ""; }} }}
}}
""")
    process = subprocess.Popen([NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def fleet(tmp_path: Path, store: str, rate_store: str, legacy: Legacy) -> Iterator[tuple[str, list[str]]]:
    """Two instances on one store and one Redis, and nginx in front: (nginx's URL, the instances')."""
    folder = routes(tmp_path / "routes", legacy)
    consumers = tmp_path / "consumers.yaml"
    consumers.write_text(
        "consumers:\n"
        f'  - {{name: webshop, key_sha256: "{digest(KEYS["webshop"])}", rate: 1000, burst: 1000}}\n'
        f'  - {{name: limited, key_sha256: "{digest(KEYS["limited"])}", rate: 10, burst: 20}}\n'
    )
    options = (
        "--routes",
        str(folder),
        "--consumers",
        str(consumers),
        "--store",
        store,
        "--rate-store",
        rate_store,
        "--in-doubt-after",
        "3",
    )
    with serve_process(*options) as a, serve_process(*options) as b, nginx(tmp_path / "nginx", [a, b]) as url:
        yield url, [a, b]


def post(url: str, key: str, consumer: str = "webshop", body: dict[str, Any] = ORDER) -> requests.Response:
    headers = {"X-API-Key": KEYS[consumer], "Idempotency-Key": key, "Connection": "close"}
    return requests.post(f"{url}/v1/ACME-DE/orders", json=body, headers=headers, timeout=15)


def test_one_booking_and_one_rate_for_the_fleet(postgres_url: str, redis_url: str, tmp_path: Path) -> None:  # noqa: F811
    legacy = Legacy()
    with fleet(tmp_path, postgres_url, redis_url, legacy) as (url, instances):
        answers = [post(url, "same-order") for _ in range(20)]
        assert legacy.bookings["PO-77"] == 1
        assert {a.status_code for a in answers} == {201} and len({a.json()["orderId"] for a in answers}) == 1
        # nginx spread them: both instances served the route
        metrics = [requests.get(f"{instance}/metrics", timeout=5).text for instance in instances]
        assert all('route="order-create"' in text for text in metrics)

        # a consumer at 10/s with a burst of 20 sends 200 in about a second, through both instances
        def limited(n: int) -> int:
            body = {**ORDER, "orderNumber": f"PO-L{n}"}
            return post(url, f"limited-{n}", consumer="limited", body=body).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            statuses = Counter(pool.map(limited, range(200)))
        elapsed = time.monotonic() - started
        assert set(statuses) <= {201, 429} and statuses[201] >= 20
        assert statuses[201] <= 20 + 10 * elapsed + 1, (statuses, elapsed)  # the burst, and the rate meanwhile
        assert legacy.total == 1 + statuses[201]


def test_an_instance_killed_mid_stream_loses_no_acknowledged_write_and_doubles_none(
    postgres_url: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    legacy = Legacy(delay=0.02)
    acknowledged: dict[str, str] = {}  # order → the orderId the consumer was given
    with fleet(tmp_path, postgres_url, redis_url, legacy) as (url, instances):

        def write(n: int) -> None:
            order = f"PO-K{n}"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # a consumer that retries with the same key until told
                try:
                    answer = post(url, f"kill-{n}", body={**ORDER, "orderNumber": order})
                except requests.RequestException:
                    time.sleep(0.1)
                    continue
                if answer.status_code == 201:
                    acknowledged[order] = answer.json()["orderId"]
                    return
                if answer.status_code == 409 and answer.json()["title"] == "Write in doubt":
                    return  # the dead instance may have booked it: the consumer asks, never resends
                time.sleep(0.1)  # 502 from nginx, 409 while the dead instance's claim runs out, 503

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(write, n) for n in range(300)]
            while legacy.total < 100:
                time.sleep(0.01)
            os.killpg(SERVED[instances[0]].pid, signal.SIGKILL)  # mid-stream, no goodbye
            for future in futures:
                future.result()
    assert max(legacy.bookings.values()) == 1  # nothing booked twice
    assert all(legacy.bookings[order] == 1 for order in acknowledged)  # every 201 was booked
    assert len(acknowledged) >= 290  # the rest in doubt: those the killed instance was making
