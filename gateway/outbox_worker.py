"""The outbox worker: delivers the writes owed to the side that did not serve them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

from aiohttp import web

from cutover.decide import Side
from cutover.outbox import LEASE_SECONDS, Message, Outbox
from cutover.runtime import in_thread
from events.log import EventLog, New
from gateway.calls import Context
from gateway.judging import judge
from gateway.problems import THROTTLED, Problem
from gateway.route_events import declared, recorded
from gateway.sides import Answer, counted
from gateway.slo import measure
from gateway.state import CUTOVER, EVENT_LOG, OUTBOX_READY, ROUTING, SETTINGS
from gateway.table import Compiled
from gateway.tracing import CURRENT, parse
from legacy_adapters import Call, Outcome, outcome_of_status

log = logging.getLogger("banyan.gateway")

OUTBOX_POLL_SECONDS = 0.2
PAUSED_COPIES_SECONDS = 30.0  # how often a held copy is looked at again (a resume makes it due at once)


def _held_for(compiled: Compiled, side: Side, entity: str | None) -> float:
    """Seconds until the side takes a call: its breaker is open, or it asked for a pause; 0 when
    a call may go now."""
    try:
        bound = compiled.bound(side.value, entity)
    except Problem:  # no such side: the delivery itself will say so
        return 0.0
    return max(bound.breaker.wait(), bound.pause.wait())


# Seconds a write waits when the side refused the gateway's credentials: no number of attempts
# mends that, so it is held (never dead) and tried now and then, until the operators fix the access.
HOLD_SECONDS = 60.0


def next_step(answer: Problem) -> str:
    """What becomes of a write the side did not make, by what its answer said (errors.py):
    `pause` (it asked for one: no attempt spent), `hold` (the gateway's access was refused), `refuse`
    (the values were: trying again changes nothing), `doubt` (no one knows whether it was made: a
    person decides) or `retry` (not made: try again with backoff). A problem of the gateway's own,
    with no side's outcome, is read by its status, as any HTTP answer."""
    if answer.title == THROTTLED:
        return "pause"
    outcome = answer.outcome or outcome_of_status(answer.status)
    return {
        Outcome.not_authorised: "hold",
        Outcome.refused: "refuse",
        Outcome.not_found: "refuse",
        Outcome.unknown: "doubt",
    }.get(outcome, "retry")


async def _not_made(app: web.Application, message: Message, answer: Problem) -> None:
    """Record what becomes of a message its side did not make (see `next_step`). A refused accepted
    write is closed with the refusal, for its status URL."""
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    error = f"{answer.status} {answer.title}: {answer.detail}"
    step = next_step(answer)
    if step == "pause":
        wait = float(answer.headers.get("Retry-After", 1))
        await commits.background(outbox.postpone_in, message.id, time.time() + wait, error)
    elif step == "hold":
        log.error("outbox message %s held: %s", message.id, error)
        await commits.background(outbox.postpone_in, message.id, time.time() + HOLD_SECONDS, error)
    elif step == "doubt":
        await commits.background(outbox.doubted_in, message, error)
    elif step == "refuse" and message.kind == "accepted":
        problem = {"status": answer.status, "title": answer.title, "detail": answer.detail}
        await commits.background(outbox.refused_in, message, problem)
    elif step == "refuse":  # the side refused the write: retrying the same write will not change that
        await commits.background(outbox.failed_in, message, error, message.attempts + 1)
    else:
        await commits.background(outbox.failed_in, message, error)


async def deliver_in_order(app: web.Application, message: Message, run: int = 1) -> None:
    """Deliver `message` and, with `run` over 1, up to `run` - 1 of its key's next writes, leased
    now: one at a time in their order, each sent once the one before it was answered. Their
    settlements are recorded meanwhile, in order through the group commit, instead of each send
    waiting for the last one's; a crash in between sends them again with the same Idempotency-Key,
    which the side deduplicates. A write that is not delivered ends the run and gives the rest back."""
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    following: list[Message] = []
    if run > 1 and message.business_key is not None and message.kind == "copy":
        following = await commits.background(outbox.lease_run_in, message, run - 1)
    settling: list[asyncio.Future[Any]] = []
    try:
        for place, each in enumerate([message, *following]):
            if not await deliver(app, each, settling):
                await commits.background(outbox.release_in, following[place:])
                break
    finally:
        await asyncio.gather(*settling)


async def deliver(app: web.Application, message: Message, settling: list[asyncio.Future[Any]] | None = None) -> bool:
    """Deliver one outbox message to its side and compare the answer with the one served; True when
    it was delivered. With `settling`, the record that it was is left to finish there."""
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    compiled = next((c for c in app[ROUTING].table.routes if c.route.name == message.route), None)
    if compiled is None:
        error = f"route {message.route} is no longer served"
        await commits.background(outbox.failed_in, message, error, message.attempts + 1)
        return False
    entity = None if message.entity == "*" else message.entity
    body = message.call
    headers = {**body.get("headers", {}), "Idempotency-Key": message.idempotency_key}
    call = Call(
        message.route,
        body["payload"],
        entity,
        message.business_key,
        body.get("correlation_id", ""),
        headers,
        True,
        body.get("params", {}),
    )
    side = Side(message.side)
    context = parse(headers.get("traceparent"))  # the trace of the call that owed this write
    trace_id = context[0] if context else ""
    CURRENT.set((trace_id, call.correlation_id))
    if message.kind == "copy" and side is Side.cloud and cutover.copies_paused(message.route, message.entity):
        # the guardrail holds them (cloud errors in dual_write): no attempt; resuming makes them due
        error = "held: the guardrail paused the cloud's copies (banyan cutover resume, or the errors clear)"
        await commits.background(outbox.postpone_in, message.id, time.time() + PAUSED_COPIES_SECONDS, error)
        return False
    closed_in = _held_for(compiled, side, entity)
    if closed_in:  # the side is known to be down or paused: wait for it, spending no attempt
        await commits.background(outbox.postpone_in, message.id, time.time() + closed_in)
        return False
    answer = await counted(Context(app, compiled, entity, call, message.rung), side, "outbox")
    if message.kind == "accepted":
        await _settle_accepted(app, compiled, entity, call, message, answer, trace_id)
        return isinstance(answer, Answer)
    if isinstance(answer, Answer):
        recording = commits.background(outbox.delivered_in, message.id)
        if settling is None:
            await recording
        else:
            settling.append(asyncio.ensure_future(recording))
        if message.kind != "repair":  # a repair has no served answer to compare with
            served = Answer(200, message.served)
            legacy, cloud = (answer, served) if side is Side.legacy else (served, answer)
            judge(app, compiled, entity, message.rung, legacy, cloud)
        return True
    await _not_made(app, message, answer)
    return False


def _answered_and_recorded(
    cursor: Any, outbox: Outbox, event_log: EventLog, message: Message, answer: Any, events: list[New]
) -> None:
    """An accepted write made, and its events, in one transaction."""
    outbox.answered_in(cursor, message, answer, message.call.get("then"))
    event_log.record_in(cursor, events)


async def _settle_accepted(
    app: web.Application,
    compiled: Compiled,
    entity: str | None,
    call: Call,
    message: Message,
    answer: Answer | Problem,
    trace_id: str,
) -> None:
    """An accepted write's outcome, for its status URL: made (and the other side owed its copy on a
    rung writing both), or what `next_step` makes of it."""
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    measure(app, compiled, entity, answer, time.time() - message.created, trace_id)  # from the 202
    if isinstance(answer, Answer):
        events = declared(compiled, entity, call, answer.body) if compiled.route.events else []
        await commits.background(_answered_and_recorded, outbox, app[EVENT_LOG], message, answer.body, events)
        if message.call.get("then"):
            app[OUTBOX_READY].set()
        recorded(app, compiled, events)
    else:
        await _not_made(app, message, answer)


LEASE_MARGIN = 5.0  # seconds, beyond its calls' timeouts, for a delivery to record its outcome


def lease_for(app: web.Application, messages: list[Message]) -> float:
    """How long a claim of `messages` holds: their longest call (each attempt's timeout, with the
    route's retries) and a margin to record the outcome, at most the outbox's LEASE_SECONDS. A
    worker that dies leaves an accepted write in doubt that much sooner."""
    by_name = {c.route.name: c for c in app[ROUTING].table.routes}
    longest = 0.0
    for message in messages:
        compiled = by_name.get(message.route)
        try:
            bound = (
                compiled.bound(message.side, None if message.entity == "*" else message.entity) if compiled else None
            )
        except Problem:
            bound = None
        if compiled is None or bound is None:
            return LEASE_SECONDS
        attempts = 1 + compiled.route.resilience.retries
        longest = max(longest, bound.backend.config.timeout * attempts)
    return min(LEASE_SECONDS, longest + LEASE_MARGIN)


def with_room(app: web.Application, messages: list[Message]) -> list[Message]:
    """The messages their sides have room for now: as many as a side's bulkhead has free slots (one
    at least, waiting its turn), so a backlog goes at the pace the backend takes and no leased
    message waits in line for longer than its lease."""
    by_name = {c.route.name: c for c in app[ROUTING].table.routes}
    room: dict[int, int] = {}
    kept = []
    for message in messages:
        compiled = by_name.get(message.route)
        try:
            bound = (
                compiled.bound(message.side, None if message.entity == "*" else message.entity) if compiled else None
            )
        except Problem:
            bound = None
        if bound is None or bound.bulkhead is None:
            kept.append(message)
            continue
        left = room.setdefault(id(bound.bulkhead), max(bound.bulkhead.free, 1))
        if left:
            kept.append(message)
            room[id(bound.bulkhead)] = left - 1
    return kept


# Messages claimed at once, each the head of its own key's queue, delivered together. On a serving
# worker few and often beats many at once: 32 deliveries landing together held the event loop long
# enough to double the p99 of the consumers' own writes (bench: 9.6 ms with 32, 4.3 ms with 8, at
# 300 writes/s). The delivering process beside the workers serves nobody: it takes more at once, and
# once caught up lets the next copies gather for a moment, so a claim and its writes carry several
# (one claim per copy cost it half a core at 300 writes/s).
OUTBOX_BATCH = 8
DELIVERER_BATCH = 64
DELIVERER_GATHER_SECONDS = 0.02
# How many of a key's writes the deliverer sends in a row from one claim, in order, each settled
# while the next is sent. One key written closed loop for 5 s (1,400–1,900 writes/s): with a claim
# and a settlement per copy the backlog was 6,000–8,000 copies at the end and drained at 1,832
# copies/s on SQLite, 234 on PostgreSQL; in runs it was 1–111 copies, gone 0.1 s later, on both.
# The next claim, for the other keys' new copies, waits for no more than this many of one key's.
DELIVERER_RUN = 32


async def outbox_worker(app: web.Application) -> None:
    """Claim what is due (a read, then a lease through the group commit) and deliver it concurrently:
    the claimed messages are heads of different keys, so no key's order is at stake. A write a
    worker settles rings the doorbell; messages from other gateways, retries and backoffs are found by
    polling."""
    cutover = app[CUTOVER]
    ready = app[OUTBOX_READY]
    owner = f"{socket.gethostname()}:{os.getpid()}"
    deliverer = app[SETTINGS].deliveries == "only"  # the process beside the workers, serving nobody
    batch, gather, run = (
        (DELIVERER_BATCH, DELIVERER_GATHER_SECONDS, DELIVERER_RUN) if deliverer else (OUTBOX_BATCH, 0.0, 1)
    )
    while True:
        messages: list[Message] = []
        ready.clear()
        try:
            # what is due is read on the loop of a process that serves nobody, else in a thread
            due = with_room(app, cutover.outbox.due(batch) if deliverer else await in_thread(cutover.outbox.due, batch))
            if due:
                messages = await cutover.commits.background(
                    cutover.outbox.lease_in, owner, due, None, lease_for(app, due)
                )
            await asyncio.gather(*(deliver_in_order(app, message, run) for message in messages))
        except Exception as exc:  # the store is down: keep serving, try again
            log.error("outbox delivery paused: %s", exc)
            await asyncio.sleep(1)
        if not messages:  # caught up (or the sides have no room): wait to be rung, then for the rest
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), OUTBOX_POLL_SECONDS)
            if gather:
                await asyncio.sleep(gather)
