"""The gateway on the cutover ladder: decisions per call, mirrored calls compared, evidence, admin API."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiohttp import web

from cutover import outbox as outbox_module
from cutover import runtime as cutover_runtime
from cutover.decide import Mode
from cutover.outbox import idempotency_key
from cutover.runtime import Cutover
from cutover.store import minute
from gateway.state import CUTOVER, ROUTING
from gateway.table import Compiled
from tests.gateway.conftest import Gateway, app_in_thread, running_gateway

ADMIN = {"X-Admin-Key": "admin-key-0123456789", "X-Actor": "ana"}


@dataclass
class Erp:
    """A small ERP over HTTP: answers order lookups, counts calls, can be told to fail or to differ."""

    name: str
    url: str = ""
    calls: list[str] = field(default_factory=list)
    fail: bool = False
    fail_status: int = 503  # down: nothing was booked (a 500 would leave a write in doubt)
    total: float = 10.0
    effects: dict[str, str] = field(default_factory=dict)  # Idempotency-Key → order, each written once
    volatile: bool = False  # answers carry a field that changes on every call

    async def handle(self, request: web.Request) -> web.Response:
        order = request.match_info["order"]
        self.calls.append(order)
        if self.fail:
            return web.json_response({"error": "down"}, status=self.fail_status)
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key:
            self.effects.setdefault(key, order)  # a repeated key is answered, not written again
        answer = {"orderId": order, "total": self.total, "system": self.name}
        if self.volatile:
            answer["renderedAt"] = time.time_ns()
        return web.json_response(answer)


@contextmanager
def erp(name: str) -> Iterator[Erp]:
    server = Erp(name)
    app = web.Application()
    app.router.add_get("/orders/{order}", server.handle)
    app.router.add_post("/orders/{order}", server.handle)
    with app_in_thread(app) as url:
        server.url = url
        yield server


def ladder_routes(legacy: str, cloud: str) -> str:
    return textwrap.dedent(
        f"""\
        routes:
          - name: order-get
            operation: {{method: GET, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-US]}}
            key: {{from: path, name: orderId}}
            legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{orderId}}", timeout: 2}}}}
            cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{orderId}}", timeout: 2}}}}
            compare: {{ignore: [/system], tolerance: 0.01, noise_sample: 1.0}}
            slo: [{{name: order-read, kind: success, objective: 99}}]
            resilience: {{retries: 0, breaker: {{failures: 1000, reset: 1}}}}
            cutover:
              gate: {{min_samples: 5, min_minutes: 0}}
              guardrail: {{min_samples: 5, max_error_rate: 0.2}}
          - name: order-put
            operation: {{method: POST, path: "/v1/{{entity}}/orders/{{orderId}}"}}
            entity: {{from: path, name: entity, values: [ACME-DE, ACME-US]}}
            key: {{from: path, name: orderId}}
            writes: true
            legacy: {{backend: {{backend: http, url: "{legacy}/orders/{{orderId}}", timeout: 2}}}}
            cloud: {{backend: {{backend: http, url: "{cloud}/orders/{{orderId}}", timeout: 2}}}}
            resilience: {{retries: 0, breaker: {{failures: 1000, reset: 1}}}}
        """
    )


@dataclass
class Ladder:
    gateway: Gateway
    legacy: Erp
    cloud: Erp

    @property
    def cutover(self) -> Cutover:
        return self.gateway.app[CUTOVER]

    def get(self, entity: str, order: str) -> requests.Response:
        return requests.get(
            f"{self.gateway.url}/v1/{entity}/orders/{order}", headers=self.gateway.headers(), timeout=10
        )

    def admin(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.request(
            method,
            f"{self.gateway.url}/admin/cutover{path}",
            json=body,
            headers=ADMIN if headers is None else headers,
            timeout=10,
        )

    def settle(self) -> None:
        """Wait for mirrored calls and comparisons, then flush the evidence."""
        time.sleep(0.3)
        self.cutover.flush()


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture
def ladder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ladder]:
    monkeypatch.setattr(cutover_runtime, "TICK_SECONDS", 1.0)
    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = ladder_routes(legacy.url, cloud.url)
        store = str(tmp_path / "cutover.db")
        with running_gateway(tmp_path, routes, store=store, admin_key=ADMIN["X-Admin-Key"]) as gateway:
            yield Ladder(gateway, legacy, cloud)


def test_legacy_by_default_and_the_cloud_is_never_called(ladder: Ladder) -> None:
    answer = ladder.get("ACME-US", "SO-1")
    assert answer.status_code == 200 and answer.headers["X-Served-By"] == "legacy"
    ladder.settle()
    assert ladder.cloud.calls == []


def test_shadow_mirrors_reads_and_compares(ladder: Ladder) -> None:
    change = ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "listen"})
    assert change.status_code == 200, change.text
    assert change.json()["version"] == 1
    for n in range(10):  # every read also asks legacy twice (noise_sample 1.0): ten teach it its noise
        assert ladder.get("ACME-US", f"SO-{n}").headers["X-Served-By"] == "legacy"
    # mirrored calls run after the answer: let the ten be answered before the cloud changes
    wait_until(lambda: len(ladder.cloud.calls) == 10)
    ladder.settle()
    ladder.cutover.refresh_noise()  # what the tick does every few seconds
    assert ladder.cutover.learning == frozenset()
    ladder.cloud.total = 12.5  # the cloud now prices differently
    ladder.get("ACME-US", "SO-19")
    ladder.settle()
    assert sorted(ladder.cloud.calls) == sorted([f"SO-{n}" for n in range(10)] + ["SO-19"])
    status = {(row["route"], row["entity"]): row for row in ladder.admin("GET", "").json()}
    evidence = status[("order-get", "ACME-US")]["evidence"]
    assert (evidence["comparisons"], evidence["mismatches"], evidence["calls_cloud"]) == (11, 1, 11)
    assert status[("order-get", "ACME-DE")]["mode"] == "legacy"
    fields = ladder.admin("GET", "/mismatches?route=order-get&entity=ACME-US").json()
    assert [(f["path"], f["kind"], f["count"]) for f in fields] == [("/total", "value", 1)]
    assert fields[0]["samples"][0] == {"entity": "ACME-US", "legacy": 10.0, "cloud": 12.5}
    metrics = requests.get(f"{ladder.gateway.url}/metrics", timeout=5).text
    assert 'banyan_cutover_comparisons_total{entity="ACME-US",result="mismatch",route="order-get"} 1.0' in metrics
    assert (
        'banyan_cutover_calls_total{entity="ACME-US",outcome="ok",role="mirror",route="order-get",side="cloud"} 11.0'
        in metrics
    )


def test_canary_with_pins_and_stickiness(ladder: Ladder) -> None:
    body = {"mode": "canary", "percent": 50, "pins": {"SO-pinned": "legacy"}, "reason": "half", "force": True}
    assert ladder.admin("PUT", "/order-get/ACME-US", body).status_code == 200
    served = {f"SO-{n}": ladder.get("ACME-US", f"SO-{n}").headers["X-Served-By"] for n in range(40)}
    assert 8 < list(served.values()).count("cloud") < 32
    again = {key: ladder.get("ACME-US", key).headers["X-Served-By"] for key in served}
    assert again == served  # sticky by business key
    body = {"mode": "canary", "percent": 100, "reason": "all", "force": True}
    assert ladder.admin("PUT", "/order-get/ACME-US", body).status_code == 200
    assert ladder.get("ACME-US", "SO-pinned").headers["X-Served-By"] == "legacy"
    assert ladder.get("ACME-US", "SO-1").headers["X-Served-By"] == "cloud"


def test_cloud_primary_falls_back_to_legacy_for_reads(ladder: Ladder) -> None:
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "cloud_primary", "reason": "go", "force": True})
    assert ladder.get("ACME-US", "SO-1").headers["X-Served-By"] == "cloud"
    ladder.cloud.fail = True
    answer = ladder.get("ACME-US", "SO-2")
    assert answer.status_code == 200 and answer.headers["X-Served-By"] == "legacy"


def test_writes_never_reach_a_side_that_does_not_own_them(ladder: Ladder) -> None:
    refused = ladder.admin("PUT", "/order-put/ACME-US", {"mode": "shadow", "reason": "listen"})
    assert refused.status_code == 422 and "use dual_write" in refused.json()["detail"]
    headers = ladder.gateway.headers()
    requests.post(f"{ladder.gateway.url}/v1/ACME-US/orders/SO-7", json={}, headers=headers, timeout=10)
    ladder.settle()
    assert ladder.cloud.calls == []
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    requests.post(f"{ladder.gateway.url}/v1/ACME-US/orders/SO-8", json={}, headers=headers, timeout=10)
    wait_until(lambda: ladder.cloud.calls == ["SO-8"])  # through the outbox
    assert ladder.legacy.calls == ["SO-7", "SO-8"]


def test_guardrail_steps_down_when_the_cloud_fails(ladder: Ladder) -> None:
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "canary", "percent": 100, "reason": "all", "force": True})
    ladder.cloud.fail = True
    for n in range(10):
        ladder.get("ACME-US", f"SO-{n}")
    deadline = time.monotonic() + 10
    while _compiled(ladder).rule(ladder.cutover, "ACME-US").mode is Mode.canary:
        assert time.monotonic() < deadline, "the guardrail did not step down"
        time.sleep(0.2)
    history = ladder.admin("GET", "/history?route=order-get").text.splitlines()
    last = json.loads(history[-1])
    # one step, to the highest rung where legacy serves a read: the cloud still gets every call
    assert (last["kind"], last["from_mode"], last["to_mode"], last["actor"]) == (
        "guardrail",
        "canary",
        "shadow",
        "guardrail",
    )
    assert last["evidence"]["errors_cloud"] >= 5
    assert ladder.get("ACME-US", "SO-1").headers["X-Served-By"] == "legacy"


def test_cloud_write_errors_in_dual_write_hold_the_copies_and_a_person_resumes_them(ladder: Ladder) -> None:
    """The rung stays, the outbox keeps every copy without spending its attempts, and a resume sends
    them at once."""
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    ladder.cloud.fail = True  # 503: not made, so each copy is retried, and counted as a cloud error
    for n in range(25):
        requests.post(
            f"{ladder.gateway.url}/v1/ACME-US/orders/SO-{n}", json={}, headers=ladder.gateway.headers(), timeout=10
        )
    assert len(ladder.legacy.calls) == 25  # legacy served every write

    def paused() -> bool:
        return ladder.cutover.copies_paused("order-put", "ACME-US")

    wait_until(paused, 20)
    history = [json.loads(line) for line in ladder.admin("GET", "/history?route=order-put").text.splitlines()]
    assert [event["kind"] for event in history][-1] == "pause_copies"
    assert "cloud error rate" in history[-1]["reason"]
    [row] = requests.get(
        f"{ladder.gateway.url}/admin/cutover?route=order-put&entity=ACME-US", headers=ADMIN, timeout=10
    ).json()
    assert row["mode"] == "dual_write" and row["copies_paused"]["reason"] == history[-1]["reason"]
    time.sleep(0.5)  # a copy in flight when the pause was recorded settles
    spent = {message.id: message.attempts for message in ladder.cutover.outbox.list("pending", "order-put")}
    attempts = len(ladder.cloud.calls)
    ladder.cloud.fail = False
    time.sleep(2)  # the copies' backoff has run out: held, they are not sent, no attempt is spent
    held = ladder.cutover.outbox.list("pending", "order-put")
    assert len(held) == 25 and {message.id: message.attempts for message in held} == spent
    assert len(ladder.cloud.calls) == attempts
    assert any("the guardrail paused the cloud's copies" in message.last_error for message in held)

    refused = ladder.admin("POST", "/order-put/ACME-US/resume", {"reason": ""})
    assert refused.status_code == 422
    resumed = ladder.admin("POST", "/order-put/ACME-US/resume", {"reason": "INC-9: the cloud's intake is back"})
    assert resumed.status_code == 200 and resumed.json()["resumed"] == history[-1]["id"]
    sent = {f"SO-{n}" for n in range(25)}
    # each copy made, and its settlement recorded (the group commit writes it a moment after the call)
    wait_until(
        lambda: sent <= set(ladder.cloud.calls[attempts:]) and not ladder.cutover.outbox.list("pending", "order-put"),
        20,
    )
    assert not paused()
    again = ladder.admin("POST", "/order-put/ACME-US/resume", {"reason": "again"})
    assert again.status_code == 422 and "not paused" in again.json()["detail"]


def _compiled(ladder: Ladder) -> Compiled:
    return next(c for c in ladder.gateway.app[ROUTING].table.routes if c.route.name == "order-get")


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"),
    [
        ("GET", "", None, {}, 401, "admin key"),
        ("GET", "", None, {"X-Admin-Key": "wrong"}, 401, "admin key"),
        (
            "PUT",
            "/order-get/ACME-US",
            {"mode": "shadow", "reason": "r"},
            {"X-Admin-Key": ADMIN["X-Admin-Key"]},
            400,
            "actor",
        ),
        ("PUT", "/order-gett/ACME-US", {"mode": "shadow", "reason": "r"}, ADMIN, 422, "unknown route"),
        ("PUT", "/order-get/ACME-FR", {"mode": "shadow", "reason": "r"}, ADMIN, 422, "unknown legal entity"),
        ("PUT", "/order-get/ACME-US", {"mode": "canary", "percent": 120, "reason": "r"}, ADMIN, 422, "at most 100"),
        ("PUT", "/order-get/ACME-US", {"mode": "shadow"}, ADMIN, 422, "needs a reason"),
        ("POST", "/order-get/ACME-US/promote", {"reason": " "}, ADMIN, 422, "needs a reason"),
        ("POST", "/order-get/ACME-US/rollback", {}, ADMIN, 422, "needs a reason"),
        (
            "PUT",
            "/order-get/ACME-US",
            {"mode": "shadow", "reason": "r", "expected_version": 3},
            ADMIN,
            422,
            "version 0, not 3",
        ),
        ("POST", "/order-get/ACME-US/rollback", {"reason": "r"}, ADMIN, 422, "legacy already"),
    ],
)
def test_admin_api_refuses_bad_changes_and_changes_nothing(
    ladder: Ladder, method: str, path: str, body: object, headers: dict[str, str], status: int, says: str
) -> None:
    answer = ladder.admin(method, path, body, headers)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    assert ladder.cutover.store.rules() == [] and ladder.cutover.store.history() == []


def test_admin_api_is_off_without_a_key(tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = ladder_routes(legacy.url, cloud.url)
        with running_gateway(tmp_path, routes, store=str(tmp_path / "c.db")) as gateway:
            answer = requests.get(f"{gateway.url}/admin/cutover", headers=ADMIN, timeout=10)
    assert answer.status_code == 404 and "needs --admin-key" in answer.json()["detail"]


def test_dual_writes_wait_in_the_outbox_while_the_cloud_is_down(
    ladder: Ladder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(outbox_module, "BACKOFF_CAP", 0.5)
    monkeypatch.setattr(outbox_module, "MAX_ATTEMPTS", 1000)
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    ladder.cloud.fail = True
    url = f"{ladder.gateway.url}/v1/ACME-US/orders"
    for n in range(20):
        answer = requests.post(
            f"{url}/PO-{n}", json={}, headers=ladder.gateway.headers(**{"Idempotency-Key": f"k-{n}"}), timeout=10
        )
        assert answer.status_code == 201 and answer.headers["X-Served-By"] == "legacy"
    outbox = ladder.cutover.outbox

    def waiting() -> bool:
        """Every copy waits: tried and failed, or held by the guardrail (cloud write errors in
        dual_write pause the cloud's copies once it has seen enough of them: whichever comes first)."""
        pending = outbox.list("pending")
        held = ladder.cutover.copies_paused("order-put", "ACME-US")
        return len(pending) == 20 and all(m.attempts >= 2 or (held and m.attempts >= 1) for m in pending)

    wait_until(waiting, 20)
    ladder.settle()
    refused = ladder.admin("POST", "/order-put/ACME-US/promote", {"reason": "go"})
    assert refused.status_code == 422  # the gate stays closed (or the guardrail already stepped down)
    ladder.cloud.fail = False

    def delivered() -> bool:
        """The guardrail judges every 5 s on its window's errors: it may hold the copies after the cloud
        is back, and then a person says so (as often as it holds them)."""
        if ladder.cutover.copies_paused("order-put", "ACME-US"):
            resumed = ladder.admin("POST", "/order-put/ACME-US/resume", {"reason": "INC-10: the cloud is back"})
            assert resumed.status_code in (200, 409, 422)  # 409/422: resumed meanwhile
        return outbox.counts()["delivered"] == 20

    wait_until(delivered, 30)
    assert sorted(ladder.cloud.effects.values()) == sorted(f"PO-{n}" for n in range(20))  # each written once
    expected = {idempotency_key("order-put", "ACME-US", f"k-{n}", "") for n in range(20)}
    assert set(ladder.cloud.effects) == expected


def test_outbox_admin_api(ladder: Ladder, monkeypatch: pytest.MonkeyPatch) -> None:
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    ladder.legacy.fail, ladder.legacy.fail_status = True, 500  # the serving side fails: nothing is owed to the cloud
    answer = requests.post(
        f"{ladder.gateway.url}/v1/ACME-US/orders/PO-1", json={}, headers=ladder.gateway.headers(), timeout=10
    )
    assert answer.status_code == 502  # legacy's 500 is a backend fault
    listed = requests.get(f"{ladder.gateway.url}/admin/outbox", headers=ADMIN, timeout=5).json()
    assert listed["counts"]["cancelled"] == 1 and listed["messages"][0]["state"] == "cancelled"
    refused = requests.post(
        f"{ladder.gateway.url}/admin/outbox/1/replay", json={"reason": "r"}, headers=ADMIN, timeout=5
    )
    assert refused.status_code == 422 and "only in_doubt or dead" in refused.json()["detail"]
    assert ladder.cloud.calls == []


def test_fields_that_differ_on_their_own_are_told_apart(ladder: Ladder) -> None:
    ladder.legacy.volatile = ladder.cloud.volatile = True
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "listen"})
    ladder.cloud.total = 11.0
    for n in range(10):
        ladder.get("ACME-US", f"SO-{n}")
    ladder.settle()
    fields = {f["path"]: f for f in ladder.admin("GET", "/mismatches?route=order-get").json()}
    assert fields["/renderedAt"]["verdict"] == "noise" and fields["/renderedAt"]["legacy_own_rate"] == 1.0
    assert fields["/total"]["verdict"] == "difference" and fields["/total"]["rate"] == 1.0
    assert fields["/total"]["legacy_own_rate"] == 0.0
    # once learnt, noise alone no longer counts against the gate
    ladder.cutover.refresh_noise()
    assert ladder.cutover.noise_paths["order-get"] == {"/renderedAt"}
    ladder.cloud.total = 10.0
    for n in range(10, 20):
        ladder.get("ACME-US", f"SO-{n}")
    ladder.settle()
    [row] = [r for r in ladder.admin("GET", "?route=order-get&entity=ACME-US").json()]
    # the first ten taught the noise (the /total difference was counted, not judged); the next ten are judged
    evidence = row["evidence"]
    assert (evidence["comparisons"], evidence["unjudged"], evidence["mismatches"], evidence["judged"]) == (
        20,
        10,
        0,
        10,
    )


def test_admin_api_refuses_deep_json_and_keys_that_are_not_utf8(ladder: Ladder) -> None:
    deep = requests.put(
        f"{ladder.gateway.url}/admin/cutover/order-get/ACME-US",
        data=b"[" * 1000 + b"]" * 1000,
        headers={**ADMIN, "Content-Type": "application/json"},
        timeout=10,
    )
    assert deep.status_code == 400 and "nests too deeply" in deep.json()["detail"]
    odd = requests.get(f"{ladder.gateway.url}/admin/cutover", headers={"X-Admin-Key": "\xff\xfe"}, timeout=10)
    assert odd.status_code == 401
    assert ladder.cutover.store.rules() == []  # nothing changed


def test_64_concurrent_writers_on_one_key_lose_nothing_and_double_nothing(ladder: Ladder) -> None:
    """A surge on one business key (one big customer's order) in dual_write: every write booked once
    on each side, none left in doubt, and the cloud gets the key's writes one at a time."""
    ladder.admin("PUT", "/order-put/ACME-US", {"mode": "dual_write", "reason": "both", "force": True})
    url = f"{ladder.gateway.url}/v1/ACME-US/orders/HOT-1"

    def write(n: int) -> int:
        headers = ladder.gateway.headers(**{"Idempotency-Key": f"hot-{n}"})
        return requests.post(url, json={"line": n}, headers=headers, timeout=30).status_code

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(write, range(64)))
    assert statuses == [201] * 64
    outbox = ladder.cutover.outbox
    wait_until(lambda: outbox.counts()["delivered"] == 64, seconds=30)
    counts = outbox.counts()
    assert (counts["in_doubt"], counts["dead"], counts["pending"], counts["intent"]) == (0, 0, 0, 0)
    assert len(ladder.legacy.effects) == 64 and set(ladder.legacy.effects.values()) == {"HOT-1"}
    expected = {idempotency_key("order-put", "ACME-US", f"hot-{n}", "") for n in range(64)}
    assert set(ladder.cloud.effects) == expected  # each write reached the cloud, under its own key
    assert len(ladder.cloud.calls) == 64  # and none was sent twice


def test_evidence_a_minute_and_the_calendar_for_the_console(ladder: Ladder) -> None:
    ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "listen"})
    for n in range(4):
        assert ladder.get("ACME-US", f"SO-{n}").status_code == 200
    ladder.settle()
    found = ladder.admin("GET", "/series?route=order-get&entity=ACME-US&minutes=60").json()
    assert found["minutes"] == 60 and minute() - 60 <= found["since"] <= minute() - 59
    points = found["points"]  # one minute, or two if the calls straddled a minute's end
    assert 1 <= len(points) <= 2 and all(p["minute"] >= found["since"] for p in points)
    assert sum(p["calls_legacy"] for p in points) == 4 and sum(p["calls_cloud"] for p in points) == 4
    assert ladder.admin("GET", "/series?route=order-got&entity=ACME-US").status_code == 422
    assert ladder.admin("GET", "/series?route=order-get&entity=ACME-US&minutes=lots").status_code == 422
    assert ladder.admin("GET", "/series?route=order-get&entity=ACME-US", headers={}).status_code == 401
    ladder.admin(
        "POST",
        "/schedule",
        {
            "route": "order-get",
            "entity": "ACME-US",
            "mode": "dual_write",
            "at": "2030-01-01T02:00:00+00:00",
            "reason": "night",
        },
    )
    calendar = ladder.admin("GET", "/calendar").json()
    assert [(s["route"], s["mode"], s["state"]) for s in calendar["schedules"]] == [
        ("order-get", "dual_write", "pending")
    ]
    assert calendar["freezes"] == []
    [row] = [r for r in ladder.admin("GET", "").json() if (r["route"], r["entity"]) == ("order-get", "ACME-US")]
    assert row["gate"]["min_samples"] > 0 and row["guardrail"]["max_error_rate"] > 0


def test_a_persons_admin_key_names_its_holder_and_its_role_limits_it(ladder: Ladder) -> None:
    from tests.gateway.conftest import KEYS

    operator = {"X-Admin-Key": KEYS["ana"], "X-Actor": "somebody else"}
    viewer = {"X-Admin-Key": KEYS["viv"]}
    assert ladder.admin("GET", "", headers=viewer).status_code == 200
    refused = ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "r"}, headers=viewer)
    assert refused.status_code == 403 and refused.json()["title"] == "Role not allowed"
    done = ladder.admin("PUT", "/order-get/ACME-US", {"mode": "shadow", "reason": "listen"}, headers=operator)
    assert done.status_code == 200, done.text
    assert ladder.cutover.store.history()[0].actor == "Ana Lead"  # from the key, never from X-Actor
    me = requests.get(f"{ladder.gateway.url}/admin/whoami", headers=operator, timeout=5).json()
    assert me == {"actor": "Ana Lead", "role": "operator", "key": "personal", "scope": "every entity; every route"}
    webshop = ladder.admin("GET", "", headers={"X-Admin-Key": KEYS["webshop"]})
    assert webshop.status_code == 401  # an API key without a role is no admin key
