"""The events the gateway's routes declare, kept in the cutover store until a broker has them.

A route that says `events: [{type: com.acme.order.created, subject: /orderId}]` records one
CloudEvent per successful call in the same transaction as the write's own outcome (the outbox
settlement of a dual write, the answer of an accepted one): a write that happened has its event,
one that did not has none (the transactional outbox). The relay (`events/relay.py`) publishes what
is pending in the order it was recorded and marks it published once the broker has acknowledged
it; a broker that is down loses nothing, the events wait here and `banyan_events_backlog` counts
them. An event keeps its id however often it is published, so consumers drop repeats by id.

    pending ──(broker acknowledged)──► published ──(banyan events replay)──► pending again
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from cutover.store import Store, now_iso

RELAY_LEASE_SECONDS = 10.0  # one relay publishes at a time, fleet-wide: a subject's events stay in order


class EventLogError(ValueError):
    """A request about the event log that cannot be done; nothing was changed."""


@dataclass(frozen=True)
class Recorded:
    """One event as the store keeps it."""

    id: int
    event_id: str
    type: str
    subject: str | None
    body: bytes  # the structured CloudEvent, JSON
    replays: int

    @property
    def message_id(self) -> str:
        """The broker's deduplication id: the event's own, and a new one for each replay (a replay
        must reach consumers that were down, past JetStream's duplicate window)."""
        return self.event_id if not self.replays else f"{self.event_id}#replay-{self.replays}"


def cloud_event(
    event_type: str,
    source: str,
    subject: str | None,
    data: Any,
    entity: str | None,
    correlation_id: str,
    traceparent: str | None = None,
    owner: str | None = None,
) -> tuple[str, bytes]:
    """A new CloudEvent (structured JSON, the CNCF SDK): its id and its body; `owner`, the team
    that answers for the route that made it, is an extension attribute."""
    attributes: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "source": source,
        "type": event_type,
        "specversion": "1.0",
        "time": datetime.now(UTC),
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    if entity:
        attributes["legalentity"] = entity
    if correlation_id:
        attributes["correlationid"] = correlation_id
    if traceparent:
        attributes["traceparent"] = traceparent  # the Distributed Tracing extension
    if owner:
        attributes["owner"] = owner
    event = CloudEvent(attributes, data)
    return str(attributes["id"]), JSONFormat().write(event)


@dataclass(frozen=True)
class New:
    """An event to record: made on the request path, recorded with the write's outcome."""

    event_id: str
    type: str
    subject: str | None
    route: str
    entity: str
    body: bytes


def new_event(
    event_type: str,
    source: str,
    subject: str | None,
    data: Any,
    route: str,
    entity: str | None,
    correlation_id: str,
    traceparent: str | None = None,
    owner: str | None = None,
) -> New:
    event_id, body = cloud_event(event_type, source, subject, data, entity, correlation_id, traceparent, owner)
    return New(event_id, event_type, subject, route, entity or "*", body)


class EventLog:
    """The event log's operations; `name_in(cursor, …)` joins a caller's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record_in(self, cursor: Any, events: list[New]) -> None:
        stamp, moment = now_iso(), time.time()
        for event in events:
            self.store.execute(
                cursor,
                "INSERT INTO cutover_events (created, at, event_id, type, subject, route, entity, body, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    moment,
                    stamp,
                    event.event_id,
                    event.type,
                    event.subject,
                    event.route,
                    event.entity,
                    event.body.decode(),
                ),
            )

    def record(self, events: list[New]) -> None:
        with self.store.transaction() as cursor:
            self.record_in(cursor, events)

    def lead(self, owner: str, now: float | None = None) -> bool:
        """Take or keep the relay's lease; True when `owner` is the one relay that publishes now."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            taken = self.store.execute(
                cursor,
                "UPDATE cutover_event_relay SET owner = ?, lease_until = ? WHERE id = 1 AND "
                "(lease_until < ? OR owner = ?)",
                (owner, moment + RELAY_LEASE_SECONDS, moment, owner),
            ).rowcount
        return bool(taken)

    def pending(self, limit: int = 100) -> list[Recorded]:
        """What waits for the broker, oldest first."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT id, event_id, type, subject, body, replays FROM cutover_events WHERE state = 'pending' "
                f"ORDER BY id LIMIT {int(limit)}",
            ).fetchall()
        return [Recorded(int(r[0]), r[1], r[2], r[3], r[4].encode(), int(r[5])) for r in rows]

    def published(self, ids: list[int]) -> None:
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                f"UPDATE cutover_events SET state = 'published', published_at = ? WHERE id IN ({marks})",
                (now_iso(), *ids),
            )

    def backlog(self) -> int:
        with self.store.reading() as cursor:
            row = self.store.execute(cursor, "SELECT COUNT(*) FROM cutover_events WHERE state = 'pending'").fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """Events per type and state, for `banyan events list`."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, "SELECT type, state, COUNT(*) FROM cutover_events GROUP BY type, state ORDER BY type, state"
            ).fetchall()
        return {f"{event_type} {state}": int(count) for event_type, state, count in rows}

    def replay(self, event_type: str | None, since: str, to: str, actor: str, reason: str) -> int:
        """Publish again the published events of `event_type` (every type when None) recorded from
        `since` to `to` (ISO times, UTC); audited. Returns how many."""
        if not reason.strip():
            raise EventLogError("a replay needs a reason")
        start, end = _instant(since), _instant(to)
        if end <= start:
            raise EventLogError(f"--to ({to}) must come after --since ({since})")
        where = "state = 'published' AND created >= ? AND created < ?"
        params: tuple[Any, ...] = (start, end)
        if event_type:
            where, params = f"{where} AND type = ?", (*params, event_type)
        with self.store.transaction() as cursor:
            count = self.store.execute(
                cursor,
                f"UPDATE cutover_events SET state = 'pending', replays = replays + 1 WHERE {where}",
                params,
            ).rowcount
            told = f"{count} events of {event_type or 'every type'} from {since} to {to}: {reason}"
            self.store.append_audit(
                cursor, now_iso(), actor, "(events)", event_type or "*", {"kind": "events_replay", "reason": told}
            )
        return int(count)


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventLogError(f"{text!r} is not an ISO time (2026-12-01T09:00 or 2026-12-01)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
