"""Change requests and scopes on the engine, on SQLite and PostgreSQL: the big steps need a second
person, once, and a schedule acts within its maker's scope when it comes due."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from cutover.changes import Changes
from cutover.decide import Mode, Rule
from cutover.engine import CutoverError, Engine, RouteInfo
from cutover.gates import Approval, Counters, Gate, Guardrail
from cutover.scopes import Person, persons
from cutover.store import Conflict, Store, minute
from tests.cutover.conftest import Hook

APPROVED = Gate(min_samples=10, min_minutes=0, approval=Approval())
ROUTES = [
    RouteInfo("order-create", writes=True, has_cloud=True, gate=APPROVED, tags=("orders",)),
    RouteInfo("stock-get", writes=False, has_cloud=True, gate=Gate(min_samples=10, min_minutes=0), tags=("stock",)),
]
ENTITIES = ["ACME-US", "ACME-UK"]
NIGHT = "2026-11-30T22:00:00Z"  # expiries, schedules and the evidence's minutes read the clock


@pytest.fixture(autouse=True)
def night() -> Iterator[None]:
    """Every test here runs on the last night of a month, whatever the day."""
    with time_machine.travel(NIGHT, tick=True):
        yield


@pytest.fixture
def engine(store: Store) -> Engine:
    return Engine(store, ROUTES, ENTITIES)


def green(engine: Engine, route: str, entity: str) -> None:
    rung = engine.rule(route, entity).rung
    engine.store.add_evidence(route, entity, rung, minute(), Counters(calls_legacy=50, calls_cloud=50, comparisons=50))


def on_dual_write(engine: Engine) -> None:
    """order-create for ACME-US on dual_write, as an approved step before would have left it (a write
    route leaves legacy forced: no evidence can show at legacy how the cloud takes writes)."""
    rule = Rule("order-create", "ACME-US", Mode.dual_write)
    engine.store.put_rule(rule, 0, "ana", {"kind": "set", "to_mode": "dual_write", "reason": "start"})


def to_cloud_primary(engine: Engine) -> None:
    """order-create for ACME-US on cloud_primary's doorstep: dual_write with a green gate."""
    on_dual_write(engine)
    green(engine, "order-create", "ACME-US")


def test_a_person_reaches_their_entities_and_route_groups_only() -> None:
    uk = Person("uma", "operator", ("ACME-UK",), ("order-*", "tag:stock"))
    assert uk.refusal("order-create", "ACME-UK") is None
    assert uk.refusal("stock-get", "ACME-UK", ("stock",)) is None
    assert uk.refusal("order-create", "ACME-US") == "uma acts for ACME-UK, not for ACME-US"
    assert uk.refusal("invoice-post", "ACME-UK") == "uma acts on order-*, tag:stock, not on invoice-post"
    assert uk.refusal("*", "ACME-UK") == "uma acts on order-*, tag:stock, not on every route"  # a freeze
    assert Person("viv", "viewer").refusal("order-create", "ACME-UK") == "viv is a viewer; this needs an operator"
    central = Person("cleo", "admin")
    assert central.central and central.refusal("*", "*") is None
    rows = [
        ("uma", "h1", {"role": "operator", "entities": ["ACME-UK"]}, None),
        ("shop", "h2", {"routes": ["order-create"]}, None),  # a consumer, no person
        ("old", "h3", {"role": "admin"}, "2026-01-01"),  # revoked
    ]
    assert list(persons(rows)) == ["uma"]


def test_a_step_into_cloud_primary_needs_a_second_person_and_is_applied_once(engine: Engine) -> None:
    to_cloud_primary(engine)
    with pytest.raises(CutoverError, match="the step into cloud_primary of order-create/ACME-US needs a second"):
        engine.set("order-create", "ACME-US", "cloud_primary", "go", "ana")
    changes = Changes(engine)
    proposed = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-77: three weeks clean", "ana")
    assert (proposed.state, proposed.needs, proposed.evidence["verdict"]) == (
        "proposed",
        "the step into cloud_primary",
        "Successful",
    )
    with pytest.raises(CutoverError, match="ana proposed it; a second person approves it"):
        changes.approve(proposed.id, "me too", "ana")
    approved = changes.approve(proposed.id, "checked the reconciliation", "bo")
    assert (approved.state, approved.decided_by) == ("applied", "bo")
    assert engine.rule("order-create", "ACME-US").mode is Mode.cloud_primary
    with pytest.raises(CutoverError, match="is applied by bo: nothing to decide"):
        changes.approve(proposed.id, "again", "cy")
    kinds = [(event.kind, event.actor) for event in engine.history("order-create", "ACME-US")]
    assert kinds[:2] == [("approve", "bo"), ("propose", "ana")]
    [applied] = [event for event in engine.history("order-create", "ACME-US") if event.kind == "approve"]
    assert applied.to_mode == "cloud_primary" and applied.evidence["change"] == proposed.id
    # stepping down never waits (nor does the guardrail: below)
    assert engine.rollback("order-create", "ACME-US", "totals differ", "ana").mode is Mode.canary


def test_two_approvers_at_once_apply_it_once(engine: Engine) -> None:
    to_cloud_primary(engine)
    changes = Changes(engine)
    proposed = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-78", "ana")
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def approve(who: str) -> None:
        start.wait()
        try:
            outcomes.append(Changes(engine).approve(proposed.id, "looks right", who).state)
        except (Conflict, CutoverError) as exc:
            outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("bo", "cy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome.split(":")[0] for outcome in outcomes) == ["applied", "refused"]
    steps = [event for event in engine.history("order-create", "ACME-US") if event.kind == "approve"]
    assert len(steps) == 1 and engine.rule("order-create", "ACME-US").version == 2


def test_a_proposal_on_a_rule_that_moved_is_refused_not_applied(engine: Engine) -> None:
    to_cloud_primary(engine)
    changes = Changes(engine)
    proposed = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-79", "ana")
    engine.rollback("order-create", "ACME-US", "a bad night", "bo")
    with pytest.raises(CutoverError, match=r"moved since change \d+ was proposed"):
        changes.approve(proposed.id, "ok", "cy")
    refused = engine.store.change(proposed.id)
    assert refused is not None and refused.state == "refused"
    assert engine.rule("order-create", "ACME-US").mode is Mode.legacy


def test_reject_withdraw_and_expire(engine: Engine) -> None:
    to_cloud_primary(engine)
    changes = Changes(engine)
    first = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-80", "ana")
    assert changes.reject(first.id, "not during the stock count", "bo").state == "rejected"
    second = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-81", "ana")
    with pytest.raises(CutoverError, match="only ana, who proposed it, withdraws it"):
        changes.withdraw(second.id, "mine now", "bo")
    assert changes.withdraw(second.id, "wrong week", "ana").state == "withdrawn"
    third = changes.propose("order-create", "ACME-US", "cloud_primary", "CAB-82", "ana")
    with time_machine.travel("2026-12-03T22:00:05Z"):  # 72 hours and a few seconds later
        assert changes.expire() == [f"change {third.id} expired"]
        with pytest.raises(CutoverError, match="is expired"):
            changes.approve(third.id, "late", "bo")
    kinds = {event.kind for event in engine.history("order-create", "ACME-US")}
    assert {"propose", "reject", "withdraw", "expire"} <= kinds


def test_a_forced_step_needs_an_approval_and_the_approver_sees_it_forced(engine: Engine) -> None:
    on_dual_write(engine)  # no evidence yet: the gate is Inconclusive
    with pytest.raises(CutoverError, match="a step forced past the gate of order-create/ACME-US needs a second"):
        engine.set("order-create", "ACME-US", "canary", "hurry", "ana", percent=5, force=True)
    with pytest.raises(CutoverError, match="the gate says Inconclusive"):
        Changes(engine).propose("order-create", "ACME-US", "canary", "hurry", "ana", percent=5)
    forced = Changes(engine).propose("order-create", "ACME-US", "canary", "hurry", "ana", percent=5, force=True)
    assert forced.needs == "a step forced past the gate" and forced.force
    Changes(engine).approve(forced.id, "the vendor signed it off", "bo")
    rule = engine.rule("order-create", "ACME-US")
    assert (rule.mode, rule.percent) == (Mode.canary, 5)
    # a small canary step on a green gate needs nobody else; above 25 % it does
    green(engine, "order-create", "ACME-US")
    assert engine.set("order-create", "ACME-US", "canary", "ramp", "ana", percent=25).percent == 25
    green(engine, "order-create", "ACME-US")
    with pytest.raises(CutoverError, match="the step into canary above 25 %"):
        engine.set("order-create", "ACME-US", "canary", "ramp", "ana", percent=50)
    # a route without approval in its gate moves as before
    green(engine, "stock-get", "ACME-US")
    assert engine.set("stock-get", "ACME-US", "shadow", "go", "ana").mode is Mode.shadow


def test_a_schedule_carries_an_approved_change_and_acts_within_its_makers_scope(store: Store) -> None:
    engine = Engine(store, ROUTES, ENTITIES)
    to_cloud_primary(engine)
    now = datetime.now(UTC)
    later = (now + timedelta(hours=2)).isoformat()
    with pytest.raises(CutoverError, match="propose it with its time"):
        engine.schedule("order-create", "ACME-US", "cloud_primary", later, "night switch", "ana")
    changes = Changes(engine)
    proposed = changes.propose("order-create", "ACME-US", "cloud_primary", "night switch", "ana", at=later)
    assert changes.approve(proposed.id, "ok for tonight", "bo").state == "scheduled"
    [scheduled] = store.schedules("pending")
    assert scheduled.change_id == proposed.id and scheduled.actor == "ana"
    assert engine.tick(now + timedelta(hours=3))[0] == f"schedule {scheduled.id} applied"
    assert engine.rule("order-create", "ACME-US").mode is Mode.cloud_primary
    # a schedule whose maker's scope no longer reaches its row is refused when it comes due
    store.put_consumer("uma", "a" * 64, {"role": "operator", "entities": ["ACME-UK"]}, "cleo", "create")
    green(engine, "stock-get", "ACME-US")
    number = engine.schedule("stock-get", "ACME-US", "shadow", later, "made before her scope narrowed", "uma")
    engine.tick(now + timedelta(hours=3))
    [refused] = [item for item in store.schedules() if item.id == number]
    assert (
        refused.state == "refused"
        and refused.note == "uma acts for ACME-UK, not for ACME-US: the schedule is not applied"
    )
    assert engine.rule("stock-get", "ACME-US").mode is Mode.legacy


def test_the_guardrail_steps_down_without_waiting_for_anyone(store: Store) -> None:
    guarded = RouteInfo(
        "order-create",
        writes=True,
        has_cloud=True,
        gate=APPROVED,
        guardrail=Guardrail(min_samples=20, max_error_rate=0.05),
    )
    engine = Engine(store, [guarded], ENTITIES)
    to_cloud_primary(engine)
    proposed = Changes(engine).propose("order-create", "ACME-US", "cloud_primary", "CAB-83", "ana")
    Changes(engine).approve(proposed.id, "ok", "bo")
    rung = engine.rule("order-create", "ACME-US").rung
    store.add_evidence("order-create", "ACME-US", rung, minute(), Counters(calls_cloud=100, errors_cloud=40))
    assert engine.tick() == ["guardrail stepped order-create/ACME-US down to dual_write"]


def test_the_approvers_are_told_of_a_proposal_once_for_the_fleet(engine: Engine, webhook: str) -> None:
    to_cloud_primary(engine)
    proposed = Changes(engine).propose("order-create", "ACME-US", "cloud_primary", "CAB-84", "ana")
    assert Changes(engine).tell(webhook) == [f"change {proposed.id} told"]
    assert Changes(engine).tell(webhook) == []  # another gateway's tick: told already
    [told] = Hook.received
    assert told["event"] == "change_proposed" and told["change"]["proposed_by"] == "ana"
    assert told["approve"] == f"/admin/changes/{proposed.id}/approve"
