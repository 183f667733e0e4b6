"""The guardrail acts where the cloud reaches the business.

From a rung where the cloud answers consumers it moves, in one step, to the highest rung where legacy
serves; in shadow and dual_write it never steps down: it alerts once per crossing and keeps the
evidence, and on a write route cloud errors hold the cloud's copies in the outbox until a person
resumes them or the errors leave the window.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine

from cutover.decide import Mode
from cutover.engine import CutoverError, Engine, RouteInfo
from cutover.gates import Counters, Gate, Guardrail
from cutover.outbox import Outbox
from cutover.runtime import Cutover
from cutover.store import Store, minute
from tests.cutover.conftest import Hook

GUARDRAIL = Guardrail(min_samples=20, max_error_rate=0.05, max_mismatch_rate=0.05, window_minutes=5)
ROUTES = [
    RouteInfo(
        "orders.get", writes=False, has_cloud=True, gate=Gate(min_samples=10, min_minutes=0), guardrail=GUARDRAIL
    ),
    RouteInfo(
        "orders.create", writes=True, has_cloud=True, gate=Gate(min_samples=10, min_minutes=0), guardrail=GUARDRAIL
    ),
]
ENTITIES = ["acme-us", "acme-de"]
ERRORS = Counters(calls_legacy=100, calls_cloud=100, errors_cloud=30)
MISMATCHES = Counters(calls_legacy=100, calls_cloud=100, comparisons=100, mismatches=40)


def _on(store: Store, webhook: str, route: str, mode: str, percent: float = 0.0) -> Engine:
    engine = Engine(store, ROUTES, ENTITIES, webhook=webhook)
    engine.set(route, "acme-us", mode, "ramp", "ana", percent=percent, force=True)
    return engine


def _gathered(engine: Engine, route: str, counters: Counters, at: int | None = None) -> None:
    rung = engine.rule(route, "acme-us").rung
    engine.store.add_evidence(route, "acme-us", rung, minute() if at is None else at, counters)


@pytest.mark.parametrize(
    ("route", "mode", "percent", "lands"),
    [
        ("orders.get", "canary", 25, "shadow"),
        ("orders.get", "cloud_primary", 0, "shadow"),
        ("orders.get", "cloud", 0, "shadow"),
        ("orders.create", "canary", 50, "dual_write"),
        ("orders.create", "cloud_primary", 0, "dual_write"),
        ("orders.create", "cloud", 0, "dual_write"),
    ],
)
def test_where_the_cloud_serves_one_step_lands_where_legacy_serves(
    store: Store, webhook: str, route: str, mode: str, percent: float, lands: str
) -> None:
    engine = _on(store, webhook, route, mode, percent)
    _gathered(engine, route, ERRORS)
    assert engine.tick() == [f"guardrail stepped {route}/acme-us down to {lands}"]
    assert engine.rule(route, "acme-us").mode is Mode(lands)
    [down] = [event for event in engine.history(route, "acme-us") if event.kind == "guardrail"]
    assert (down.from_mode, down.to_mode) == (mode, lands)  # one audited step, not one rung per tick
    assert [(hook["action"], hook["from"], hook["to"]) for hook in Hook.received] == [("step_down", mode, lands)]
    assert engine.tick() == []  # the new rung's window is clean
    assert engine.rule(route, "acme-de").mode is Mode.legacy


@pytest.mark.parametrize(
    ("route", "mode"), [("orders.get", "shadow"), ("orders.get", "dual_write"), ("orders.create", "dual_write")]
)
def test_where_legacy_serves_mismatches_alert_once_and_the_rung_stays(
    store: Store, webhook: str, route: str, mode: str
) -> None:
    engine = _on(store, webhook, route, mode)
    _gathered(engine, route, MISMATCHES)
    [said] = engine.tick()
    assert said.startswith(f"guardrail alert on {route}/acme-us ({mode} stays): mismatch rate 40.00% over 5.00%")
    assert engine.tick() == []  # still crossed: alerted once, not every tick
    assert engine.rule(route, "acme-us").mode is Mode(mode)
    assert [(hook["action"], hook["to"]) for hook in Hook.received] == [("alert", mode)]
    [row] = engine.status(route, "acme-us", attention=True)
    assert row.alert is not None and "mismatch rate 40.00%" in row.alert.reason
    assert row.step_down is None  # nothing to acknowledge: nobody was moved
    assert row.as_dict()["alert"]["evidence"]["mismatches"] == 40
    # kept as evidence: the promotion is judged on it
    assert row.verdict is not None and row.verdict.verdict.value == "Failed"
    assert engine.rule(route, "acme-us").mode is Mode(mode)


def test_an_alert_clears_and_a_new_crossing_alerts_again(store: Store, webhook: str) -> None:
    engine = _on(store, webhook, "orders.get", "shadow")
    with time_machine.travel(time.time(), tick=False) as clock:
        _gathered(engine, "orders.get", MISMATCHES)
        assert engine.tick()[0].startswith("guardrail alert")
        clock.shift(timedelta(minutes=6))  # the mismatches left the window
        assert engine.tick() == ["guardrail cleared on orders.get/acme-us"]
        assert engine.status("orders.get", "acme-us", attention=True)[0].alert is None
        _gathered(engine, "orders.get", MISMATCHES)
        assert engine.tick()[0].startswith("guardrail alert")
    assert [hook["action"] for hook in Hook.received] == ["alert", "alert"]
    kinds = [event.kind for event in engine.history("orders.get", "acme-us")]
    assert kinds[:3] == ["guardrail_alert", "guardrail_clear", "guardrail_alert"]


def test_errors_in_shadow_alert_and_never_step_down(store: Store, webhook: str) -> None:
    engine = _on(store, webhook, "orders.get", "shadow")
    _gathered(engine, "orders.get", ERRORS)
    [said] = engine.tick()
    assert "cloud error rate 30.00% over 5.00%" in said
    assert engine.rule("orders.get", "acme-us").mode is Mode.shadow
    assert engine.paused_copies() == {}  # a read route has no copies to hold


def _owed_copy(store: Store, route: str = "orders.create") -> int:
    outbox = Outbox(store)
    message_id = outbox.intend(route, "acme-us", "SO-1", "cloud", "acme-us@1", {"payload": {}}, "k1")
    outbox.settle(message_id, "pending", {"id": "SO-1"})
    return message_id


def test_cloud_write_errors_in_dual_write_hold_the_copies_until_a_person_resumes(store: Store, webhook: str) -> None:
    engine = _on(store, webhook, "orders.create", "dual_write")
    message_id = _owed_copy(store)
    with time_machine.travel(time.time(), tick=False) as clock:
        _gathered(engine, "orders.create", ERRORS)
        said = engine.tick()
        assert "guardrail paused the cloud's copies of orders.create/acme-us" in said
        assert engine.rule("orders.create", "acme-us").mode is Mode.dual_write  # the rung stays
        assert engine.tick() == []  # paused once
        [row] = engine.status("orders.create", "acme-us", attention=True)
        assert row.copies_paused is not None and "cloud error rate 30.00%" in row.copies_paused.reason
        assert [hook["action"] for hook in Hook.received] == ["alert", "pause_copies"]
        # what the outbox worker does with a held copy: postponed, no attempt spent
        outbox = Outbox(store)
        with store.transaction() as cursor:
            outbox.postpone_in(cursor, message_id, time.time() + 3600, "held")
        assert outbox.due() == []

        with pytest.raises(CutoverError, match="needs a reason"):
            engine.resume_copies("orders.create", "acme-us", " ", "lead")
        pause = engine.resume_copies("orders.create", "acme-us", "INC-7: cloud mapping fixed", "lead")
        assert pause.kind == "pause_copies"
        assert [message.id for message in outbox.due()] == [message_id]  # due at once, no attempt spent
        assert outbox.get(message_id).attempts == 0
        with pytest.raises(CutoverError, match="not paused"):
            engine.resume_copies("orders.create", "acme-us", "again", "lead")
        # the errors from before the resume are still in the window, but no longer judged
        assert engine.tick() == []
        clock.shift(timedelta(minutes=1))
        _gathered(engine, "orders.create", ERRORS)  # new errors after the resume: held again
        assert "guardrail paused the cloud's copies of orders.create/acme-us" in engine.tick()


def test_held_copies_go_again_once_the_errors_leave_the_window(store: Store, webhook: str) -> None:
    engine = _on(store, webhook, "orders.create", "dual_write")
    with time_machine.travel(time.time(), tick=False) as clock:
        _gathered(engine, "orders.create", ERRORS)
        assert "guardrail paused the cloud's copies of orders.create/acme-us" in engine.tick()
        clock.shift(timedelta(minutes=3))
        assert engine.tick() == []  # still in the window
        clock.shift(timedelta(minutes=3))
        assert "guardrail resumed the cloud's copies of orders.create/acme-us" in engine.tick()
    assert engine.paused_copies() == {}
    resumed = engine.history("orders.create", "acme-us")[0]
    assert (resumed.kind, resumed.actor) == ("resume_copies", "guardrail")


def test_every_gateway_learns_of_a_pause_and_two_gateways_pause_once(store: Store, store_location: str) -> None:
    from cutover.store import open_store

    engine = Engine(store, ROUTES, ENTITIES)
    engine.set("orders.create", "acme-us", "dual_write", "go", "ana", force=True)
    other = Engine(open_store(store_location), ROUTES, ENTITIES)
    gateway = Cutover(store_location, ROUTES, ENTITIES)
    try:
        _gathered(engine, "orders.create", ERRORS)
        seen = other.store.latest(("pause_copies", "resume_copies"))
        assert engine.tick()[-1].startswith("guardrail paused")
        # the other judged the same window before the pause was recorded: its write is refused
        assert (
            other._hold_copies(
                other.status("orders.create", "acme-us")[0], ROUTES[1], seen.get(("orders.create", "acme-us"))
            )
            == []
        )
        assert [event.kind for event in engine.history("orders.create", "acme-us")].count("pause_copies") == 1
        gateway.reload()  # what the change signal makes every gateway do
        assert gateway.copies_paused("orders.create", "acme-us")
        assert not gateway.copies_paused("orders.create", "acme-de")
    finally:
        gateway.close()
        other.store.close()
