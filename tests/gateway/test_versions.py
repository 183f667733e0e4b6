"""API versions: a deprecated version says so on every answer, counts who still calls it, and
answers 410 Gone after its sunset; routes check refuses what cannot be right."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from cli.main import app
from gateway.openapi import openapi
from legacy_adapters import memory
from specs.files import RouteError, load_routes
from tests.gateway.conftest import KEYS, Gateway, running_gateway

TODAY = datetime.now(UTC).date()
ADMIN = {"X-Admin-Key": "admin-key-0123", "X-Actor": "ana"}


def routes(since: date, sunset: date, successor: str = "order-get-v2") -> str:
    return f"""\
routes:
  - name: order-get
    operation:
      method: GET
      path: "/v1/{{entity}}/orders/{{orderId}}"
      deprecated: {{since: {since}, sunset: {sunset}, successor: {successor}, link: "https://docs.example/move-to-v2"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    legacy: {{backend: {{backend: memory, system: erp}}, response: {{map: {{status: /status}}}}}}
  - name: order-get-v2
    operation: {{method: GET, path: "/v2/{{entity}}/orders/{{orderId}}"}}
    entity: {{from: path, name: entity, values: [ACME-DE]}}
    key: {{from: path, name: orderId}}
    legacy: {{backend: {{backend: memory, system: erp}}, response: {{map: {{order/status: /status}}}}}}
"""


@pytest.fixture
def versions(tmp_path: Path) -> Iterator[Gateway]:
    memory.forget()
    memory.system("erp").records[("ACME-DE", "SO-1")] = {"status": "shipped"}
    text = routes(TODAY - timedelta(days=30), TODAY + timedelta(days=90))
    with running_gateway(tmp_path, text, store=str(tmp_path / "cutover.db"), admin_key=ADMIN["X-Admin-Key"]) as gateway:
        yield gateway
    memory.forget()


def get(gateway: Gateway, path: str, key: str = "webshop") -> requests.Response:
    return requests.get(f"{gateway.url}{path}", headers={"X-API-Key": KEYS[key]}, timeout=10)


def test_a_deprecated_version_says_so_and_names_its_successor(versions: Gateway) -> None:
    old = get(versions, "/v1/ACME-DE/orders/SO-1")
    assert old.status_code == 200 and old.json() == {"status": "shipped"}
    since = datetime.combine(TODAY - timedelta(days=30), datetime.min.time(), UTC)
    assert old.headers["Deprecation"] == f"@{int(since.timestamp())}"  # RFC 9745: a structured date
    sunset = parsedate_to_datetime(old.headers["Sunset"])  # RFC 8594: an HTTP date
    assert sunset.date() == TODAY + timedelta(days=90) and sunset.tzinfo is not None
    assert old.headers["Link"] == (
        '</v2/ACME-DE/orders/SO-1>; rel="successor-version", '
        '<https://docs.example/move-to-v2>; rel="deprecation"; type="text/html"'
    )
    new = get(versions, "/v2/ACME-DE/orders/SO-1")
    assert new.json() == {"order": {"status": "shipped"}} and "Deprecation" not in new.headers
    # refusals carry the headers too: a consumer with the wrong key learns the version is going
    refused = requests.get(f"{versions.url}/v1/ACME-DE/orders/SO-1", headers={"X-API-Key": "nope"}, timeout=10)
    assert refused.status_code == 401 and "Sunset" in refused.headers


def test_who_still_calls_a_deprecated_version_is_counted(versions: Gateway) -> None:
    for _ in range(3):
        get(versions, "/v1/ACME-DE/orders/SO-1")
    get(versions, "/v1/ACME-DE/orders/SO-1", key="de_only")
    get(versions, "/v2/ACME-DE/orders/SO-1")
    metrics = requests.get(f"{versions.url}/metrics", timeout=10).text
    assert 'banyan_deprecated_calls_total{consumer="webshop",route="order-get"} 3.0' in metrics
    assert 'route="order-get-v2"' not in metrics.split("banyan_deprecated_calls_total")[-1].split("\n# ")[0]
    deadline = time.monotonic() + 10
    while True:  # the store hears it at the next flush, for the whole fleet
        [found] = requests.get(f"{versions.url}/admin/deprecations", headers=ADMIN, timeout=10).json()
        if len(found["consumers"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found["route"] == "order-get" and found["successor"] == "order-get-v2"
    assert {(c["consumer"], c["calls"]) for c in found["consumers"]} == {("webshop", 3), ("de_only", 1)}


def test_after_the_sunset_the_version_is_gone(tmp_path: Path) -> None:
    memory.forget()
    memory.system("erp").records[("ACME-DE", "SO-1")] = {"status": "shipped"}
    text = routes(TODAY - timedelta(days=200), TODAY - timedelta(days=1))
    with running_gateway(tmp_path, text) as gateway:
        gone = get(gateway, "/v1/ACME-DE/orders/SO-1")
        assert gone.status_code == 410
        problem = gone.json()
        assert problem["title"] == "Version retired" and problem["type"] == "/docs#problem-version-retired"
        assert problem["detail"] == (
            f"order-get stopped answering on {TODAY - timedelta(days=1)}; "
            "use GET /v2/{entity}/orders/{orderId} (route order-get-v2)"
        )
        assert '</v2/ACME-DE/orders/SO-1>; rel="successor-version"' in gone.headers["Link"]
        assert get(gateway, "/v2/ACME-DE/orders/SO-1").status_code == 200
    memory.forget()


def test_openapi_marks_the_version_deprecated(tmp_path: Path) -> None:
    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "orders.yaml").write_text(routes(date(2026, 11, 1), date(2027, 6, 30)))
    document = openapi(load_routes(folder))
    old = document["paths"]["/v1/{entity}/orders/{orderId}"]["get"]
    assert old["deprecated"] is True and "410" in old["responses"]
    assert "answers 410 Gone from 2027-06-30; its successor is `order-get-v2`" in old["description"]
    assert "deprecated" not in document["paths"]["/v2/{entity}/orders/{orderId}"]["get"]


@pytest.mark.parametrize(
    ("since", "sunset", "successor", "says"),
    [
        (date(2027, 1, 1), date(2026, 12, 1), "order-get-v2", "must come after the deprecation"),
        (date(2026, 1, 1), date(2026, 12, 1), "order-get-v3", "no route is named 'order-get-v3'"),
        (date(2026, 1, 1), date(2026, 12, 1), "order-get", "must be another route with an operation"),
    ],
)
def test_routes_check_refuses_what_cannot_be_right(
    tmp_path: Path, since: date, sunset: date, successor: str, says: str
) -> None:
    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "orders.yaml").write_text(routes(since, sunset, successor))
    with pytest.raises(RouteError, match=says):
        load_routes(folder)
    result = CliRunner().invoke(app, ["routes", "check", str(folder)])
    assert result.exit_code != 0 and says in result.output and "Traceback" not in result.output
