"""One write per intent, to the right entity: an Idempotency-Key's scope holds the entity and the
business key wherever a route reads them from, a backend URL's {entity} is filled from there too,
and a value put into a URL never climbs out of its segment."""

from __future__ import annotations

import http.client
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tests.gateway.conftest import Gateway, app_in_thread, running_gateway


@contextmanager
def recorder() -> Iterator[tuple[str, list[str]]]:
    """An HTTP backend that books whatever it is sent and records the raw path of each call."""
    seen: list[str] = []

    async def book(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"booked": request.raw_path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", book)
    with app_in_thread(app) as url:
        yield url, seen


def routes(url: str) -> str:
    return textwrap.dedent(
        f"""\
        routes:
          - name: order-by-query
            operation: {{method: PUT, path: "/v1/orders/{{orderId}}"}}
            entity: {{from: query, name: entity, values: [ACME-DE, ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{url}/{{entity}}/orders/{{orderId}}", method: PUT}}}}
          - name: order-by-header
            operation: {{method: PUT, path: "/v2/orders/{{orderId}}"}}
            entity: {{from: header, name: X-Entity, values: [ACME-DE, ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{url}/{{entity}}/orders/{{orderId}}", method: PUT}}}}
        """
    )


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Gateway, list[str]]]:
    with recorder() as (url, seen), running_gateway(tmp_path, routes(url)) as gateway:
        yield gateway, seen


@pytest.mark.parametrize("where", ["query", "header"])
def test_the_same_key_for_another_entity_is_another_write(estate: tuple[Gateway, list[str]], where: str) -> None:
    gateway, seen = estate
    answers = []
    for entity in ("ACME-DE", "ACME-US"):
        headers = gateway.headers(**{"Idempotency-Key": "k-1"})
        if where == "query":
            url = f"{gateway.url}/v1/orders/PO-1?entity={entity}"
        else:
            url, headers = f"{gateway.url}/v2/orders/PO-1", {**headers, "X-Entity": entity}
        answers.append(requests.put(url, json={"qty": 1}, headers=headers, timeout=10))
    assert [a.status_code for a in answers] == [200, 200]
    assert "Idempotent-Replayed" not in answers[1].headers  # ACME-US's write was made, not ACME-DE's replayed
    assert seen == ["/ACME-DE/orders/PO-1", "/ACME-US/orders/PO-1"]  # {entity} filled: the right ERP booked each
    again = requests.put(url, json={"qty": 1}, headers=headers, timeout=10)
    assert again.headers["Idempotent-Replayed"] == "true" and len(seen) == 2
    other = requests.put(url, json={"qty": 2}, headers=headers, timeout=10)
    assert other.status_code == 422 and other.json()["title"] == "Idempotency-Key reused"


@pytest.mark.parametrize("value", ["%2e%2e", "%2E%2E", "..", "%2e"])
def test_a_path_value_never_climbs_out_of_its_segment(estate: tuple[Gateway, list[str]], value: str) -> None:
    gateway, seen = estate
    connection = http.client.HTTPConnection(gateway.url.removeprefix("http://"), timeout=10)
    connection.request(
        "PUT",
        f"/v1/orders/{value}?entity=ACME-DE",
        body=b'{"qty": 1}',
        headers={**gateway.headers(), "Content-Type": "application/json"},
    )
    status = connection.getresponse().status
    connection.close()
    if status == 200:  # served: the dots reached the backend as data in the order's segment
        assert seen[-1] in ("/ACME-DE/orders/%2E%2E", "/ACME-DE/orders/%2E"), seen
    else:  # refused before any backend was called
        assert status in (400, 404) and seen == []


def test_a_key_that_is_not_text_is_refused(estate: tuple[Gateway, list[str]]) -> None:
    gateway, seen = estate
    connection = http.client.HTTPConnection(gateway.url.removeprefix("http://"), timeout=10)
    connection.putrequest("PUT", "/v1/orders/PO-9?entity=ACME-DE")
    for name, value in {**gateway.headers(), "Content-Type": "application/json", "Content-Length": "2"}.items():
        connection.putheader(name, value)
    connection.putheader("Idempotency-Key", b"k-\xff\xfe")
    connection.endheaders(b"{}")
    answer = connection.getresponse()
    assert answer.status == 400 and b"Idempotency-Key" in answer.read()
    connection.close()
    assert seen == []
