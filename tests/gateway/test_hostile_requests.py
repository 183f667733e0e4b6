"""Requests that used to end in a 500 with a traceback: each now gets the exact 4xx it deserves.

Headers are sent as raw bytes over a socket, as a hostile client would, since HTTP libraries refuse
to send what is tested here.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from gateway.problems import Problem
from specs.files import RouteError
from tests.gateway.conftest import KEYS, Gateway
from tests.legacy_soap import SEEN, soap_fault

ENVELOPE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:acme:erp:orders">'
    b"<s:Body><o:CreateOrder><o:customer>ACME-DE</o:customer><o:quantity>1</o:quantity></o:CreateOrder>"
    b"</s:Body></s:Envelope>"
)


def raw(
    gateway: Gateway, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    """One HTTP/1.1 request with headers exactly as given; (status, body)."""
    parts = urlsplit(gateway.url)
    head = [f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in headers]
    head += [f"Content-Length: {len(body)}\r\n\r\n".encode()]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(b"".join(head) + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


KEY = (b"X-API-Key", KEYS["webshop"].encode())


def test_a_key_that_is_not_utf8_is_unknown(gateway: Gateway) -> None:
    status, body = raw(gateway, "GET", "/v1/ACME-DE/orders/1", [(b"X-API-Key", b"\xff\xfe\x80key")])
    assert status == 401 and json.loads(body)["title"] == "Unknown API key"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 1000 + b"]" * 1000, "nests too deeply"),
        (b'{"orderNumber": "PO-1", "customer": "c", "lines": [{"sku": "A", "qty": NaN}]}', "NaN is not a JSON number"),
        (b'{"orderNumber": "PO-1", "customer": "c", "lines": [{"qty": -Infinity}]}', "-Infinity is not"),
        (b'{"orderNumber": "PO-1", "customer": "c", "lines": [{"qty": 1e400}]}', "out of range"),
    ],
)
def test_json_that_no_ledger_can_book_is_refused(gateway: Gateway, body: bytes, detail: str) -> None:
    answer = requests.post(
        gateway.url + "/v1/ACME-DE/orders",
        data=body,
        headers=gateway.headers(**{"Content-Type": "application/json"}),
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]


@pytest.mark.parametrize("header", [b"SOAPAction", b"Content-Type"])
def test_passthrough_headers_that_cannot_be_forwarded_are_refused(gateway: Gateway, header: bytes) -> None:
    before = len(SEEN)
    value = '"urn:CreateOrder€"'.encode() if header != b"Content-Type" else "text/xml; charset=€".encode()
    headers = [KEY, (header, value)] + ([(b"Content-Type", b"text/xml")] if header != b"Content-Type" else [])
    status, body = raw(gateway, "POST", "/soap/OrderService", headers, ENVELOPE)
    fault = soap_fault(status, body)
    assert (fault["status"], fault["type"]) == ("400", "/docs#problem-header-not-acceptable"), body
    assert len(SEEN) == before
    # and the passthrough still works: nothing was left half-open
    status, body = raw(gateway, "POST", "/soap/OrderService", [KEY, (b"Content-Type", b"text/xml")], ENVELOPE)
    assert status == 200, body


@pytest.mark.parametrize("path", ["/v1/ACME-DE/orders/1", "/soap/OrderService"])
def test_a_traceparent_that_is_not_one_starts_a_new_trace(gateway: Gateway, path: str) -> None:
    """W3C Trace Context: a traceparent that does not parse is ignored, never forwarded or refused."""
    method, body = ("POST", ENVELOPE) if path.startswith("/soap") else ("GET", b"")
    plain = [KEY, (b"Content-Type", b"text/xml")]
    expected, _ = raw(gateway, method, path, plain, body)
    for value in ("00-€-01".encode(), b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01", b"garbage"):
        status, _ = raw(gateway, method, path, [*plain, (b"traceparent", value)], body)
        assert status == expected


def test_unknown_entities_never_become_metric_labels(gateway: Gateway) -> None:
    names = [f"RND-{n:04d}-x" for n in range(200)]
    for name in names:
        answer = requests.get(f"{gateway.url}/v1/{name}/orders/1", headers=gateway.headers(), timeout=5)
        assert answer.status_code == 404
    soap = ENVELOPE.replace(b"<o:customer>ACME-DE</o:customer>", b"<o:customer>RND-9999-x</o:customer>")
    requests.post(
        gateway.url + "/soap/OrderService",
        data=soap,
        headers={"X-API-Key": KEYS["webshop"], "Content-Type": "text/xml"},
        timeout=10,
    )
    requests.post(
        gateway.url + "/soap/OrderService",
        data=ENVELOPE,
        headers={"X-API-Key": KEYS["webshop"], "Content-Type": "text/xml"},
        timeout=10,
    )
    metrics = requests.get(gateway.url + "/metrics", timeout=5).text
    assert "RND-" not in metrics
    # the passthrough lists no entities itself: it labels those the deployment's routes name
    assert 'banyan_requests_total{entity="ACME-DE",route="order-service",status="200"}' in metrics
    assert 'banyan_requests_total{entity="other",route="order-status",status="404"} 200.0' in metrics


def test_schema_patterns_end_where_json_schema_says(gateway: Gateway) -> None:
    # orderNumber's pattern is ^[A-Za-z0-9-]{1,32}$; a final newline used to pass it
    order = {"orderNumber": "PO-NL\n", "customer": "c", "lines": [{"sku": "A", "qty": 1}]}
    answer = requests.post(gateway.url + "/v1/ACME-DE/orders", json=order, headers=gateway.headers(), timeout=10)
    assert answer.status_code == 422 and "/orderNumber" in " ".join(answer.json()["errors"])


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [("^a$", "a", True), ("^a$", "a\n", False), ("^[$]$", "$", True), (r"^a\$$", "a$", True), ("b", "abc", True)],
)
def test_ecma_patterns(pattern: str, text: str, matches: bool) -> None:
    from gateway.inputs import schema_validator

    assert schema_validator({"type": "string", "pattern": pattern}).is_valid(text) is matches


def _envelope(header: str, body: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:acme:erp:orders">'
        f"<s:Header>{header}</s:Header><s:Body><o:CreateOrder>{body}<o:quantity>1</o:quantity></o:CreateOrder>"
        "</s:Body></s:Envelope>"
    ).encode()


def test_passthrough_entity_comes_from_the_body_not_a_decoy_in_the_header(gateway: Gateway) -> None:
    before = len(SEEN)
    # a key scoped to ACME-DE puts its own entity in the Header and ACME-US's customer in the Body
    decoy = _envelope("<o:customer>ACME-DE</o:customer>", "<o:customer>ACME-US</o:customer>")
    headers = {"X-API-Key": KEYS["de_only"], "Content-Type": "text/xml"}
    answer = requests.post(gateway.url + "/soap/OrderService", data=decoy, headers=headers, timeout=10)
    assert soap_fault(answer.status_code, answer.content)["status"] == "403"
    assert "Entity not allowed" in answer.text
    # two different customers in the Body: which entity is served cannot be told
    twice = _envelope("", "<o:customer>ACME-DE</o:customer><o:customer>ACME-US</o:customer>")
    answer = requests.post(gateway.url + "/soap/OrderService", data=twice, headers=headers, timeout=10)
    assert soap_fault(answer.status_code, answer.content)["status"] == "400"
    assert "Ambiguous envelope" in answer.text
    assert len(SEEN) == before  # neither reached the legacy service
    ours = _envelope("", "<o:customer>ACME-DE</o:customer>")
    assert requests.post(gateway.url + "/soap/OrderService", data=ours, headers=headers, timeout=10).status_code == 200


SHIPPED = "concat('ACME-', substring(string(//*[local-name()='customer']), 3, 2))"  # routes/orders.yaml


def test_a_computed_entity_xpath_reads_the_body_too() -> None:
    """The shipped passthrough computes its entity (concat over the customer number): also Body-only."""
    from lxml import etree

    from gateway.envelope_xpath import compile_xpath
    from gateway.request import body_of

    assert SHIPPED in (Path(__file__).parents[2] / "routes" / "orders.yaml").read_text()
    envelope = etree.fromstring(_envelope("<o:customer>C-DE-1</o:customer>", "<o:customer>C-US-7</o:customer>"))
    xpath = compile_xpath(SHIPPED)
    with pytest.raises(Problem, match="different values"):  # the whole envelope: the Header's decoy and the Body's
        xpath.text(envelope)
    assert xpath.text(body_of(envelope)) == "ACME-US"


def test_a_computed_entity_xpath_refuses_two_customers_in_the_body() -> None:
    """concat/substring/string read the first customer only: a DE key could put its own customer first
    and another entity's after it. Each path the expression reads the first node of is checked too."""
    from lxml import etree

    from gateway.envelope_xpath import compile_xpath
    from gateway.request import body_of

    def read(expression: str, body: str) -> str | None:
        return compile_xpath(expression).text(body_of(etree.fromstring(_envelope("", body))))

    with pytest.raises(Problem, match="different values"):
        read(SHIPPED, "<o:customer>C-DE-1</o:customer><o:customer>C-US-7</o:customer>")
    with pytest.raises(Problem, match="different values"):  # string() of a function of the path
        read(
            "string(normalize-space(//*[local-name()='customer']))",
            "<o:customer>ACME-DE</o:customer><o:customer>ACME-US</o:customer>",
        )
    with pytest.raises(Problem, match="different values"):  # a number read from the first node, too
        read(
            "concat('ACME-', translate(number(//*[local-name()='customer']) + 0, '0', 'x'))",
            "<o:customer>1</o:customer><o:customer>2</o:customer>",
        )
    assert read(SHIPPED, "<o:customer>C-DE-1</o:customer><o:customer>C-DE-1</o:customer>") == "ACME-DE"  # agree
    # what reads every node, or a predicate's path (read from each node, not from the Body), is not held to one
    assert read("concat('n', count(//*[local-name()='customer']))", "<o:customer>A</o:customer>" * 3) == "n3"
    both = "<o:customer><o:id>1</o:id></o:customer><o:customer><o:id>2</o:id></o:customer>"
    assert read("concat(//*[local-name()='customer'][string(*) = '2'], '')", both) == "2"


@pytest.mark.parametrize(
    ("expression", "said"),
    [("string(//o:customer)", "no namespace map"), ("concat(//a)", "Too few arguments"), ("upper(//a)", "unknown")],
)
def test_an_entity_xpath_the_gateway_cannot_read_is_refused_at_load(tmp_path: Path, expression: str, said: str) -> None:
    """A prefixed name compiles in lxml and then fails on every call: refused when the route loads."""
    from gateway.table import compile_table

    (tmp_path / "soap.yaml").write_text(
        "routes:\n  - name: soap\n    passthrough:\n      path: /soap/Orders\n"
        f'      entity_xpath: "{expression}"\n      legacy: http://127.0.0.1:9/\n'
    )
    with pytest.raises(RouteError, match=said):
        compile_table(tmp_path)


@pytest.mark.parametrize(
    ("entity_xpath", "body", "read"),
    [
        ("string(//*[local-name()='customer'])", "<o:customer>ACME-DE</o:customer>", "ACME-DE"),
        # parentheses that only look like one string(…): the whole expression is read, not refused
        (
            "string(//*[local-name()='customer']) = string(//*[local-name()='payer'])",
            "<o:customer>ACME-DE</o:customer><o:payer>ACME-DE</o:payer>",
            "True",
        ),
    ],
)
def test_an_entity_xpath_is_compiled_as_written(tmp_path: Path, entity_xpath: str, body: str, read: str) -> None:
    from lxml import etree

    from gateway.request import body_of
    from gateway.table import compile_table

    (tmp_path / "soap.yaml").write_text(
        "routes:\n  - name: soap\n    passthrough:\n      path: /soap/Orders\n"
        f'      entity_xpath: "{entity_xpath}"\n      legacy: http://127.0.0.1:9/\n'
    )
    compiled = compile_table(tmp_path).routes[0]
    assert compiled.entity_xpath is not None
    assert compiled.entity_xpath.text(body_of(etree.fromstring(_envelope("", body)))) == read


@pytest.mark.parametrize(
    ("content_type", "version", "http_status", "code"),
    [("text/xml", "1.1", 500, "s:Client"), ("application/soap+xml", "1.2", 400, "s:Sender")],
)
def test_passthrough_problems_are_soap_faults_of_the_version_spoken(
    gateway: Gateway, content_type: str, version: str, http_status: int, code: str
) -> None:
    """A SOAP consumer cannot read problem+json: it gets a Fault, with the correlation id in the detail."""
    answer = requests.post(
        gateway.url + "/soap/OrderService",
        data=b"<not-closed>",
        headers={"X-API-Key": KEYS["webshop"], "Content-Type": content_type},
        timeout=10,
    )
    fault = soap_fault(answer.status_code, answer.content, version)
    assert (answer.status_code, fault["code"], fault["status"]) == (http_status, code, "400")
    assert fault["correlationId"] == answer.headers["X-Correlation-ID"] != ""
    assert answer.headers["Content-Type"].startswith(content_type)
    nokey = requests.post(
        gateway.url + "/soap/OrderService", data=ENVELOPE, headers={"Content-Type": content_type}, timeout=10
    )
    assert soap_fault(nokey.status_code, nokey.content, version)["status"] == "401"
    assert nokey.headers["WWW-Authenticate"] == "ApiKey"


def test_the_headers_sent_on_are_the_named_ones_each_one_line_of_latin_1() -> None:
    from multidict import CIMultiDict

    from gateway.inputs import forwardable
    from gateway.problems import Problem

    given = CIMultiDict({"soapaction": '"GetStock"', "content-type": "text/xml", "X-API-Key": "secret"})
    assert forwardable(given, ("Content-Type", "SOAPAction", "tracestate")) == {
        "Content-Type": "text/xml",
        "SOAPAction": '"GetStock"',
    }
    for value, said in (("€", "Latin-1"), ('"Get"\r\nX-Admin: yes', "one line")):
        with pytest.raises(Problem) as refused:
            forwardable(CIMultiDict({"SOAPAction": value}), ("SOAPAction",))
        assert refused.value.status == 400 and said in refused.value.detail and "SOAPAction" in refused.value.detail


def test_unknown_soap_customers_share_one_evidence_row(legacy_soap: str, tmp_path: Path) -> None:
    """10,000 random customers in envelopes made 10,002 evidence rows: the store grew with whatever
    the callers wrote. Evidence is kept for the deployment's entities; every other counts as `other`."""
    from cutover.store import minute
    from gateway.state import CUTOVER
    from tests.gateway.conftest import routes_yaml, running_gateway

    # a key scoped to no entity in particular (the webshop's is refused 403 for unknown ones)
    drops = tmp_path / "drops"
    (drops / "in").mkdir(parents=True)
    (drops / "ack").mkdir()
    text = routes_yaml(legacy_soap, legacy_soap, drops)
    with running_gateway(tmp_path, text, store=str(tmp_path / "cutover.db")) as gateway:
        for n in range(30):
            envelope = ENVELOPE.replace(
                b"<o:customer>ACME-DE</o:customer>", f"<o:customer>RND-{n}</o:customer>".encode()
            )
            requests.post(
                gateway.url + "/soap/OrderService",
                data=envelope,
                timeout=10,
                headers={"X-API-Key": KEYS["ops"], "Content-Type": "text/xml"},
            )
        requests.post(
            gateway.url + "/soap/OrderService",
            data=ENVELOPE,
            timeout=10,
            headers={"X-API-Key": KEYS["ops"], "Content-Type": "text/xml"},
        )
        cutover = gateway.app[CUTOVER]

        def counted() -> dict[str, int]:
            cutover.flush()  # what this thread holds; the gateway's own flush writes the rest each second
            with cutover.store.reading() as cursor:
                rows = cutover.store.execute(
                    cursor,
                    "SELECT entity, SUM(calls_legacy) FROM cutover_evidence WHERE route = ? AND minute >= ? "
                    "GROUP BY entity",
                    ("order-service", minute() - 5),
                ).fetchall()
            return {entity: int(calls) for entity, calls in rows}

        deadline = time.monotonic() + 10
        while sum(counted().values()) < 31 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted() == {"other": 30, "ACME-DE": 1}
