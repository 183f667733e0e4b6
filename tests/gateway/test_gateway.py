"""The gateway end to end: managed SOAP routes, policies, problems, metrics, passthrough with zeep."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import zeep
import zeep.exceptions
from jsonschema import Draft202012Validator

from tests.gateway.conftest import Gateway
from tests.legacy_soap import SEEN, soap_fault

ORDER = {"orderNumber": "PO-1001", "customer": "globex", "lines": [{"sku": "SKU-1", "qty": 3}]}


def post(gateway: Gateway, path: str, body: object, **headers: str) -> requests.Response:
    return requests.post(gateway.url + path, json=body, headers=gateway.headers(**headers), timeout=10)


def test_create_order_through_soap(gateway: Gateway) -> None:
    answer = post(
        gateway, "/v1/ACME-DE/orders", ORDER, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"orderId": answer.json()["orderId"], "status": "created"}
    assert answer.json()["orderId"].endswith("-globex-3")
    assert answer.headers["X-Served-By"] == "legacy"
    correlation = answer.headers["X-Correlation-ID"]
    assert SEEN[-1]["HTTP_X_CORRELATION_ID"] == correlation
    assert SEEN[-1]["HTTP_TRACEPARENT"].startswith("00-0af7651916cd43dd")
    assert SEEN[-1]["HTTP_SOAPACTION"] == '"CreateOrder"'


def test_read_order_status(gateway: Gateway) -> None:
    answer = requests.get(gateway.url + "/v1/ACME-DE/orders/ORD-77", headers=gateway.headers(), timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"status": "open"})


def problem(answer: requests.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status and body["correlation_id"] == answer.headers["X-Correlation-ID"]
    return body  # type: ignore[no-any-return]


def test_schema_violations_are_422_with_the_errors(gateway: Gateway) -> None:
    body = problem(post(gateway, "/v1/ACME-DE/orders", {"orderNumber": "x/../y", "lines": []}), 422)
    errors = " ".join(body["errors"])  # type: ignore[arg-type]
    assert "'customer' is a required property" in errors and "/orderNumber" in errors and "/lines" in errors


def test_malformed_and_wrong_media_type(gateway: Gateway) -> None:
    broken = requests.post(
        gateway.url + "/v1/ACME-DE/orders",
        data=b"{nope",
        headers=gateway.headers(**{"Content-Type": "application/json"}),
        timeout=5,
    )
    problem(broken, 400)
    text = requests.post(
        gateway.url + "/v1/ACME-DE/orders",
        data=b"a=b",
        headers=gateway.headers(**{"Content-Type": "text/plain"}),
        timeout=5,
    )
    problem(text, 415)


def test_keys_and_scopes(gateway: Gateway) -> None:
    assert problem(requests.get(gateway.url + "/v1/ACME-DE/orders/1", timeout=5), 401)["title"] == "API key required"
    wrong = requests.get(gateway.url + "/v1/ACME-DE/orders/1", headers={"X-API-Key": "key-nobody"}, timeout=5)
    assert problem(wrong, 401)["title"] == "Unknown API key"
    route = post(gateway, "/v1/ACME-DE/orders", ORDER, **{"X-API-Key": "key-limited-0123456789"})
    assert problem(route, 403)["title"] == "Route not allowed"
    entity = requests.get(gateway.url + "/v1/ACME-US/orders/1", headers=gateway.headers("limited"), timeout=5)
    assert problem(entity, 403)["title"] == "Entity not allowed"
    bearer = requests.get(
        gateway.url + "/v1/ACME-DE/orders/1", headers={"Authorization": "Bearer key-webshop-0123456789"}, timeout=5
    )
    assert bearer.status_code == 200


def test_rate_limit(gateway: Gateway) -> None:
    time.sleep(2.1)  # let the limited consumer's bucket refill
    statuses = [
        requests.get(gateway.url + "/v1/ACME-DE/orders/1", headers=gateway.headers("limited"), timeout=5)
        for _ in range(3)
    ]
    assert [s.status_code for s in statuses[:2]] == [200, 200]
    assert problem(statuses[2], 429)["title"] == "Too many requests"
    assert int(statuses[2].headers["Retry-After"]) >= 1


def test_oversized_body_is_413(gateway: Gateway) -> None:
    huge = {**ORDER, "customer": "x" * (70 * 1024)}
    problem(post(gateway, "/v1/ACME-DE/orders", huge), 413)


def test_idempotency_key(gateway: Gateway) -> None:
    first = post(gateway, "/v1/ACME-DE/orders", ORDER, **{"Idempotency-Key": "idem-1"})
    again = post(gateway, "/v1/ACME-DE/orders", ORDER, **{"Idempotency-Key": "idem-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = post(gateway, "/v1/ACME-DE/orders", {**ORDER, "customer": "initech"}, **{"Idempotency-Key": "idem-1"})
    assert problem(other, 422)["title"] == "Idempotency-Key reused"


def test_soap_faults_become_problems(gateway: Gateway) -> None:
    rejected = problem(post(gateway, "/v1/ACME-DE/orders", {**ORDER, "customer": "nobody"}), 422)
    assert "unknown customer" in str(rejected["detail"])
    failed = problem(post(gateway, "/v1/ACME-DE/orders", {**ORDER, "customer": "crash"}), 502)
    assert "deadlock" in str(failed["detail"]) and "Traceback" not in json.dumps(failed)


def test_dead_backend_opens_the_breaker(gateway: Gateway) -> None:
    first = problem(requests.get(gateway.url + "/v1/ACME-DE/stock/SKU-1", headers=gateway.headers(), timeout=5), 503)
    assert "cannot reach" in str(first["detail"])
    problem(requests.get(gateway.url + "/v1/ACME-DE/stock/SKU-1", headers=gateway.headers(), timeout=5), 503)
    third = problem(requests.get(gateway.url + "/v1/ACME-DE/stock/SKU-1", headers=gateway.headers(), timeout=5), 503)
    assert "circuit breaker is open" in str(third["detail"])
    metrics = requests.get(gateway.url + "/metrics", timeout=5).text
    assert 'banyan_breaker_open{entity="ACME-DE",route="stock-dead",side="legacy"} 1.0' in metrics


def test_unknown_route_and_method(gateway: Gateway) -> None:
    problem(requests.get(gateway.url + "/v1/nothing", headers=gateway.headers(), timeout=5), 404)
    wrong = requests.delete(gateway.url + "/v1/ACME-DE/orders", headers=gateway.headers(), timeout=5)
    assert problem(wrong, 405) and wrong.headers["Allow"] == "POST"
    wrong = requests.delete(gateway.url + "/v1/ACME-DE/orders/1", headers=gateway.headers(), timeout=5)
    assert problem(wrong, 405) and wrong.headers["Allow"] == "GET, HEAD"


def test_head_on_a_get_route_is_the_get_without_a_body(gateway: Gateway) -> None:
    head = requests.head(gateway.url + "/v1/ACME-DE/orders/1", headers=gateway.headers(), timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"].startswith("application/json")


def test_service_endpoints(gateway: Gateway) -> None:
    assert requests.get(gateway.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(gateway.url + "/readyz", timeout=5).json()["routes"] >= 4
    metrics = requests.get(gateway.url + "/metrics", timeout=5).text
    assert 'banyan_requests_total{entity="ACME-DE",route="order-create",status="201"}' in metrics
    assert "banyan_request_seconds_bucket" in metrics
    spec = requests.get(gateway.url + "/openapi.json", timeout=5).json()
    assert spec["openapi"] == "3.1.0" and "/v1/{entity}/orders" in spec["paths"]
    Draft202012Validator.check_schema(
        spec["paths"]["/v1/{entity}/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    assert "Banyan gateway" in requests.get(gateway.url + "/docs", timeout=5).text
    home = requests.get(gateway.url + "/", timeout=5)
    assert home.status_code == 200 and all(f"href='{path}'" in home.text for path in ("/docs", "/docs/api", "/metrics"))


def test_soap_passthrough_with_zeep(gateway: Gateway, legacy_soap: str) -> None:
    session = requests.Session()
    session.headers["X-API-Key"] = "key-webshop-0123456789"
    client = zeep.Client(f"{legacy_soap}?wsdl", transport=zeep.Transport(session=session))
    service = client.create_service(next(iter(client.wsdl.bindings)), gateway.url + "/soap/OrderService")
    assert service.CreateOrder("ACME-DE", 2).endswith("-ACME-DE-2")
    # a call whose body names no entity is refused to a key scoped to entities, as a SOAP Fault
    with pytest.raises(zeep.exceptions.Fault, match="Entity not allowed"):
        service.GetOrderStatus("ORD-1")


def test_passthrough_refuses_hostile_xml(gateway: Gateway) -> None:
    soap = '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{}</s:Body></s:Envelope>'
    xxe = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + soap.format("&e;")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE x [{laughs}]>' + soap.format("&l9;")
    before = len(SEEN)
    for body in (xxe, bomb, "<not-closed>"):
        answer = requests.post(
            gateway.url + "/soap/OrderService",
            data=body.encode(),
            headers=gateway.headers(**{"Content-Type": "text/xml"}),
            timeout=5,
        )
        fault = soap_fault(answer.status_code, answer.content)
        assert (fault["http_status"], fault["code"], fault["status"]) == ("500", "s:Client", "400")
        assert "Unacceptable XML" in fault["text"] and "root:" not in answer.text
        assert fault["correlationId"] == answer.headers["X-Correlation-ID"]
    assert len(SEEN) == before  # nothing reached the legacy service


def test_file_drop_entity_with_reply(gateway: Gateway) -> None:
    drops = gateway.routes.parent / "drops"

    def importer() -> None:
        for _ in range(100):
            for order in (drops / "in").glob("ORD_*.json"):
                correlation = order.stem.rsplit("_", 1)[1]
                (drops / "ack" / f".{correlation}.tmp").write_text(
                    json.dumps({"orderId": "UK-1", "status": "imported"})
                )
                (drops / "ack" / f".{correlation}.tmp").rename(drops / "ack" / f"{correlation}.ack")
                order.unlink()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=importer)
    thread.start()
    answer = post(gateway, "/v1/ACME-UK/orders", ORDER, **{"X-Correlation-ID": "corr-uk-1"})
    thread.join()
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"orderId": "UK-1", "status": "imported"}
    assert not list((drops / "ack").iterdir())  # the reply was consumed


def test_routes_reload_and_a_bad_file_keeps_the_old_ones(gateway: Gateway) -> None:
    extra = gateway.routes / "extra.yaml"
    extra.write_text(
        "routes:\n  - name: ping\n    operation: {method: GET, path: /v1/ping}\n"
        "    legacy: {backend: {backend: http, url: 'http://127.0.0.1:1/'}}\n"
    )
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and requests.get(gateway.url + "/v1/ping", headers=gateway.headers(), timeout=5).status_code == 404
    ):
        time.sleep(0.2)
    assert (
        requests.get(gateway.url + "/v1/ping", headers=gateway.headers(), timeout=5).status_code == 503
    )  # routed, backend dead
    extra.write_text("routes:\n  - name: Bad Name\n")
    time.sleep(2.5)
    assert requests.get(gateway.url + "/v1/ACME-DE/orders/1", headers=gateway.headers(), timeout=5).status_code == 200
    assert requests.get(gateway.url + "/v1/ping", headers=gateway.headers(), timeout=5).status_code == 503
    extra.unlink()


def test_correlation_id_is_kept_when_plain_and_replaced_when_not(gateway: Gateway) -> None:
    kept = requests.get(gateway.url + "/healthz", headers={"X-Correlation-ID": "abc-123"}, timeout=5)
    assert kept.headers["X-Correlation-ID"] == "abc-123"
    replaced = requests.get(gateway.url + "/healthz", headers={"X-Correlation-ID": "<script>;x y"}, timeout=5)
    assert replaced.headers["X-Correlation-ID"] != "<script>;x y" and len(replaced.headers["X-Correlation-ID"]) == 32


def test_every_problem_kind_has_a_stable_type_documented_on_docs(gateway: Gateway) -> None:
    import ast

    from gateway.problems import KINDS, type_uri
    from tests.conftest import REPO

    raised = set()
    for path in [*(REPO / "gateway").rglob("*.py"), *(REPO / "legacy_adapters").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "func", None)
            called = getattr(name, "id", getattr(name, "attr", ""))
            if isinstance(node, ast.Call) and called in ("Problem", "problem") and len(node.args) >= 2:
                raised.add(node.args[1])
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "title":
                raised.add(node.value)
    raised = {node.value for node in raised if isinstance(node, ast.Constant)}  # titles written out
    assert raised - set(KINDS) == set()  # every kind raised is documented
    docs = requests.get(gateway.url + "/docs", timeout=5).text
    for title in KINDS:
        assert f"id='{type_uri(title).partition('#')[2]}'" in docs
    answer = requests.get(gateway.url + "/v1/nothing", headers=gateway.headers(), timeout=5)
    assert answer.json()["type"] == "/docs#problem-no-such-route"
