"""Changing the ladder: refusals that change nothing, gates, force, guardrails, schedules, freezes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cutover.decide import Mode, Side
from cutover.engine import CutoverError, Engine, RouteInfo
from cutover.gates import Counters, Gate, Guardrail
from cutover.store import Store, minute
from tests.cutover.conftest import Hook

ROUTES = [
    RouteInfo("orders.get", writes=False, has_cloud=True, gate=Gate(min_samples=10, min_minutes=0)),
    RouteInfo("orders.create", writes=True, has_cloud=True, gate=Gate(min_samples=10, min_minutes=0)),
    RouteInfo("stock.get", writes=False, has_cloud=False),
]
ENTITIES = ["acme-us", "acme-de"]


@pytest.fixture
def engine(store: Store) -> Engine:
    return Engine(store, ROUTES, ENTITIES)


def good_evidence(engine: Engine, route: str, entity: str, n: int = 50) -> None:
    engine.store.add_evidence(
        route, entity, engine.rule(route, entity).rung, minute(), Counters(calls_legacy=n, calls_cloud=n, comparisons=n)
    )


def snapshot(engine: Engine) -> tuple[Any, ...]:
    return (tuple(engine.store.rules()), tuple(engine.store.history()), tuple(engine.store.schedules()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("orders.gett", "acme-us", "shadow", "r"), "unknown route 'orders.gett'"),
        (("orders.get", "acme-fr", "shadow", "r"), "unknown legal entity 'acme-fr'"),
        (("orders.get", "acme-us", "shadow", "  "), "needs a reason"),
        (("orders.get", "acme-us", "sideways", "r"), "unknown mode 'sideways'"),
        (("orders.get", "acme-us", "canary", "r", 0), "above 0 and at most 100"),
        (("orders.get", "acme-us", "canary", "r", 101), "above 0 and at most 100"),
        (("orders.get", "acme-us", "shadow", "r", 5), "a percent only goes with canary"),
        (("orders.create", "acme-us", "shadow", "r"), "writes: shadow would never call the cloud"),
        (("stock.get", "acme-us", "shadow", "r"), "no cloud side"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(engine: Engine, args: tuple[Any, ...], message: str) -> None:
    before = snapshot(engine)
    route, entity, mode, reason, *percent = args
    with pytest.raises(CutoverError, match=message):
        engine.set(route, entity, mode, reason, "ana", percent=percent[0] if percent else 0.0, force=True)
    assert snapshot(engine) == before


def test_entity_override_and_route_default(engine: Engine) -> None:
    engine.set("orders.get", "*", "shadow", "all entities listen", "ana")
    assert engine.rule("orders.get", "acme-de").mode is Mode.shadow
    good_evidence(engine, "orders.get", "acme-us")
    engine.set("orders.get", "acme-us", "dual_write", "us first", "ana")
    assert engine.rule("orders.get", "acme-us").mode is Mode.dual_write
    assert engine.rule("orders.get", "acme-de").mode is Mode.shadow


def test_inconclusive_step_up_needs_force_and_is_audited(engine: Engine) -> None:
    engine.set("orders.get", "acme-us", "shadow", "start listening", "ana")
    with pytest.raises(CutoverError, match=r"Inconclusive \(0 samples of the 10 needed\)"):
        engine.promote("orders.get", "acme-us", "next", "ana")
    assert engine.rule("orders.get", "acme-us").mode is Mode.shadow
    engine.promote("orders.get", "acme-us", "sign-off by the controller", "ana", force=True)
    event = engine.history("orders.get", "acme-us")[0]
    assert (event.from_mode, event.to_mode, event.actor) == ("shadow", "dual_write", "ana")
    assert event.evidence["forced"] is True and event.evidence["verdict"] == "Inconclusive"


def test_failed_gate_refuses_without_force(engine: Engine) -> None:
    engine.set("orders.get", "acme-us", "shadow", "listen", "ana")
    engine.store.add_evidence(
        "orders.get",
        "acme-us",
        engine.rule("orders.get", "acme-us").rung,
        minute(),
        Counters(calls_cloud=50, comparisons=50, mismatches=10),
    )
    with pytest.raises(CutoverError, match=r"Failed.*mismatch rate 20.00%"):
        engine.promote("orders.get", "acme-us", "next", "ana")


def test_promote_walks_the_ladder_and_canary_steps(engine: Engine) -> None:
    seen = []
    # legacy gathers no evidence for sending writes to the cloud: the first step is a signed-off force
    with pytest.raises(CutoverError, match="sign off with --force"):
        engine.promote("orders.create", "acme-us", "go", "ana")
    for step in range(8):
        good_evidence(engine, "orders.create", "acme-us")
        rule = engine.promote("orders.create", "acme-us", "evidence is good", "ana", force=step == 0)
        seen.append((rule.mode.value, rule.percent))
    assert seen == [
        ("dual_write", 0),
        ("canary", 1),
        ("canary", 5),
        ("canary", 25),
        ("canary", 50),
        ("canary", 100),
        ("cloud_primary", 0),
        ("cloud", 0),
    ]  # (a write route skips shadow: shadow never sends a write to the cloud)
    with pytest.raises(CutoverError, match="already on the cloud"):
        engine.promote("orders.create", "acme-us", "more", "ana")


def test_rollback_steps_down_without_a_gate(engine: Engine) -> None:
    good_evidence(engine, "orders.create", "acme-us")
    engine.set("orders.create", "acme-us", "canary", "ramp", "ana", percent=25, force=True)
    assert engine.rollback("orders.create", "acme-us", "mismatches", "ben").mode is Mode.dual_write
    assert engine.rollback("orders.create", "acme-us", "back", "ben").mode is Mode.legacy  # skips shadow
    with pytest.raises(CutoverError, match="on legacy already"):
        engine.rollback("orders.create", "acme-us", "again", "ben")


def test_expected_version_guards_against_a_concurrent_change(engine: Engine) -> None:
    engine.set("orders.get", "acme-us", "shadow", "listen", "ana")
    with pytest.raises(CutoverError, match="at version 1, not 0"):
        engine.set("orders.get", "acme-us", "legacy", "undo", "ben", expected_version=0)
    assert engine.set("orders.get", "acme-us", "legacy", "undo", "ben", expected_version=1).version == 2


def test_pins_merge_and_hold(engine: Engine) -> None:
    engine.set("orders.get", "acme-us", "canary", "ramp", "ana", percent=5, pins={"SO-1": Side.cloud}, force=True)
    engine.set("orders.get", "acme-us", "canary", "vip stays", "ana", percent=5, pins={"SO-2": Side.legacy})
    assert engine.rule("orders.get", "acme-us").pins == {"SO-1": Side.cloud, "SO-2": Side.legacy}


def test_guardrail_steps_down_under_injected_errors(store: Store, webhook: str) -> None:
    routes = [
        RouteInfo(
            "orders.get",
            False,
            True,
            gate=Gate(min_samples=10, min_minutes=0),
            guardrail=Guardrail(min_samples=20, max_error_rate=0.05),
        )
    ]
    engine = Engine(store, routes, ENTITIES, webhook=webhook)
    engine.set("orders.get", "acme-us", "canary", "ramp", "ana", percent=25, force=True)
    rung = engine.rule("orders.get", "acme-us").rung
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=100, errors_cloud=2))
    assert engine.tick() == []  # 2% is within the guardrail
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=100, errors_cloud=30))
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]
    assert engine.tick() == []  # the errors were gathered on canary: shadow starts with a clean window
    event = engine.history("orders.get", "acme-us")[0]
    assert (event.kind, event.actor, event.from_mode, event.to_mode) == ("guardrail", "guardrail", "canary", "shadow")
    assert "cloud error rate 16.00% over 5.00%" in event.reason
    assert event.evidence["errors_cloud"] == 32
    assert Hook.received[0]["to"] == "shadow" and Hook.received[0]["entity"] == "acme-us"
    assert Hook.received[0]["action"] == "step_down"
    assert engine.rule("orders.get", "acme-de").mode is Mode.legacy  # the other entity is untouched


def _stepped_down(store: Store) -> Engine:
    guarded = RouteInfo(
        "orders.get",
        False,
        True,
        gate=Gate(min_samples=10, min_minutes=0),
        guardrail=Guardrail(min_samples=20, max_error_rate=0.05),
    )
    engine = Engine(store, [guarded], ENTITIES)
    engine.set("orders.get", "acme-us", "canary", "ramp", "ana", percent=25, force=True)
    rung = engine.rule("orders.get", "acme-us").rung
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=100, errors_cloud=30))
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]
    return engine


def test_a_step_down_stays_in_sight_and_blocks_stepping_up_until_acknowledged(store: Store) -> None:
    engine = _stepped_down(store)
    [row] = engine.status("orders.get", "acme-us", attention=True)
    assert row.step_down is not None and row.step_down.from_mode == "canary"
    assert row.as_dict()["step_down"]["reason"].startswith("guardrail: cloud error rate 30.00% over 5.00%")
    assert engine.status("orders.get", "acme-us")[0].step_down is None  # the gateways' tick does not ask
    assert engine.status("orders.get", "acme-de", attention=True)[0].step_down is None  # other entity

    before = snapshot(engine)
    with pytest.raises(CutoverError, match=r"the guardrail stepped orders\.get/acme-us down at .* acknowledge"):
        engine.promote("orders.get", "acme-us", "looks fine", "ana", force=True)
    assert snapshot(engine) == before
    # a schedule cannot step it back up behind the lead's back either
    engine.schedule("orders.get", "acme-us", "canary", datetime.now(UTC).isoformat(), "night", "ana", percent=25)
    engine.tick()
    [refused] = engine.store.schedules("refused")
    assert "acknowledge the step down" in refused.note

    good_evidence(engine, "orders.get", "acme-us")
    rule = engine.promote("orders.get", "acme-us", "INC-42 fixed the ATP", "ana", acknowledge=True)
    assert rule.mode is Mode.dual_write
    promoted, acknowledged = engine.history("orders.get", "acme-us")[:2]
    assert (promoted.kind, acknowledged.kind, acknowledged.actor) == ("promote", "acknowledge", "ana")
    assert acknowledged.reason == "INC-42 fixed the ATP" and acknowledged.evidence["step_down"] > 0
    assert engine.status("orders.get", "acme-us", attention=True)[0].step_down is None


def test_acknowledging_alone_then_stepping_up(store: Store) -> None:
    engine = _stepped_down(store)
    down = engine.acknowledge("orders.get", "acme-us", "seen: cloud release 2026.11 broke ATP", "lead")
    assert down.kind == "guardrail"
    with pytest.raises(CutoverError, match="no guardrail step down waits to be acknowledged"):
        engine.acknowledge("orders.get", "acme-us", "again", "lead")
    with pytest.raises(CutoverError, match="needs a reason"):
        engine.acknowledge("orders.get", "acme-de", " ", "lead")
    engine.set("orders.get", "acme-us", "canary", "retry", "lead", percent=5, force=True)  # no flag needed now


def test_guardrail_acts_during_a_freeze(engine: Engine) -> None:
    engine.set("orders.get", "acme-us", "canary", "go", "ana", percent=5, force=True)
    now = datetime.now(UTC)
    engine.freeze(
        "acme-us",
        (now - timedelta(hours=1)).isoformat(),
        (now + timedelta(hours=1)).isoformat(),
        "month-end close",
        "cfo",
    )
    engine.store.add_evidence(
        "orders.get",
        "acme-us",
        engine.rule("orders.get", "acme-us").rung,
        minute(),
        Counters(calls_cloud=50, comparisons=50, mismatches=40),
    )
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]
    assert engine.frozen("acme-us") is not None


def test_freeze_refuses_changes_for_its_entity_only(engine: Engine) -> None:
    now = datetime.now(UTC)
    engine.freeze(
        "acme-us",
        (now - timedelta(minutes=1)).isoformat(),
        (now + timedelta(days=2)).isoformat(),
        "month-end close",
        "cfo",
    )
    with pytest.raises(CutoverError, match=r"acme-us is frozen until .*: month-end close"):
        engine.set("orders.get", "acme-us", "shadow", "listen", "ana")
    engine.set("orders.get", "acme-de", "shadow", "listen", "ana")
    with pytest.raises(CutoverError, match="must end after it starts"):
        engine.freeze("acme-us", now.isoformat(), now.isoformat(), "x", "cfo")


def test_schedule_applies_when_due_and_waits_out_a_freeze(engine: Engine) -> None:
    now = datetime.now(UTC)
    first = engine.schedule(
        "orders.get", "acme-us", "shadow", (now + timedelta(minutes=5)).isoformat(), "night switch", "ana"
    )
    engine.schedule("orders.get", "acme-de", "shadow", (now + timedelta(minutes=5)).isoformat(), "night switch", "ana")
    engine.freeze("acme-de", now.isoformat(), (now + timedelta(hours=1)).isoformat(), "close", "cfo")
    assert engine.tick(now) == []
    assert engine.tick(now + timedelta(minutes=6)) == [f"schedule {first} applied"]
    assert engine.rule("orders.get", "acme-us").mode is Mode.shadow
    waiting = engine.store.schedules("pending")
    assert len(waiting) == 1 and waiting[0].note.startswith("postponed: acme-de is frozen")
    assert engine.tick(now + timedelta(hours=2)) == [f"schedule {waiting[0].id} applied"]


def test_schedule_refuses_bad_input(engine: Engine) -> None:
    with pytest.raises(CutoverError, match="cannot schedule"):
        engine.schedule("orders.get", "acme-us", "shadow", "next tuesday", "r", "ana")
    assert engine.store.schedules() == []


def test_two_gateways_judging_the_same_window_step_down_once(store: Store, store_location: str) -> None:
    from cutover.store import open_store

    other = Engine(open_store(store_location), ROUTES, ENTITIES)
    engine = Engine(store, ROUTES, ENTITIES)
    engine.set("orders.get", "acme-us", "canary", "ramp", "ana", percent=50, force=True)
    seen_by_other = other.status("orders.get", "acme-us")  # both judge the same window
    rung = engine.rule("orders.get", "acme-us").rung
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=100, errors_cloud=50))
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]
    other.status = lambda *args: seen_by_other  # type: ignore[method-assign]  # the other's judgement is stale
    assert other.tick() == []
    assert engine.rule("orders.get", "acme-us").mode is Mode.shadow
    other.store.close()


def test_old_evidence_is_pruned(engine: Engine) -> None:
    rung = engine.rule("orders.get", "acme-us").rung
    engine.store.add_evidence("orders.get", "acme-us", rung, minute() - 31 * 24 * 60, Counters(calls_cloud=7))
    engine.store.add_evidence("orders.get", "acme-us", rung, minute() - 60, Counters(calls_cloud=3))
    engine.tick()
    assert engine.store.evidence("orders.get", "acme-us", rung, 0).calls_cloud == 3


def test_a_route_that_learns_noise_has_its_mismatches_judged_only_once_learnt(store: Store) -> None:
    """A first shadow: a timestamp legacy changes itself differs on every call. The guardrail must
    not step back on it before the noise could be learnt; errors still trip it at once."""
    routes = [
        RouteInfo(
            "orders.get",
            False,
            True,
            gate=Gate(min_samples=10, min_minutes=0),
            guardrail=Guardrail(min_samples=20, max_mismatch_rate=0.05),
            learns_noise=True,
        ),
    ]
    engine = Engine(store, routes, ENTITIES)
    engine.set("orders.get", "acme-us", "canary", "ramp", "ana", percent=5, force=True)
    rung = engine.rule("orders.get", "acme-us").rung
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=50, comparisons=50, mismatches=20))
    assert engine.learning("orders.get")
    assert engine.tick() == []  # 40% mismatches, but nothing is known yet of what differs on its own
    [status] = engine.status("orders.get", "acme-us")
    assert status.verdict is not None and status.verdict.verdict.value == "Inconclusive"
    assert "learning which fields legacy changes on its own" in "; ".join(status.verdict.reasons)
    store.add_noise("orders.get", "acme-us", minute(), 9, {"/at": 9})
    assert engine.learning("orders.get") and engine.tick() == []
    store.add_noise("orders.get", "acme-us", minute(), 1, {"/at": 1})  # legacy asked twice, 10 times
    assert not engine.learning("orders.get")
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]


def test_errors_trip_a_route_that_is_still_learning_noise(store: Store) -> None:
    routes = [RouteInfo("orders.get", False, True, guardrail=Guardrail(min_samples=20), learns_noise=True)]
    engine = Engine(store, routes, ENTITIES)
    engine.set("orders.get", "acme-us", "cloud", "all in", "ana", force=True)
    rung = engine.rule("orders.get", "acme-us").rung
    store.add_evidence("orders.get", "acme-us", rung, minute(), Counters(calls_cloud=40, errors_cloud=20))
    assert engine.tick() == ["guardrail stepped orders.get/acme-us down to shadow"]


def test_gateways_count_no_mismatch_while_a_route_learns_its_noise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cutover.compare import Difference, Kind
    from cutover.runtime import Cutover

    routes = [RouteInfo("orders.get", False, True, learns_noise=True), RouteInfo("stock.get", False, True)]
    cutover = Cutover(str(tmp_path / "cutover.db"), routes, ENTITIES)
    try:
        differs = [Difference("/at", Kind.value, "10:00", "10:01")]
        assert cutover.compared("orders.get", "acme-us", "r", differs) is False  # learning: not a mismatch yet
        assert cutover.compared("stock.get", "acme-us", "r", differs) is True  # no noise to learn: judged at once
        taken = cutover.take()
        learnt = taken.counters[("orders.get", "acme-us", "r")]
        assert (learnt.comparisons, learnt.unjudged, learnt.mismatches, learnt.judged) == (1, 1, 0, 0)
        assert taken.differences[("orders.get", "acme-us")][0] == {("/at", "value"): 1}  # still learnt from
        cutover.store.add_noise("orders.get", "acme-us", minute(), 10, {"/at": 10})
        cutover.refresh_noise()
        assert cutover.compared("orders.get", "acme-us", "r", [Difference("/qty", Kind.value, 1, 2)]) is True
    finally:
        cutover.close()
