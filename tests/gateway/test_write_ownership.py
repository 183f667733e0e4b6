"""Moving a key between systems never loses or reorders its writes: a side is handed a key only once
the writes owed to it have landed, on every gateway of the fleet (two instances on one store here,
the change made on one, the calls sent to the other), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from cutover import outbox as outbox_module
from cutover.decide import Mode
from gateway.state import CUTOVER
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import Gateway, app_in_thread, running_gateway

ADMIN = {"X-Admin-Key": "admin-key-0123456789", "X-Actor": "ana"}


@dataclass
class Erp:
    """A system of record over HTTP that keeps what it is sent, in the order it is sent."""

    name: str
    url: str = ""
    down: bool = False
    orders: dict[str, dict[str, object]] = field(default_factory=dict)
    writes: list[tuple[str, object]] = field(default_factory=list)
    seen: dict[str, object] = field(default_factory=dict)  # Idempotency-Key → the answer it was given

    async def put(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        order, body = request.match_info["order"], await request.json()
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self.seen:  # a copy sent again after a restart: answered, not booked
            return web.json_response(self.seen[key])
        if key is not None:
            self.seen[key] = body
        self.orders[order] = body
        self.writes.append((order, body.get("qty")))
        return web.json_response(body)

    async def get(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        found = self.orders.get(request.match_info["order"])
        return web.json_response(found) if found is not None else web.json_response({"error": "no"}, status=404)


@contextmanager
def erp(name: str) -> Iterator[Erp]:
    server = Erp(name)
    app = web.Application()
    app.router.add_put("/orders/{order}", server.put)
    app.router.add_get("/orders/{order}", server.get)
    with app_in_thread(app) as url:
        server.url = url
        yield server


def routes(legacy: str, cloud: str) -> str:
    def side(url: str, method: str) -> str:
        return f'{{backend: {{backend: http, url: "{url}/orders/{{orderId}}", method: {method}, timeout: 2}}}}'

    common = """\
            entity: {from: path, name: entity, values: [ACME-US]}
            key: {from: path, name: orderId}
            resilience: {retries: 0, breaker: {failures: 100000, reset: 1}}
            cutover: {guardrail: {min_samples: 100000}}"""
    return textwrap.dedent(
        f"""\
        routes:
          - name: order-put
            operation: {{method: PUT, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            writes: true
            legacy: {side(legacy, "PUT")}
            cloud: {side(cloud, "PUT")}
{common}
          - name: order-get
            operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            legacy: {side(legacy, "GET")}
            cloud: {side(cloud, "GET")}
{common}
        """
    )


@dataclass
class Fleet:
    changes: Gateway  # the instance the lead's changes go to
    calls: Gateway  # the instance the consumers' calls go to
    legacy: Erp
    cloud: Erp

    def rung(self, mode: str) -> None:
        for route in ("order-put", "order-get"):
            body = {"mode": mode, "reason": "test", "force": True}
            answer = requests.put(
                f"{self.changes.url}/admin/cutover/{route}/ACME-US", json=body, headers=ADMIN, timeout=10
            )
            assert answer.status_code == 200, answer.text
        cutover = self.calls.app[CUTOVER]  # the other instance takes the change up by itself
        wait_until(
            lambda: all(cutover.rule(r, "ACME-US", Mode.legacy).mode == mode for r in ("order-put", "order-get"))
        )

    def put(self, order: str, qty: int) -> requests.Response:
        return requests.put(
            f"{self.calls.url}/v1/ACME-US/orders/{order}", json={"qty": qty}, headers=self.calls.headers(), timeout=10
        )

    def get(self, order: str) -> requests.Response:
        return requests.get(f"{self.calls.url}/v1/ACME-US/orders/{order}", headers=self.calls.headers(), timeout=10)

    def status(self) -> dict[str, dict[str, object]]:
        rows = requests.get(f"{self.changes.url}/admin/cutover", headers=ADMIN, timeout=10).json()
        return {row["route"]: row for row in rows if row["entity"] == "ACME-US"}

    def metrics(self) -> str:
        return requests.get(f"{self.calls.url}/metrics", timeout=10).text

    def drained(self) -> bool:
        counts = self.calls.app[CUTOVER].outbox.counts()
        return counts["intent"] == counts["pending"] == counts["in_doubt"] == counts["dead"] == 0


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setattr(outbox_module, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(outbox_module, "BACKOFF_CAP", 0.2)
    monkeypatch.setattr(outbox_module, "MAX_ATTEMPTS", 10_000)
    store = str(tmp_path / "cutover.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with ExitStack() as stack:
        legacy, cloud = stack.enter_context(erp("legacy")), stack.enter_context(erp("cloud"))
        text = routes(legacy.url, cloud.url)
        settings = {"store": store, "admin_key": ADMIN["X-Admin-Key"]}
        first = stack.enter_context(running_gateway(tmp_path / "a", text, **settings))
        second = stack.enter_context(running_gateway(tmp_path / "b", text, **settings))
        yield Fleet(first, second, legacy, cloud)


def qty(answer: requests.Response) -> object:
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text).get("qty")


def test_rolling_back_while_legacy_is_behind_loses_no_write(fleet: Fleet) -> None:
    fleet.rung("cloud_primary")
    fleet.legacy.down = True
    assert qty(fleet.put("PO-1", 1)) == 1 and fleet.cloud.orders["PO-1"]["qty"] == 1  # legacy's copy is owed
    fleet.rung("dual_write")  # back to legacy serving, while legacy is still owed PO-1
    read = fleet.get("PO-1")
    assert qty(read) == 1 and read.headers["X-Served-By"] == "cloud"  # the side that holds the write
    written = fleet.put("PO-1", 2)
    assert qty(written) == 2 and written.headers["X-Served-By"] == "cloud"  # legacy's copy waits behind the first
    # seen: how far legacy is behind, in the status (every instance reads the store) and on /metrics
    assert fleet.status()["order-put"]["behind"]["legacy"]["writes"] == 2
    owed = 'banyan_cutover_writes_owed{entity="ACME-US",route="order-put",side="legacy"} 2.0'
    wait_until(lambda: owed in fleet.metrics())
    fleet.legacy.down = False
    wait_until(fleet.drained)
    assert fleet.legacy.orders["PO-1"]["qty"] == 2 and fleet.cloud.orders["PO-1"]["qty"] == 2
    assert [w for w in fleet.legacy.writes if w[0] == "PO-1"] == [("PO-1", 1), ("PO-1", 2)]  # in the order acknowledged
    wait_until(lambda: fleet.get("PO-1").headers.get("X-Served-By") == "legacy")  # handed over once caught up
    assert qty(fleet.put("PO-1", 3)) == 3 and fleet.legacy.orders["PO-1"]["qty"] == 3


def test_promoting_while_the_cloud_is_behind_loses_no_write(fleet: Fleet) -> None:
    fleet.rung("dual_write")
    fleet.cloud.down = True
    assert qty(fleet.put("PO-2", 1)) == 1  # the cloud's copy is owed
    reasons = fleet.status()["order-put"]["verdict_reasons"]
    assert any(reason.startswith("the cloud is still owed 1 write ") for reason in reasons), reasons
    fleet.rung("cloud_primary")
    read = fleet.get("PO-2")
    assert qty(read) == 1 and read.headers["X-Served-By"] == "legacy"
    assert qty(fleet.put("PO-2", 2)) == 2
    fleet.cloud.down = False
    wait_until(fleet.drained)
    assert fleet.cloud.orders["PO-2"]["qty"] == 2 and fleet.legacy.orders["PO-2"]["qty"] == 2
    assert [w for w in fleet.cloud.writes if w[0] == "PO-2"] == [("PO-2", 1), ("PO-2", 2)]
    wait_until(lambda: fleet.get("PO-2").headers.get("X-Served-By") == "cloud")


class _Owing:
    """A cutover whose outbox owes `sides` writes of every key (unit test of the hand-over rule)."""

    def __init__(self, *sides: str) -> None:
        self.sides = set(sides)
        self.outbox = self

    def may_owe(self, routes: object, entity: object, side: object) -> bool:
        return True

    def owed_sides(self, routes: object, entity: object, key: object) -> set[str]:
        return self.sides


@pytest.mark.parametrize(
    ("writes", "rung", "owed", "plan"),
    [
        (True, "dual_write", (), ("legacy", "cloud", None)),
        (True, "dual_write", ("legacy",), ("cloud", "legacy", None)),  # served where the writes are, owed behind
        (True, "legacy", ("legacy",), ("cloud", "legacy", None)),
        (True, "cloud_primary", ("cloud",), ("legacy", "cloud", None)),
        (False, "cloud_primary", ("cloud",), ("legacy", None, None)),
        (
            False,
            "cloud_primary",
            ("legacy",),
            ("cloud", None, None),
        ),  # no fallback to, nor comparison with, a side behind
        (False, "cloud_primary", (), ("cloud", "legacy", "legacy")),
        (True, "dual_write", ("legacy", "cloud"), "503"),
        (False, "shadow", ("legacy", "cloud"), "503"),
    ],
)
def test_the_hand_over_rule(writes: bool, rung: str, owed: tuple[str, ...], plan: object, tmp_path: Path) -> None:
    from cutover.decide import Rule, decide
    from gateway.ownership import owned
    from gateway.problems import Problem
    from gateway.table import compile_table

    (tmp_path / "orders.yaml").write_text(routes("http://127.0.0.1:9", "http://127.0.0.1:9"))
    compiled = next(c for c in compile_table(tmp_path).routes if c.route.writes is writes)
    assert compiled.owners == ("order-put", "order-get")  # one path: one owner of the key's writes
    app = web.Application()
    app[CUTOVER] = _Owing(*owed)  # type: ignore[assignment]
    chosen = decide(Rule(compiled.route.name, "ACME-US", Mode(rung)), "PO-1", writes)
    try:
        found = asyncio.run(owned(app, compiled, "ACME-US", "PO-1", chosen))
    except Problem as exc:
        assert plan == "503" and exc.status == 503 and exc.headers["Retry-After"] == "1"
        return
    assert (found.serve.value, found.mirror and found.mirror.value, found.fallback and found.fallback.value) == plan


# -- the property: any sequence of writes, reads, rung changes, pins, outages and restarts ----------
KEYS = ("PO-a", "PO-b")
RUNGS = (("dual_write", 0.0), ("canary", 50.0), ("cloud_primary", 0.0))  # the rungs that write both sides


class Ownership(RuleBasedStateMachine):
    """Two recording systems behind a gateway on a SQLite store. After every step, a read answers the
    latest acknowledged write of its key (or nothing, never an older one); at the end, with both
    sides up and the outbox drained, each side holds every acknowledged write of each key, in the
    order the gateway acknowledged them."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.legacy, self.cloud = self.stack.enter_context(erp("legacy")), self.stack.enter_context(erp("cloud"))
        self.settings = {"store": str(folder / "cutover.db"), "admin_key": ADMIN["X-Admin-Key"]}
        self.folder, self.text, self.restarts = folder, routes(self.legacy.url, self.cloud.url), 0
        self.gateway = self._start()
        self.acked: dict[str, list[int]] = {key: [] for key in KEYS}
        self.value = 0
        self.set_rung("dual_write", 0.0)

    def _start(self) -> Gateway:
        self.restarts += 1
        self.running = ExitStack()
        return self.running.enter_context(
            running_gateway(self.folder / f"g{self.restarts}", self.text, **self.settings)
        )

    def set_rung(self, mode: str, percent: float, pins: dict[str, str] | None = None) -> None:
        fleet = Fleet(self.gateway, self.gateway, self.legacy, self.cloud)
        for route in ("order-put", "order-get"):
            body = {"mode": mode, "percent": percent, "reason": "test", "force": True, "pins": pins or {}}
            answer = requests.put(
                f"{self.gateway.url}/admin/cutover/{route}/ACME-US", json=body, headers=ADMIN, timeout=10
            )
            assert answer.status_code == 200, answer.text
        cutover = fleet.calls.app[CUTOVER]
        wait_until(
            lambda: all(cutover.rule(r, "ACME-US", Mode.legacy).mode == mode for r in ("order-put", "order-get"))
        )

    @rule(key=st.sampled_from(KEYS))
    def write(self, key: str) -> None:
        self.value += 1
        answer = requests.put(
            f"{self.gateway.url}/v1/ACME-US/orders/{key}",
            json={"qty": self.value},
            headers=self.gateway.headers(),
            timeout=10,
        )
        if answer.status_code == 200:
            self.acked[key].append(self.value)
        else:  # not made, and said so: the side that would serve it was down, or both were behind
            assert answer.status_code == 503, answer.text

    @rule(key=st.sampled_from(KEYS))
    def read(self, key: str) -> None:
        answer = requests.get(f"{self.gateway.url}/v1/ACME-US/orders/{key}", headers=self.gateway.headers(), timeout=10)
        if answer.status_code == 200:
            assert self.acked[key] and answer.json()["qty"] == self.acked[key][-1], (
                key,
                answer.json(),
                self.acked[key],
            )
        elif answer.status_code == 404:
            assert not self.acked[key], (key, self.acked[key])  # an acknowledged order never vanishes
        else:
            assert answer.status_code == 503, answer.text

    @rule(rung=st.sampled_from(RUNGS), pin=st.sampled_from((None, *KEYS)), side=st.sampled_from(("legacy", "cloud")))
    def change(self, rung: tuple[str, float], pin: str | None, side: str) -> None:
        self.set_rung(*rung, pins={pin: side} if pin and rung[0] == "canary" else None)

    @rule(side=st.sampled_from(("legacy", "cloud")))
    def outage(self, side: str) -> None:
        (self.legacy if side == "legacy" else self.cloud).down = True

    @rule(side=st.sampled_from(("legacy", "cloud")), key=st.sampled_from(KEYS), writes=st.booleans())
    def recovery(self, side: str, key: str, writes: bool) -> None:
        """A side comes back, and a consumer's call arrives before its copies have been sent again."""
        (self.legacy if side == "legacy" else self.cloud).down = False
        (self.write if writes else self.read)(key)

    @precondition(lambda self: self.restarts < 3)
    @rule()
    def restart(self) -> None:
        self.running.close()
        self.gateway = self._start()

    def teardown(self) -> None:
        try:
            self.legacy.down = self.cloud.down = False
            fleet = Fleet(self.gateway, self.gateway, self.legacy, self.cloud)
            wait_until(fleet.drained, 30)
            for key, acked in self.acked.items():
                for system in (self.legacy, self.cloud):
                    landed = [qty for order, qty in system.writes if order == key]
                    assert landed == acked, (system.name, key, landed, acked)
        finally:
            self.running.close()
            self.stack.close()


class TestOwnership(Ownership.TestCase):  # type: ignore[name-defined,misc]
    @pytest.fixture(autouse=True)
    def _slow_redelivery(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A side back up gets its copies only after a while, so calls land in between: where a key
        handed over too early would show."""
        monkeypatch.setattr(outbox_module, "BACKOFF_SECONDS", 0.4)
        monkeypatch.setattr(outbox_module, "BACKOFF_CAP", 0.8)


TestOwnership.settings = settings(
    max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "LEASE_SECONDS", 1.0)  # a restarted gateway's leases lapse soon
    monkeypatch.setattr(outbox_module, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(outbox_module, "BACKOFF_CAP", 0.2)
    monkeypatch.setattr(outbox_module, "MAX_ATTEMPTS", 10_000)


def test_rolling_back_with_two_gateway_processes_on_postgres(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The rollback story with real `banyan serve` processes (each with its worker and deliverer):
    the lead's change goes to one, the consumer's calls to the other."""
    from tests.gateway.conftest import serve_process

    with erp("legacy") as legacy, erp("cloud") as cloud:
        folder = tmp_path / "routes"
        folder.mkdir()
        (folder / "orders.yaml").write_text(routes(legacy.url, cloud.url))
        options = ("--routes", str(folder), "--insecure-no-auth", "--store", postgres_url)
        env = {"BANYAN_ADMIN_KEY": ADMIN["X-Admin-Key"]}
        with serve_process(*options, env=env) as lead, serve_process(*options, env=env) as consumers:

            def rung(mode: str) -> None:
                for route in ("order-put", "order-get"):
                    body = {"mode": mode, "reason": "test", "force": True}
                    answer = requests.put(f"{lead}/admin/cutover/{route}/ACME-US", json=body, headers=ADMIN, timeout=10)
                    assert answer.status_code == 200, answer.text
                time.sleep(1.5)  # the other process takes it up (LISTEN/NOTIFY) within a second

            def call(method: str, order: str, qty: int | None = None) -> requests.Response:
                body = {"qty": qty} if qty is not None else None
                return requests.request(method, f"{consumers}/v1/ACME-US/orders/{order}", json=body, timeout=10)

            rung("cloud_primary")
            legacy.down = True
            assert qty(call("PUT", "PO-1", 1)) == 1
            rung("dual_write")
            read = call("GET", "PO-1")
            assert qty(read) == 1 and read.headers["X-Served-By"] == "cloud"
            assert qty(call("PUT", "PO-1", 2)) == 2
            legacy.down = False
            wait_until(lambda: legacy.orders.get("PO-1", {}).get("qty") == 2, 60)
            assert [w for w in legacy.writes if w[0] == "PO-1"] == [("PO-1", 1), ("PO-1", 2)]
            assert cloud.orders["PO-1"]["qty"] == 2
            wait_until(lambda: call("GET", "PO-1").headers.get("X-Served-By") == "legacy", 30)
