"""Write ownership: a side never serves a business key while writes of that key are still owed to it.

A write on dual_write, canary or cloud_primary reaches the side that does not serve it through the
outbox, later. When a rung changes (by hand, on a schedule, a canary percentage, a pin, a
guardrail) a key can move to a side that has not caught up on it yet: served there, a read would
miss the consumer's last write, and a new write would land before the older copies and be
overwritten by them. So each key is handed over when its copies have landed: until then the side
that holds all of its acknowledged writes keeps serving it — reads there, and writes there with
one more copy owed, in line behind the others — whatever the rung says.

    rung says serve S ─► S owed writes of the key? ─ no ─► serve S
                                   │ yes
                                   ▼
                         the other side owed too? ─ yes ─► 503 + Retry-After (both behind)
                                   │ no
                                   ▼
                         serve the other side; a write also owes S its copy, after the others

Asking the store costs a round trip, so it is asked only while a side may be behind: the runtime
refreshes each side's backlog every second and remembers rule changes (`Cutover.may_owe`). When
the store cannot be asked, a read is served as the rung says (a lost store stops changes, not
traffic) and a write is refused with 503: it could overtake copies delivered once the store is back.
"""

from __future__ import annotations

import logging

from aiohttp import web

from cutover.decide import Plan, Side
from cutover.runtime import in_thread
from cutover.store import StoreError
from gateway.problems import Problem
from gateway.state import CUTOVER
from gateway.table import Compiled

HANDING_OVER = "Key being handed over"
log = logging.getLogger("banyan.gateway")


def _other(side: Side) -> Side:
    return Side.cloud if side is Side.legacy else Side.legacy


async def owned(app: web.Application, compiled: Compiled, entity: str | None, key: str | None, plan: Plan) -> Plan:
    """`plan`, or the plan that serves `key` from the side holding all of its writes."""
    cutover = app.get(CUTOVER)
    if cutover is None or key is None:
        return plan
    reads = not compiled.route.writes
    sides = [side for side in (plan.serve, plan.fallback, plan.mirror if reads else None) if side is not None]
    if not any(cutover.may_owe(compiled.owners, entity, side) for side in sides):
        return plan
    try:
        owed = await in_thread(cutover.outbox.owed_sides, compiled.owners, entity or "*", key)
    except StoreError as exc:
        if reads:  # a lost store stops changes, not traffic: the read is served as the rung says
            log.warning(
                "%s: read of %s served without asking the outbox, the store is down: %s", compiled.route.name, key, exc
            )
            return plan
        # a write could overtake copies that will be delivered once the store is back
        detail = f"whether the {plan.serve.value} side holds every write of {key} cannot be read: {exc}"
        raise Problem(503, "Cutover store unavailable", detail, {"Retry-After": "1"}) from None
    if plan.fallback is not None and plan.fallback.value in owed:
        plan = Plan(plan.serve, plan.mirror, plan.compare, None)  # it would answer without the latest writes
    if reads and plan.mirror is not None and plan.mirror.value in owed:
        plan = Plan(plan.serve, None, False, plan.fallback)  # its answer would differ for want of a write
    if plan.serve.value not in owed:
        return plan
    other = _other(plan.serve)
    if other.value in owed or compiled.route.side(other.value, entity) is None:
        detail = (
            f"{key} is being handed over to the {plan.serve.value} side, which is still owed earlier writes "
            "of it, and no other side holds them all: retry once they have landed"
        )
        raise Problem(503, HANDING_OVER, detail, {"Retry-After": "1"})
    if not reads:
        return Plan(other, mirror=plan.serve)  # owed to the side behind, after what it is owed already
    return Plan(other)
