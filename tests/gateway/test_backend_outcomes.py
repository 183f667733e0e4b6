"""Only a write a backend made counts as made: every HTTP status from 100 to 599, sent by a real
HTTP/1.1 server, on every role a side plays — the serving call, a dual-write copy, canary's other
side, an accepted write, the shadow's mirror and the SOAP passthrough — and what it leaves in the
consumer's answer, the Idempotency-Key ledger, the outbox and the evidence."""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from cutover import runtime as cutover_runtime
from gateway.state import CUTOVER
from legacy_adapters import Outcome, outcome_of_status
from legacy_adapters.errors import retry_after
from legacy_adapters.odbc import _classified
from tests.gateway.conftest import Gateway, running_gateway, stream_server_in_thread

ADMIN = {"X-Admin-Key": "admin-key-0123456789", "X-Actor": "ana"}
STATUSES = range(100, 600)
MADE = range(200, 300)
NO_BODY = {204, 205, 304}


class StatusErp:
    """An ERP that answers each request with the status its order number names (`S429-…`, in the
    path or anywhere in the body), and books the order only when that status is a success. Raw
    HTTP/1.1 over a socket, so a 1xx, a 3xx or a 599 go out exactly as a server would send them."""

    def __init__(self, soap: bool = False, always: int | None = None) -> None:
        self.soap, self.always = soap, always
        self.throttle_for = 0.0  # seconds from the first call during which every call is answered 429
        self.throttled = 0  # calls answered so
        self.pause = 0  # the Retry-After of a 429 or 503
        self.calls: Counter[str] = Counter()
        self.booked: Counter[str] = Counter()
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                found = re.search(rb"S(\d{3})-[\w-]+", body + b" " + head.split(b"\r\n", 1)[0])
                order = found.group(0).decode() if found else "S200-none"
                status = self.always or int(order[1:4])
                started = self.__dict__.setdefault("started", time.monotonic())
                if time.monotonic() - started < self.throttle_for:
                    self.throttled += 1
                    status = 429
                self.calls[order] += 1
                if status in MADE:
                    self.booked[order] += 1
                writer.write(self.answer(status, order))
                await writer.drain()
                if status < 200:  # an interim answer and nothing after it: the connection is gone
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def answer(self, status: int, order: str) -> bytes:
        if status < 200:
            return f"HTTP/1.1 {status} Interim\r\n\r\n".encode()
        if self.soap:  # a SOAP service answers an envelope; this one's text merely holds the word
            content = (
                f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r:Result '
                f'xmlns:r="urn:r"><r:order>{order}</r:order><r:note>Fault-tolerant</r:note></r:Result>'
                "</s:Body></s:Envelope>"
            ).encode()
            kind = "text/xml"
        else:
            content, kind = f'{{"orderId": "{order}", "status": "booked"}}'.encode(), "application/json"
        if status in NO_BODY:
            content = b""
        extra = f"Retry-After: {self.pause}\r\n" if status in (429, 503) else ""
        return (
            f"HTTP/1.1 {status} Status\r\nContent-Type: {kind}\r\nContent-Length: {len(content)}\r\n{extra}\r\n"
        ).encode() + content


@contextmanager
def status_erp(soap: bool = False, always: int | None = None) -> Iterator[StatusErp]:
    erp = StatusErp(soap, always)
    with stream_server_in_thread(erp.serve) as url:
        erp.url = url
        yield erp


def routes(legacy: str, cloud: str) -> str:
    side = '{{backend: {{backend: http, url: "{url}/orders/{{orderId}}", timeout: 2}}}}'
    return textwrap.dedent(
        f"""\
        routes:
          - name: order-put
            operation: {{method: PUT, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            legacy: {side.format(url=legacy)}
            cloud: {side.format(url=cloud)}
            resilience: {{retries: 0, breaker: {{failures: 100000, reset: 1}}}}
            cutover: {{guardrail: {{min_samples: 100000}}}}
          - name: order-accept
            operation: {{method: PUT, path: "/v1/{{entity}}/accepted/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            async: true
            legacy: {side.format(url=legacy)}
            resilience: {{retries: 0, breaker: {{failures: 100000, reset: 1}}}}
          - name: order-get
            operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-US]}}
            key: {{from: path, name: orderId}}
            legacy: {side.format(url=legacy)}
            cloud: {side.format(url=cloud)}
            resilience: {{retries: 0, breaker: {{failures: 100000, reset: 1}}}}
            cutover: {{guardrail: {{min_samples: 100000}}}}
          - name: order-soap
            writes: true
            passthrough: {{path: /soap/orders, legacy: "{legacy}/soap", key_xpath: "string(//*[local-name()='order'])"}}
            resilience: {{retries: 0, breaker: {{failures: 100000, reset: 1}}}}
        """
    )


@contextmanager
def estate(tmp_path: Path, legacy: StatusErp, cloud: StatusErp) -> Iterator[Gateway]:
    with running_gateway(
        tmp_path, routes(legacy.url, cloud.url), store=str(tmp_path / "cutover.db"), admin_key=ADMIN["X-Admin-Key"]
    ) as gateway:
        yield gateway


def wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def put(session: requests.Session, gateway: Gateway, path: str, key: str) -> requests.Response:
    headers = gateway.headers(**{"Idempotency-Key": key})
    return session.put(f"{gateway.url}/v1/ACME-US/{path}", json={"qty": 1}, headers=headers, timeout=10)


def rung(gateway: Gateway, route: str, body: dict[str, object]) -> None:
    answer = requests.put(
        f"{gateway.url}/admin/cutover/{route}/ACME-US",
        json={**body, "reason": "test", "force": True},
        headers=ADMIN,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Gateway, StatusErp, StatusErp]]:
    monkeypatch.setattr(cutover_runtime, "TICK_SECONDS", 1.0)
    with status_erp() as legacy, status_erp() as cloud, estate(tmp_path, legacy, cloud) as gateway:
        yield gateway, legacy, cloud


def test_the_serving_call_and_its_idempotency_key(sides: tuple[Gateway, StatusErp, StatusErp]) -> None:
    gateway, legacy, _ = sides
    wrong = []
    with requests.Session() as session:
        for status in STATUSES:
            order = f"S{status}-serve"
            first = put(session, gateway, f"orders/{order}", order)
            again = put(session, gateway, f"orders/{order}", order)
            outcome = outcome_of_status(status)
            told = (first.status_code, again.status_code, again.headers.get("Idempotent-Replayed"))
            if status in MADE:
                expected_ok = first.status_code in MADE and again.headers.get("Idempotent-Replayed") == "true"
            elif outcome is Outcome.unknown:  # sent, and no one knows what became of it: never sent again
                expected_ok = first.status_code >= 500 and again.status_code == 409
            else:  # not made: the key is free, the retry is sent
                expected_ok = first.status_code not in MADE and again.headers.get("Idempotent-Replayed") is None
                expected_ok &= legacy.calls[order] >= 2
            if outcome is Outcome.not_made:
                expected_ok &= first.status_code == 503 and "Retry-After" in first.headers
            if not expected_ok or legacy.booked[order] != (1 if status in MADE else 0):
                wrong.append((status, told, legacy.booked[order]))
    assert wrong == []


def fate(status: int) -> str:
    """What a side's status makes of a write it was sent (DESIGN.md's table of outcomes)."""
    if status in MADE:
        return "made"
    if status in (429, 503):  # with Retry-After: the side asked for a pause, no attempt is spent
        return "pause"
    if status in (408, 425):  # not made: tried again with backoff, dead after the last attempt
        return "retry"
    if status in (401, 403):  # the gateway's access: held for the operators, never dead
        return "hold"
    if 400 <= status < 500:
        return "refuse"
    return "doubt"  # 1xx, 3xx, 5xx: sent, and no one knows what became of it


COPY = {
    "made": {"delivered"},
    "pause": {"pending"},
    "retry": {"pending", "dead"},
    "hold": {"pending"},
    "refuse": {"dead"},
    "doubt": {"in_doubt"},
}
ACCEPTED = {
    "made": {"done"},
    "pause": {"pending"},
    "retry": {"pending", "failed"},
    "hold": {"pending"},
    "refuse": {"failed"},
    "doubt": {"in_doubt"},
}


@pytest.mark.parametrize("serving", ["legacy", "cloud"], ids=["dual_write-copy", "canary-other-side"])
def test_a_copy_is_delivered_only_when_its_side_made_it(
    serving: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutover_runtime, "TICK_SECONDS", 1.0)
    with status_erp() as status, status_erp(always=200) as ok:
        # the serving side makes every write; the other side answers the status its copy names
        legacy, cloud = (ok, status) if serving == "legacy" else (status, ok)
        with estate(tmp_path, legacy, cloud) as gateway:
            plan = {"mode": "dual_write"} if serving == "legacy" else {"mode": "canary", "percent": 100}
            if serving == "cloud":
                rung(gateway, "order-put", {"mode": "dual_write"})
            rung(gateway, "order-put", plan)
            outbox = gateway.app[CUTOVER].outbox
            with requests.Session() as session:
                for code in STATUSES:
                    # the serving side sees the order in the path; the copy's side, the status in the body
                    answer = session.put(
                        f"{gateway.url}/v1/ACME-US/orders/S200-{code}",
                        json={"order": f"S{code}-copy"},
                        headers=gateway.headers(),
                        timeout=10,
                    )
                    assert answer.status_code in MADE and answer.headers["X-Served-By"] == serving, answer.text
            messages = lambda: {m.business_key: m for m in outbox.list(limit=10_000)}  # noqa: E731
            wait_until(lambda: all(m.state != "pending" or m.attempts or m.last_error for m in messages().values()))
            wrong = []
            for code in STATUSES:
                copy = messages()[f"S200-{code}"]
                booked = status.booked[f"S{code}-copy"]
                if copy.state not in COPY[fate(code)] or booked != (1 if code in MADE else 0):
                    wrong.append((code, copy.state, booked, copy.last_error[:60]))
            assert wrong == []
            counts = outbox.counts()
            assert counts["delivered"] == len(MADE)


def test_a_throttled_cloud_gets_each_copy_once_after_its_pause(tmp_path: Path) -> None:
    """A cloud ERP that answers 429 + Retry-After: 1 to every call for its first second. The copies
    wait the pause (the outbox used to say 'delivered' and never send them again), then go, each
    once; and the pause holds back every copy to that cloud, not only the one that was told, so
    fewer than the 20 copies run into the wall."""
    with status_erp(always=200) as legacy, status_erp(always=201) as cloud, estate(tmp_path, legacy, cloud) as gateway:
        rung(gateway, "order-put", {"mode": "dual_write"})
        cloud.throttle_for, cloud.pause = 1.0, 1
        outbox = gateway.app[CUTOVER].outbox
        with requests.Session() as session:
            for n in range(20):
                assert put(session, gateway, f"orders/S200-po{n}", f"k{n}").status_code in MADE
        wait_until(lambda: outbox.counts()["delivered"] == 20)
        assert all(cloud.booked[f"S200-po{n}"] == 1 for n in range(20))
        assert 1 <= cloud.throttled < 20, cloud.throttled


def test_an_accepted_write_is_done_only_when_made(sides: tuple[Gateway, StatusErp, StatusErp]) -> None:
    gateway, legacy, _ = sides
    with requests.Session() as session:
        locations = {}
        for status in STATUSES:
            answer = put(session, gateway, f"accepted/S{status}-accepted", f"a{status}")
            assert answer.status_code == 202, answer.text
            locations[status] = answer.headers["Location"]

        def told(status: int) -> dict[str, object]:
            return dict(session.get(f"{gateway.url}{locations[status]}", headers=gateway.headers(), timeout=10).json())

        settled = lambda status: told(status)["status"] != "pending" or told(status).get("lastError")  # noqa: E731
        wait_until(lambda: all(settled(status) for status in STATUSES))
        wrong = []
        for status in STATUSES:
            state = told(status)["status"]
            booked = legacy.booked[f"S{status}-accepted"]
            if state not in ACCEPTED[fate(status)] or booked != (1 if status in MADE else 0):
                wrong.append((status, state, booked))
        assert wrong == []


def test_the_shadow_counts_a_mirror_that_was_not_answered_as_an_error(
    sides: tuple[Gateway, StatusErp, StatusErp],
) -> None:
    gateway, _, cloud = sides
    rung(gateway, "order-get", {"mode": "shadow"})
    with requests.Session() as session:
        for status in STATUSES:
            # legacy serves the read; the cloud is asked the same, and answers the same status
            answer = session.get(
                f"{gateway.url}/v1/ACME-US/orders/S{status}-read", headers=gateway.headers(), timeout=10
            )
            assert (answer.status_code in MADE) == (status in MADE), (status, answer.status_code)
    wait_until(lambda: sum(cloud.calls.values()) >= len(STATUSES))
    time.sleep(0.3)
    cutover = gateway.app[CUTOVER]
    cutover.flush()
    status = {
        (row["route"], row["entity"]): row
        for row in requests.get(f"{gateway.url}/admin/cutover", headers=ADMIN, timeout=5).json()
    }
    evidence = status[("order-get", "ACME-US")]["evidence"]
    # both sides answer the same status: compared where both answered, or both refused the request
    compared = sum(1 for s in STATUSES if fate(s) in ("made", "refuse"))
    assert evidence["comparisons"] == compared and evidence["mismatches"] == 0, evidence
    # a side that asked for a pause is counted apart: not an error, not a mismatch
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'outcome="throttled",role="mirror",route="order-get",side="cloud"} 2.0' in metrics


def test_the_soap_passthrough_and_its_idempotency_key(tmp_path: Path) -> None:
    with status_erp(soap=True) as legacy, status_erp() as cloud, estate(tmp_path, legacy, cloud) as gateway:
        wrong = []
        with requests.Session() as session:
            for status in STATUSES:
                order = f"S{status}-soap"
                envelope = (
                    f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:Create '
                    f'xmlns:m="urn:m"><m:order>{order}</m:order></m:Create></s:Body></s:Envelope>'
                )
                headers = gateway.headers(**{"Idempotency-Key": order, "Content-Type": "text/xml"})
                first = session.post(f"{gateway.url}/soap/orders", data=envelope, headers=headers, timeout=10)
                again = session.post(f"{gateway.url}/soap/orders", data=envelope, headers=headers, timeout=10)
                replayed = again.headers.get("Idempotent-Replayed") == "true"
                outcome = outcome_of_status(status)
                if status in MADE:
                    fine = first.status_code == status and replayed
                elif outcome is Outcome.unknown:
                    fine = first.status_code not in MADE and again.status_code == 500 and b"in doubt" in again.content
                else:
                    fine = first.status_code not in MADE and not replayed and legacy.calls[order] >= 2
                if not fine or legacy.booked[order] != (1 if status in MADE else 0):
                    wrong.append((status, first.status_code, again.status_code, replayed))
            # a SOAP service that asked for a pause is counted apart, as a managed route's side is
            metrics = session.get(f"{gateway.url}/metrics", timeout=5).text
        assert wrong == []
        assert 'outcome="throttled",role="serve",route="order-soap",side="legacy"}' in metrics


@pytest.mark.parametrize(
    ("state", "message", "outcome"),
    [
        ("40001", "serialization failure", Outcome.not_made),
        ("40P01", "deadlock detected", Outcome.not_made),
        ("HY000", "[SQLite]database is locked (5)", Outcome.not_made),
        ("08001", "could not connect", Outcome.not_made),
        ("28000", "password authentication failed", Outcome.not_authorised),
        ("42501", "permission denied for table orders", Outcome.not_authorised),
        ("23505", "duplicate key value", Outcome.refused),
        ("22001", "value too long", Outcome.refused),
        ("P0001", "raised by a trigger", Outcome.refused),
        ("HY000", "UNIQUE constraint failed: orders.id", Outcome.refused),
        ("HYT00", "timeout expired", Outcome.unknown),
        ("08S01", "communication link failure", Outcome.unknown),
        ("HY000", "disk I/O error", Outcome.unknown),
    ],
)
def test_a_database_error_says_what_became_of_the_call(state: str, message: str, outcome: Outcome) -> None:
    assert _classified(state, message).outcome is outcome


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("", 1.0),
        ("7", 7.0),
        ("0", 0.0),
        ("86400", 300.0),
        ("soon", 1.0),
        ("-3", 1.0),
        ("Wed, 09 Dec 2026 10:00:00 GMT", 300.0),
        ("Mon, 07 Dec 2026 09:59:50 GMT", 0.0),
    ],
)
def test_retry_after_is_read_and_bounded(header: str | None, seconds: float) -> None:
    import time_machine

    with time_machine.travel("2026-12-07T10:00:00Z", tick=False):
        assert retry_after(header) == seconds
