"""Two gateway processes on one store see each other's changes: the real PostgreSQL, and SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import serve_process
from tests.gateway.test_cutover import ADMIN, erp, ladder_routes


@contextmanager
def gateway_process(routes: Path, store: str) -> Iterator[str]:
    with serve_process(
        "--routes", str(routes), "--insecure-no-auth", "--store", store, env={"BANYAN_ADMIN_KEY": ADMIN["X-Admin-Key"]}
    ) as url:
        yield url


def served_by(url: str, order: str = "SO-1") -> str:
    return requests.get(f"{url}/v1/ACME-US/orders/{order}", timeout=5).headers["X-Served-By"]


def wait_for_side(url: str, side: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while served_by(url) != side:
        assert time.monotonic() < deadline, f"{url} still serves from the other side after {seconds} s"
        time.sleep(0.02)


def _both_ways(store: str, tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = tmp_path / "routes"
        routes.mkdir()
        (routes / "orders.yaml").write_text(ladder_routes(legacy.url, cloud.url))
        with gateway_process(routes, store) as a, gateway_process(routes, store) as b:
            assert served_by(a) == served_by(b) == "legacy"
            change = {"mode": "cloud_primary", "reason": "go-live ACME-US", "force": True}
            assert requests.put(f"{a}/admin/cutover/order-get/ACME-US", json=change, headers=ADMIN, timeout=5).ok
            wait_for_side(b, "cloud")
            back = {"mode": "legacy", "reason": "roll back from b"}
            assert requests.put(f"{b}/admin/cutover/order-get/ACME-US", json=back, headers=ADMIN, timeout=5).ok
            wait_for_side(a, "legacy")
            # a stale writer on a is told, not silently overwritten
            stale = {"mode": "cloud", "reason": "stale", "force": True, "expected_version": 1}
            refused = requests.put(f"{a}/admin/cutover/order-get/ACME-US", json=stale, headers=ADMIN, timeout=5)
            assert refused.status_code == 422 and "at version 2, not 1" in refused.json()["detail"]
            history = requests.get(f"{a}/admin/cutover/history", headers=ADMIN, timeout=5).text.splitlines()
            assert len(history) == 2 and '"reason": "roll back from b"' in history[-1]


def test_two_gateways_on_postgres_see_each_others_changes(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    _both_ways(postgres_url, tmp_path)


def test_a_lost_store_stops_changes_not_traffic(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.cutover.conftest import _admin

    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = tmp_path / "routes"
        routes.mkdir()
        (routes / "orders.yaml").write_text(ladder_routes(legacy.url, cloud.url))
        with gateway_process(routes, postgres_url) as gateway:
            change = {"mode": "cloud_primary", "reason": "go-live", "force": True}
            assert requests.put(f"{gateway}/admin/cutover/order-get/ACME-US", json=change, headers=ADMIN, timeout=5).ok
            wait_for_side(gateway, "cloud")
            _admin("DROP DATABASE banyan_cutover_test WITH (FORCE)")  # the store is gone
            assert served_by(gateway) == "cloud"  # the rules in memory keep serving
            refused = requests.put(
                f"{gateway}/admin/cutover/order-get/ACME-US",
                json={"mode": "legacy", "reason": "r"},
                headers=ADMIN,
                timeout=15,
            )
            assert refused.status_code == 503 and "nothing was changed" in refused.json()["detail"]
            time.sleep(1.5)  # the evidence flush and the listener fail and retry meanwhile
            assert served_by(gateway) == "cloud"
            _admin("CREATE DATABASE banyan_cutover_test")  # the fixture drops it again


def test_two_gateways_on_sqlite_see_each_others_changes(tmp_path: Path) -> None:
    _both_ways(str(tmp_path / "cutover.db"), tmp_path)
