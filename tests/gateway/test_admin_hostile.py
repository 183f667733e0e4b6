"""The admin API on odd bytes: each is a 4xx problem, never a 500, and a missing key is a 401
whatever the body."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import Gateway, running_gateway
from tests.gateway.test_cutover import ADMIN, erp, ladder_routes


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("admin")
    with erp("legacy") as legacy, erp("cloud") as cloud:
        settings = {"store": str(folder / "cutover.db"), "admin_key": ADMIN["X-Admin-Key"]}
        with running_gateway(folder, ladder_routes(legacy.url, cloud.url), **settings) as gateway:
            yield gateway


def send(gateway: Gateway, method: str, path: str, headers: dict[str, str | bytes], body: bytes = b"") -> int:
    connection = http.client.HTTPConnection(gateway.url.removeprefix("http://"), timeout=10)
    connection.putrequest(method, path)
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    status = connection.getresponse().status
    connection.close()
    return status


KEY = {"X-Admin-Key": ADMIN["X-Admin-Key"], "Content-Type": "application/json"}
CHANGE = "/admin/cutover/order-get/ACME-US"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("PUT", CHANGE, {"Content-Type": "application/json"}, b"not json", 401),  # the key first, then the body
        ("POST", "/admin/outbox/1/replay", {"Content-Type": "application/json"}, b"{", 401),
        ("PUT", CHANGE, {**KEY, "X-Actor": b"\xff\xfe"}, b'{"mode": "shadow", "reason": "r"}', 400),
        ("PUT", CHANGE, KEY, b'{"mode": "shadow", "reason": "r", "actor": "\\ud800"}', 400),
        ("PUT", CHANGE, {**KEY, "X-Actor": "ana"}, b'{"mode": "shadow", "reason": "\\ud800"}', 400),
        ("GET", "/admin/cutover/history?route=%ED%A0%80", KEY, b"", 422),  # read as U+FFFD: no such route
        ("GET", "/admin/outbox?state=%ED%A0%80", KEY, b"", 422),
        ("POST", "/admin/outbox/73786976294838206464/replay", {**KEY, "X-Actor": "ana"}, b'{"reason": "r"}', 422),
    ],
)
def test_odd_bytes_are_refused_with_a_problem(
    admin: Gateway, method: str, path: str, headers: dict[str, str | bytes], body: bytes, status: int
) -> None:
    assert send(admin, method, path, headers, body) == status
