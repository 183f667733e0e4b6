"""Process instances in the shared store: one row an instance, leased by the gateway running it, and
one row a call it made (a step's call, per entity when the step fans out, each compensation and
check), recorded with its answer before the instance goes on.

    running ──► completed | refused | failed
       │  └──► compensating ──► compensated | failed
       └──► in_doubt (a call whose outcome nobody can know: a person decides)

Writes take the functions ending in `_in` through the store's group commit (many instances share a
transaction); reads are plain. A lease that runs out (its gateway stopped) lets any gateway of the
fleet take the instance over (`take_over`, compare-and-set), and resume it from its recorded calls.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cutover.store import Store, now_iso
from events.log import EventLog, New

OPEN = ("running", "compensating")
ENDED = ("completed", "refused", "failed", "compensated", "in_doubt", "discarded")
_INSTANCE = (
    "id, process, entity, consumer, state, request, result, status, reason, correlation_id, traceparent, "
    "lease_until, attempts, created, at, updated_at"
)
_CALL = "instance_id, call, step, route, entity, state, status, answer, served_by, reason, started, finished"


@dataclass(frozen=True)
class Instance:
    id: str
    process: str
    entity: str
    consumer: str
    state: str
    request: Any
    result: Any
    status: int | None
    reason: str
    correlation_id: str
    traceparent: str | None
    lease_until: float
    attempts: int
    created: float
    at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "process": self.process,
            "entity": self.entity,
            "consumer": self.consumer,
            "state": self.state,
            "status": self.status,
            "reason": self.reason,
            "result": self.result,
            "correlation_id": self.correlation_id,
            "attempts": self.attempts,
            "started": self.at,
            "created": self.created,
            "updated": self.updated_at,
        }


@dataclass(frozen=True)
class CallRow:
    instance_id: str
    call: str  # the step's name; NAME[ENTITY] for a fanned-out one; undo:NAME for a compensation
    step: str
    route: str
    entity: str
    state: str  # done, refused, failed, in_doubt, skipped, waiting
    status: int | None
    answer: Any
    served_by: str | None
    reason: str
    started: float
    finished: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "step": self.step,
            "route": self.route,
            "entity": self.entity,
            "state": self.state,
            "status": self.status,
            "served_by": self.served_by,
            "reason": self.reason,
            "started": self.started,
            "seconds": None if self.finished is None else round(self.finished - self.started, 4),
        }


def _instance(row: Any) -> Instance:
    values = list(row)
    values[5] = json.loads(values[5])
    values[6] = None if values[6] is None else json.loads(values[6])
    return Instance(*values)


def _call(row: Any) -> CallRow:
    values = list(row)
    values[7] = None if values[7] is None else json.loads(values[7])
    return CallRow(*values)


class Book:
    def __init__(self, store: Store, events: EventLog | None = None) -> None:
        self.store = store
        self.events = events or EventLog(store)

    # -- writes, each joining the caller's transaction ---------------------------------------------
    def start_in(
        self,
        cursor: Any,
        process: str,
        entity: str,
        consumer: str,
        request: Any,
        correlation_id: str,
        traceparent: str | None,
        lease_until: float,
    ) -> str:
        instance_id = uuid.uuid4().hex
        stamp = now_iso()
        self.store.execute(
            cursor,
            "INSERT INTO process_instances (id, process, entity, consumer, state, request, correlation_id, "
            "traceparent, lease_until, created, at, updated_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (
                instance_id,
                process,
                entity,
                consumer,
                json.dumps(request),
                correlation_id,
                traceparent,
                lease_until,
                time.time(),
                stamp,
                stamp,
            ),
        )
        return instance_id

    def answered_in(
        self,
        cursor: Any,
        instance_id: str,
        call: str,
        step: str,
        route: str,
        entity: str,
        settled: tuple[str, int | None, Any, str | None, str],
        started: float,
        events: list[New],
        lease_until: float,
    ) -> bool:
        """A call recorded with its answer, its events (once: only the first record of the call keeps
        them) and the instance's lease renewed, together; False when it was recorded already."""
        state, status, answer, served_by, reason = settled
        changed = self.store.execute(
            cursor,
            "INSERT INTO process_steps (instance_id, call, step, route, entity, state, status, answer, served_by, "
            "reason, started, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (instance_id, call) DO NOTHING",
            (
                instance_id,
                call,
                step,
                route,
                entity,
                state,
                status,
                json.dumps(answer),
                served_by,
                reason,
                started,
                time.time(),
            ),
        ).rowcount
        if changed == 1 and events:
            self.events.record_in(cursor, events)
        self.store.execute(
            cursor,
            "UPDATE process_instances SET lease_until = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (lease_until, now_iso(), instance_id, *OPEN),
        )
        return bool(changed == 1)

    def wait_in(self, cursor: Any, instance_id: str, call: str, event: str, lease_until: float) -> None:
        """A wait begun (its start is when its timeout counts from, on any gateway that resumes it)."""
        self.store.execute(
            cursor,
            "INSERT INTO process_steps (instance_id, call, step, route, entity, state, started) "
            "VALUES (?, ?, ?, ?, '', 'waiting', ?) ON CONFLICT (instance_id, call) DO NOTHING",
            (instance_id, call, call, event, time.time()),
        )
        self.store.execute(
            cursor,
            "UPDATE process_instances SET lease_until = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (lease_until, now_iso(), instance_id, *OPEN),
        )

    def waited_in(
        self, cursor: Any, instance_id: str, call: str, state: str, answer: Any, entity: str, reason: str
    ) -> bool:
        """A wait's end: the event came (done, with its data), or the time ran out (failed)."""
        changed = self.store.execute(
            cursor,
            "UPDATE process_steps SET state = ?, answer = ?, entity = ?, reason = ?, finished = ? "
            "WHERE instance_id = ? AND call = ? AND state = 'waiting'",
            (state, json.dumps(answer), entity, reason, time.time(), instance_id, call),
        ).rowcount
        return bool(changed == 1)

    def event_since(self, event_type: str, subject: str | None, since: float) -> tuple[Any, str] | None:
        """The first event of a type (about `subject`) recorded since `since`: its data and entity."""
        query = "SELECT body, entity FROM cutover_events WHERE type = ? AND created >= ?"
        params: list[Any] = [event_type, since]
        if subject is not None:
            query += " AND subject = ?"
            params.append(subject)
        with self.store.reading() as cursor:
            row = self.store.execute(cursor, query + " ORDER BY id LIMIT 1", tuple(params)).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        return (body.get("data") if isinstance(body, dict) else body), row[1]

    def skip_in(self, cursor: Any, instance_id: str, call: str, step: str, route: str, reason: str) -> None:
        now = time.time()
        self.store.execute(
            cursor,
            "INSERT INTO process_steps (instance_id, call, step, route, entity, state, reason, started, finished) "
            "VALUES (?, ?, ?, ?, '', 'skipped', ?, ?, ?) ON CONFLICT (instance_id, call) DO NOTHING",
            (instance_id, call, step, route, reason, now, now),
        )

    def mark_in(self, cursor: Any, instance_id: str, state: str, reason: str = "") -> None:
        """An open instance moves on (compensating), keeping its lease."""
        self.store.execute(
            cursor,
            "UPDATE process_instances SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (state, reason, now_iso(), instance_id, *OPEN),
        )

    def finish_in(
        self,
        cursor: Any,
        instance_id: str,
        state: str,
        status: int,
        result: Any,
        reason: str,
        entity: str | None,
        events: list[New],
    ) -> bool:
        changed = self.store.execute(
            cursor,
            "UPDATE process_instances SET state = ?, status = ?, result = ?, reason = ?, lease_until = 0, "
            "entity = COALESCE(?, entity), updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (state, status, json.dumps(result), reason, entity, now_iso(), instance_id, *OPEN),
        ).rowcount
        if changed == 1 and events:
            self.events.record_in(cursor, events)
        return bool(changed == 1)

    def settle_by_hand(self, instance_id: str, state: str, actor: str, note: str) -> bool:
        """A failed, taken back or doubtful instance closed by a person who looked at the systems: `completed`
        (it went through after all, or they finished it) or `discarded`; False when it was not open
        to that (someone else closed it first)."""
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE process_instances SET state = ?, reason = ?, updated_at = ? "
                "WHERE id = ? AND state IN ('failed', 'compensated', 'in_doubt')",
                (state, f"{state} by {actor}: {note}".strip(": "), now_iso(), instance_id),
            ).rowcount
        return bool(changed == 1)

    # -- leases ---------------------------------------------------------------------------------
    def renew(self, instance_id: str, lease_until: float) -> bool:
        """Keep an instance's lease while a call takes long; False when it ran out (stop: another
        gateway may have taken it over)."""
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE process_instances SET lease_until = ? WHERE id = ? AND lease_until > ? AND state IN (?, ?)",
                (lease_until, instance_id, time.time(), *OPEN),
            ).rowcount
        return bool(changed == 1)

    def stale(self, limit: int = 50, now: float | None = None) -> list[str]:
        """Open instances whose gateway's lease ran out, oldest first."""
        moment = time.time() if now is None else now
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT id FROM process_instances WHERE state IN (?, ?) AND lease_until < ? ORDER BY created LIMIT ?",
                (*OPEN, moment, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def take_over(self, instance_id: str, lease_until: float, now: float | None = None) -> bool:
        """Lease an instance whose lease ran out; False when another gateway took it first."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE process_instances SET lease_until = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND lease_until < ? AND state IN (?, ?)",
                (lease_until, now_iso(), instance_id, moment, *OPEN),
            ).rowcount
        return bool(changed == 1)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Instance | None:
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor, f"SELECT {_INSTANCE} FROM process_instances WHERE id = ?", (instance_id,)
            ).fetchone()
        return None if row is None else _instance(row)

    def calls(self, instance_id: str) -> list[CallRow]:
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {_CALL} FROM process_steps WHERE instance_id = ? ORDER BY started, call",
                (instance_id,),
            ).fetchall()
        return [_call(row) for row in rows]

    def page(self, process: str | None = None, state: str | None = None, limit: int = 50) -> list[Instance]:
        where, params = [], []
        if process:
            where.append("process = ?")
            params.append(process)
        if state:
            where.append("state = ?")
            params.append(state)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {_INSTANCE} FROM process_instances {clause}ORDER BY created DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_instance(row) for row in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, "SELECT process, state, COUNT(*) FROM process_instances GROUP BY process, state"
            ).fetchall()
        return {(process, state): int(count) for process, state, count in rows}
