"""The events a route declares, made from a successful call: one CloudEvent per `events:` entry,
recorded in the store with the write's outcome (events/log.py) and published by the relay."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from cutover.commits import merged
from cutover.outbox import Outbox
from events.log import EventLog, New, new_event
from gateway.state import CUTOVER, EVENT_LOG, EVENTS_READY, METRICS
from gateway.table import Compiled
from legacy_adapters import Call
from legacy_adapters.mapping import MappingError, pointer_get

log = logging.getLogger("banyan.gateway")


def _subject(pointer: str | None, answer: Any, request: Any) -> str | None:
    if pointer is None:
        return None
    for document in (answer, request):
        try:
            found = pointer_get(document, pointer)
        except (MappingError, TypeError):
            continue
        if found is not None and not isinstance(found, dict | list):
            return str(found)
    return None


def declared(compiled: Compiled, entity: str | None, call: Call, answer: Any) -> list[New]:
    """The route's events for a call the serving side took, answered with `answer`."""
    route = compiled.route
    made = []
    for spec in route.events:
        if spec.data == "both":
            data: Any = {"request": call.payload, "answer": answer}
        else:
            data = answer if spec.data == "answer" else call.payload
        source = spec.source or f"/banyan/routes/{route.name}"
        subject = _subject(spec.subject, answer, call.payload)
        traceparent = call.headers.get("traceparent")
        owner = route.owner.team if route.owner is not None else None
        made.append(
            new_event(spec.type, source, subject, data, route.name, entity, call.correlation_id, traceparent, owner)
        )
    return made


def recorded(app: web.Application, compiled: Compiled, events: list[New]) -> None:
    """Count what was recorded, and wake the relay."""
    if not events:
        return
    for event in events:
        app[METRICS].events_recorded.labels(compiled.route.name, event.type).inc()
    if EVENTS_READY in app:
        app[EVENTS_READY].set()


async def record(app: web.Application, compiled: Compiled, events: list[New]) -> None:
    """Record events on their own, for a write that has no outbox record to share a transaction
    with (a rung that writes one side). The write has happened: if the store fails now, the
    consumer is still answered, and the loss is logged and counted."""
    if not events:
        return
    cutover = app[CUTOVER]
    try:
        await cutover.commits.run(app[EVENT_LOG].record_in, events)
    except Exception as exc:
        app[METRICS].events_unrecorded.labels(compiled.route.name).inc(len(events))
        log.error("events of %s not recorded (%s): %s", compiled.route.name, ", ".join(e.event_id for e in events), exc)
        return
    recorded(app, compiled, events)


def settle_and_record_many(cursor: Any, calls: list[tuple[Any, ...]]) -> list[None]:
    """`settle_and_record` for many writes of one outbox at once (the group commit's batch): their
    settlements in one call of the outbox's, then their events."""
    outbox, event_log = calls[0][0], calls[0][1]
    if any(call[0] is not outbox or call[1] is not event_log for call in calls):
        raise ValueError("settlements of different stores are not made together")
    outbox.settle_many_in(cursor, [call[2:6] for call in calls])
    event_log.record_in(cursor, [event for call in calls if call[3] == "pending" for event in call[6]])
    return [None] * len(calls)


@merged(settle_and_record_many)
def settle_and_record(
    cursor: Any,
    outbox: Outbox,
    event_log: EventLog,
    message_id: int,
    outcome: str,
    served: Any,
    error: str,
    events: list[New],
) -> None:
    """The outbox settlement of a write and its events, in one transaction."""
    outbox.settle_in(cursor, message_id, outcome, served, error)
    if outcome == "pending":
        event_log.record_in(cursor, events)
