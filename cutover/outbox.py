"""The durable outbox: writes owed to the side that is not serving, in the shared store.

A write in dual_write, canary or cloud_primary reaches both sides, but the consumer waits only for
the serving side. The other side's copy must not be lost when that side is down or the gateway
dies, so it goes through here:

    intent ──(serving call succeeded)──► pending ──(made)──► delivered
       │                                   │  ▲
       │                                   ▼  │ (not made: retry with backoff; a pause the side
       │                                   │  │  asked for, or refused credentials: wait, no attempt)
       │                                 failed attempt ──(N attempts)──► dead
       │                                   ├──(the side refused the values)──► dead
       │                                   └──(sent, outcome unknown)──► in_doubt
       ├──(serving side refused it)──► cancelled
       └──(no outcome: timeout, or the gateway died)──► in_doubt

The intent is recorded before the serving call and completed after it; the consumer's answer is
sent only once that is recorded. A worker claims due messages with a lease (so two gateways never
deliver the same message at once), a business key's messages one at a time and in order: each key
with unfinished writes has one row in `cutover_outbox_heads` naming the write that goes next, so
finding what is due costs one row per key, however long a hot key's backlog. The worker
delivers with an idempotency key derived once, at intent, from the consumer's Idempotency-Key or
the request — a redelivery after a crash carries the same key. In-doubt and dead messages wait
for a person: `replay` makes them pending again, `discard` closes them; both are audited.

A write on an `async` route is the serving side's own write, not a copy (kind `accepted`): the
consumer got 202 and a status URL when it was recorded, and it starts pending. Made, it keeps the
side's answer for the status URL (and on a rung that writes both sides, owes the other side its
copy); refused, it is cancelled with the refusal; unanswered in time, it is in doubt.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cutover.commits import merged
from cutover.store import Store, now_iso, where_equal

STATES = ("intent", "pending", "delivered", "cancelled", "in_doubt", "dead", "discarded")
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 0.5  # doubled per attempt, with jitter, up to BACKOFF_CAP
BACKOFF_CAP = 300.0
LEASE_SECONDS = 30.0
KEEP_FINISHED_SECONDS = 7 * 86400.0  # delivered, cancelled and discarded messages, for a week of look-back
T = TypeVar("T")


class OutboxError(ValueError):
    """A request about the outbox that cannot be done; nothing was changed."""


@dataclass(frozen=True)
class Message:
    id: int
    created: float
    at: str
    route: str
    entity: str
    business_key: str | None
    side: str
    rung: str
    call: dict[str, Any]
    idempotency_key: str
    state: str
    attempts: int
    next_at: float
    last_error: str
    served: Any
    kind: str = "copy"  # or `accepted`: the serving side's own write, accepted with 202 and made here

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "route": self.route,
            "entity": self.entity,
            "key": self.business_key,
            "side": self.side,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
        }


_COLUMNS = (
    "id, created, at, route, entity, business_key, side, rung, call, idempotency_key, state, attempts, "
    "next_at, last_error, served, kind"
)


# an earlier write for the same business key in one of these states holds the later ones back, so
# the other side sees a key's writes in the order their intents were recorded
_UNFINISHED = "('intent', 'pending', 'in_doubt', 'dead')"
# PostgreSQL does each of the request path's and the worker's writes for a whole batch of messages in
# one statement, their values passed as arrays (unnest zips them into rows, in order).
_COPY_COLUMNS = "route, entity, business_key, side, rung, call, idempotency_key, state, served, kind, token"
# The copies, in the order given (their ids ascending in that order), and each key's queue head when
# the key had none: the first copy of a key in the statement heads it, the others' inserts do nothing.
_INSERT_MANY = (
    f"WITH v AS (SELECT * FROM unnest({', '.join(['?::text[]'] * 11)}) WITH ORDINALITY AS v({_COPY_COLUMNS}, n)), "
    f"m AS (INSERT INTO cutover_outbox (created, at, {_COPY_COLUMNS}, next_at, updated_at) "
    f"SELECT ?::float8, ?::text, {_COPY_COLUMNS}, ?::float8, ?::text FROM v ORDER BY n "
    "RETURNING id, route, entity, business_key), "
    "h AS (INSERT INTO cutover_outbox_heads (head, route, entity, business_key) "
    "SELECT id, route, entity, business_key FROM m ORDER BY id ON CONFLICT (route, entity, business_key) DO NOTHING) "
    "SELECT id FROM m ORDER BY id"
)
_SETTLE_MANY = (
    "UPDATE cutover_outbox AS o SET state = v.state, served = v.served, last_error = v.error, next_at = ?, "
    "updated_at = ? FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[]) AS v(id, state, served, error) "
    "WHERE o.id = v.id AND o.state = 'intent' RETURNING o.id, o.route, o.entity, o.business_key, o.state"
)
# Delivered, and each one's queue gone when its key has no later unfinished write (the usual case):
# the subquery reads the snapshot from before the update, where a delivered message is still
# unfinished, so it is left out by id. Returns the delivered whose keys have later writes waiting.
_DELIVERED_MANY = (
    "WITH done AS (UPDATE cutover_outbox SET state = 'delivered', attempts = attempts + 1, lease_until = 0, "
    "last_error = '', updated_at = ? WHERE id = ANY(?::bigint[]) AND state = 'pending' "
    "RETURNING id, route, entity, business_key), "
    "gone AS (DELETE FROM cutover_outbox_heads AS h USING done AS d WHERE h.head = d.id AND (d.business_key IS NULL "
    "OR NOT EXISTS (SELECT 1 FROM cutover_outbox AS o WHERE o.route = d.route AND o.entity = d.entity "
    f"AND o.business_key = d.business_key AND o.state IN {_UNFINISHED} AND o.id <> d.id)) RETURNING h.head) "
    "SELECT id, route, entity, business_key FROM done "
    "WHERE business_key IS NOT NULL AND id NOT IN (SELECT head FROM gone)"
)


# What is due, read from the queue heads in order, one message looked up by id per head. Both
# planners would rather walk every pending message and sort them (with a surge's backlog of 8,400
# pending copies, PostgreSQL took 20 ms a claim instead of 0.1): SQLite keeps a CROSS JOIN's order,
# and PostgreSQL does not pull up a LATERAL subquery with an OFFSET.
# An accepted write still leased is being made, or was when its gateway died: never due again (every
# outcome sets lease_until back to 0), `recover` puts it in doubt once its lease has run out.
_PENDING_HEAD = (
    "o.id = h.head AND o.state = 'pending' AND o.next_at <= ? AND o.lease_until <= ? "
    "AND (o.kind <> 'accepted' OR o.lease_until = 0)"
)
_DUE = {
    "sqlite": f"SELECT {', '.join(f'o.{name.strip()}' for name in _COLUMNS.split(','))} "
    f"FROM cutover_outbox_heads AS h CROSS JOIN cutover_outbox AS o WHERE {_PENDING_HEAD} "
    "ORDER BY h.head LIMIT {limit}",
    "postgres": f"SELECT o.* FROM cutover_outbox_heads AS h CROSS JOIN LATERAL (SELECT {_COLUMNS} "
    f"FROM cutover_outbox AS o WHERE {_PENDING_HEAD} OFFSET 0) AS o ORDER BY h.head LIMIT {{limit}}",
}


def _message(row: Any) -> Message:
    values = list(row)
    values[8] = json.loads(values[8])
    values[14] = json.loads(values[14]) if values[14] is not None else None
    return Message(*values)


def _row(
    route: str,
    entity: str,
    key: str | None,
    side: str,
    rung: str,
    call: dict[str, Any],
    idempotency: str,
    state: str = "intent",
    served: Any = None,
    kind: str = "copy",
    token: str | None = None,
) -> tuple[Any, ...]:
    """A message for `side` (by default a copy it is owed, recorded before the serving call), as a row
    of `_COPY_COLUMNS`."""
    recorded = json.dumps(served) if served is not None else None
    return (route, entity, key, side, rung, json.dumps(call), idempotency, state, recorded, kind, token)


def _settlement(message_id: int, outcome: str, served: Any = None, error: str = "") -> tuple[Any, ...]:
    if outcome not in ("pending", "cancelled", "in_doubt"):
        raise ValueError(outcome)
    return message_id, outcome, json.dumps(served) if served is not None else None, error


def idempotency_key(route: str, entity: str, given: str | None, correlation_id: str) -> str:
    """The key the other side sees: stable for the consumer's own key, unique per request otherwise."""
    basis = f"{route}\x00{entity}\x00{given}" if given else f"{route}\x00{entity}\x00{correlation_id}"
    return "banyan-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


class Outbox:
    """The outbox's operations. Each write comes twice: `name(…)` commits in a transaction of its own,
    and `name_in(cursor, …)` joins a caller's transaction — the gateway's group commit, which takes
    the writes of many requests at once."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _once(self, operation: Callable[..., T], *args: Any) -> T:
        with self.store.transaction() as cursor:
            return operation(cursor, *args)

    # -- the request path -----------------------------------------------------------------------
    def intend(
        self, route: str, entity: str, key: str | None, side: str, rung: str, call: dict[str, Any], idempotency: str
    ) -> int:
        """Record a write owed to `side` before the serving call is made."""
        return self._once(self.intend_in, route, entity, key, side, rung, call, idempotency)

    def intend_many_in(self, cursor: Any, calls: list[tuple[Any, ...]]) -> list[int]:
        """`intend_in` for the copies of many writes at once (the group commit's): their ids, in order."""
        return self._insert(cursor, [_row(*call) for call in calls])

    @merged(intend_many_in)
    def intend_in(
        self,
        cursor: Any,
        route: str,
        entity: str,
        key: str | None,
        side: str,
        rung: str,
        call: dict[str, Any],
        idempotency: str,
        state: str = "intent",
        served: Any = None,
    ) -> int:
        return self._insert(cursor, [_row(route, entity, key, side, rung, call, idempotency, state, served)])[0]

    def repair_in(
        self,
        cursor: Any,
        route: str,
        entity: str,
        key: str | None,
        side: str,
        rung: str,
        call: dict[str, Any],
        idempotency: str,
    ) -> int:
        """A record a reconciliation found `side` lacks (or holds differently), owed to it now: made
        by the worker like a copy, with no served answer to compare it with (reconcile/repair.py)."""
        return self._insert(
            cursor, [_row(route, entity, key, side, rung, call, idempotency, "pending", None, "repair")]
        )[0]

    def accept_in(
        self,
        cursor: Any,
        route: str,
        entity: str,
        key: str | None,
        side: str,
        rung: str,
        call: dict[str, Any],
        idempotency: str,
        token: str,
    ) -> int:
        """Record a write accepted with 202: the serving side's own write, to be made by the worker.
        `token` is the secret its status URL carries."""
        accepted = _row(route, entity, key, side, rung, call, idempotency, "pending", None, "accepted", token)
        return self._insert(cursor, [accepted])[0]

    def _insert(self, cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        """New messages (each row in the order of `_COPY_COLUMNS`), their ids in the order given; the
        first unfinished write of a key heads the key's queue, a write without a key its own."""
        stamp, moment = now_iso(), time.time()
        if self.store.engine == "postgres":  # one round trip for them all
            columns = [list(column) for column in zip(*rows, strict=True)]
            found = self.store.execute(cursor, _INSERT_MANY, (*columns, moment, stamp, moment, stamp)).fetchall()
            return [int(row[0]) for row in found]
        ids = []
        for row in rows:
            message_id = int(
                self.store.execute(
                    cursor,
                    f"INSERT INTO cutover_outbox (created, at, {_COPY_COLUMNS}, next_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (moment, stamp, *row, moment, stamp),
                ).fetchone()[0]
            )
            self.store.execute(
                cursor,
                "INSERT INTO cutover_outbox_heads (head, route, entity, business_key) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (route, entity, business_key) DO NOTHING",
                (message_id, row[0], row[1], row[2]),
            )
            ids.append(message_id)
        return ids

    def settle(self, message_id: int, outcome: str, served: Any = None, error: str = "") -> None:
        """After the serving call: `pending` (deliver it), `cancelled` (refused) or `in_doubt` (unknown)."""
        self._once(self.settle_in, message_id, outcome, served, error)

    def settle_many_in(self, cursor: Any, calls: list[tuple[Any, ...]]) -> list[None]:
        """`settle_in` for many writes at once: each call (message_id, outcome[, served[, error]])."""
        settles = [_settlement(*call) for call in calls]
        if self.store.engine == "postgres":
            columns = [list(column) for column in zip(*settles, strict=True)]
            rows = self.store.execute(cursor, _SETTLE_MANY, (time.time(), now_iso(), *columns)).fetchall()
        else:
            rows = []
            for message_id, outcome, served, error in settles:
                row = self.store.execute(
                    cursor,
                    "UPDATE cutover_outbox SET state = ?, served = ?, last_error = ?, next_at = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'intent' RETURNING id, route, entity, business_key, state",
                    (outcome, served, error, time.time(), now_iso(), message_id),
                ).fetchone()
                rows += [row] if row is not None else []
        for message_id, route, entity, key, state in rows:
            if state == "cancelled":
                self._advance(cursor, message_id, route, entity, key)
        return [None] * len(calls)

    @merged(settle_many_in)
    def settle_in(self, cursor: Any, message_id: int, outcome: str, served: Any = None, error: str = "") -> None:
        self.settle_many_in(cursor, [(message_id, outcome, served, error)])

    def _advance(
        self, cursor: Any, finished: int, route: str, entity: str, key: str | None, later: bool = False
    ) -> None:
        """`finished` will never be delivered again: its key's next unfinished write heads the queue,
        or the key's queue goes when it has none (the usual case, tried first: one statement).
        `later`: the key is known to have later writes, so the queue stays and only its head moves."""
        if key is None:
            self.store.execute(cursor, "DELETE FROM cutover_outbox_heads WHERE head = ?", (finished,))
            return
        of_key = f"FROM cutover_outbox WHERE route = ? AND entity = ? AND business_key = ? AND state IN {_UNFINISHED}"
        gone = (
            not later
            and self.store.execute(
                cursor,
                f"DELETE FROM cutover_outbox_heads WHERE head = ? AND NOT EXISTS (SELECT 1 {of_key})",
                (finished, route, entity, key),
            ).rowcount
        )
        if not gone:
            self.store.execute(
                cursor,
                f"UPDATE cutover_outbox_heads SET head = (SELECT MIN(id) {of_key}) WHERE head = ?",
                (route, entity, key, finished),
            )

    # -- the worker -----------------------------------------------------------------------------
    def due(self, limit: int = 20, now: float | None = None) -> list[Message]:
        """Messages that may be delivered now: the pending head of each key's queue. Only reads, so
        request-path writes never wait on it; read from the heads in order, never from the backlog."""
        moment = time.time() if now is None else now
        with self.store.reading() as cursor:
            rows = self.store.execute(cursor, _DUE[self.store.engine].format(limit=int(limit)), (moment, moment))
            return [_message(row) for row in rows.fetchall()]

    def lease_in(
        self,
        cursor: Any,
        owner: str,
        messages: list[Message],
        now: float | None = None,
        lease: float = LEASE_SECONDS,
    ) -> list[Message]:
        """Lease `messages` (from `due`) to `owner` for `lease` seconds, in one statement; those
        another worker leased meanwhile are left out."""
        if not messages:
            return []
        moment = time.time() if now is None else now
        marks = ", ".join("?" * len(messages))
        rows = self.store.execute(
            cursor,
            f"UPDATE cutover_outbox SET lease_until = ? WHERE id IN ({marks}) AND state = 'pending' "
            "AND lease_until <= ? RETURNING id",
            (moment + lease, *(message.id for message in messages), moment),
        ).fetchall()
        taken = {int(row[0]) for row in rows}
        return [message for message in messages if message.id in taken]

    def claim(self, owner: str, limit: int = 20, now: float | None = None) -> list[Message]:
        """Due messages, leased to `owner` so no other worker delivers them meanwhile."""
        return self._once(self.lease_in, owner, self.due(limit, now), now)

    def delivered(self, message_id: int) -> None:
        self._once(self.delivered_in, message_id)

    def delivered_many_in(self, cursor: Any, calls: list[tuple[int]]) -> list[None]:
        """`delivered_in` for many messages at once: each call (message_id,)."""
        ids = [int(message_id) for (message_id,) in calls]
        if self.store.engine == "postgres":  # the usual case in one round trip: delivered, and their keys' queues gone
            waiting = self.store.execute(cursor, _DELIVERED_MANY, (now_iso(), ids)).fetchall()
            for message_id, route, entity, key in waiting:  # the key has later writes: the next heads it
                self._advance(cursor, message_id, route, entity, key, later=True)
            return [None] * len(calls)
        for message_id in ids:
            row = self.store.execute(
                cursor,
                "UPDATE cutover_outbox SET state = 'delivered', attempts = attempts + 1, lease_until = 0, "
                "last_error = '', updated_at = ? WHERE id = ? AND state = 'pending' "
                "RETURNING route, entity, business_key",
                (now_iso(), message_id),
            ).fetchone()
            if row is not None:
                self._advance(cursor, message_id, *row)
        return [None] * len(calls)

    @merged(delivered_many_in)
    def delivered_in(self, cursor: Any, message_id: int) -> None:
        self.delivered_many_in(cursor, [(message_id,)])

    def lease_run_in(self, cursor: Any, message: Message, longest: int, now: float | None = None) -> list[Message]:
        """The writes of `message`'s key that come right after it (a leased head), leased in their
        order: up to `longest`, as far as they are pending and due. The first that is not (an intent
        whose serving call has not answered, a copy waiting out its backoff) ends the run, so a run
        is always the next writes of the key, with none skipped. Delivered in order after the head,
        they need no claim of their own."""
        if message.business_key is None or longest < 1:
            return []
        moment = time.time() if now is None else now
        rows = self.store.execute(
            cursor,
            "SELECT id, state, next_at, lease_until, kind FROM cutover_outbox WHERE route = ? AND entity = ? "
            f"AND business_key = ? AND state IN {_UNFINISHED} AND id > ? ORDER BY id LIMIT {int(longest)}",
            (message.route, message.entity, message.business_key, message.id),
        ).fetchall()
        ready = lambda r: r[1] == "pending" and r[2] <= moment and r[3] <= moment and r[4] == "copy"  # noqa: E731
        run = list(itertools.takewhile(ready, rows))
        if not run:
            return []
        marks = ", ".join("?" * len(run))
        leased = self.store.execute(
            cursor,
            f"UPDATE cutover_outbox SET lease_until = ? WHERE id IN ({marks}) AND state = 'pending' "
            f"AND lease_until <= ? RETURNING {_COLUMNS}",
            (moment + LEASE_SECONDS, *(int(r[0]) for r in run), moment),
        ).fetchall()
        by_id = {int(row[0]): _message(row) for row in leased}
        # another worker took one meanwhile: the run ends before it
        taken = []
        for row in run:
            if int(row[0]) not in by_id:
                break
            taken.append(by_id[int(row[0])])
        return taken

    def release_in(self, cursor: Any, messages: list[Message]) -> None:
        """Leases given back: these were not delivered, and may be claimed again at once."""
        if messages:
            marks = ", ".join("?" * len(messages))
            self.store.execute(
                cursor,
                f"UPDATE cutover_outbox SET lease_until = 0 WHERE id IN ({marks}) AND state = 'pending'",
                tuple(m.id for m in messages),
            )

    def answered_in(self, cursor: Any, message: Message, answer: Any, then: str | None) -> None:
        """An accepted write was made: keep the side's answer for its status URL and, when the rung
        writes both sides, owe the other side its copy (pending at once: the serving side took it)."""
        self.store.execute(
            cursor,
            "UPDATE cutover_outbox SET served = ? WHERE id = ? AND state = 'pending'",
            (json.dumps(answer), message.id),
        )
        self.delivered_in(cursor, message.id)
        if then is not None:
            self.intend_in(
                cursor,
                message.route,
                message.entity,
                message.business_key,
                then,
                message.rung,
                message.call,
                message.idempotency_key,
                "pending",
                answer,
            )

    def refused_in(self, cursor: Any, message: Message, problem: dict[str, Any]) -> None:
        """An accepted write the side refused (a 4xx): closed, with the refusal for its status URL."""
        self._finish_in(cursor, message, "cancelled", {"problem": problem}, str(problem.get("detail", "")))

    def doubted_in(self, cursor: Any, message: Message, error: str) -> None:
        """An accepted write whose outcome is unknown (no answer in time): never sent blindly again."""
        self._finish_in(cursor, message, "in_doubt", None, error)

    def _finish_in(self, cursor: Any, message: Message, state: str, served: Any, error: str) -> None:
        row = self.store.execute(
            cursor,
            "UPDATE cutover_outbox SET state = ?, served = ?, attempts = attempts + 1, lease_until = 0, "
            "last_error = ?, updated_at = ? WHERE id = ? AND state = 'pending' RETURNING route, entity, business_key",
            (state, json.dumps(served) if served is not None else None, error[:500], now_iso(), message.id),
        ).fetchone()
        if row is not None and state == "cancelled":
            self._advance(cursor, message.id, *row)

    def postpone_in(self, cursor: Any, message_id: int, until: float, error: str | None = None) -> None:
        """Try again at `until` without counting an attempt: the side is known to be down (its
        breaker is open) or asked for a pause, so no call was made; or it refused the gateway's
        credentials, which no number of attempts mends (`error` says so, for the operators)."""
        sql, values = "", [until, now_iso(), message_id]
        if error is not None:
            sql, values = ", last_error = ?", [until, error[:500], now_iso(), message_id]
        self.store.execute(
            cursor,
            f"UPDATE cutover_outbox SET next_at = ?{sql}, lease_until = 0, updated_at = ? WHERE id = ? "
            "AND state = 'pending'",
            tuple(values),
        )

    def wake_in(self, cursor: Any, route: str, entity: str, side: str) -> None:
        """Make the copies owed to `side` for route × entity due now: they were held back (the
        guardrail paused them) and are let go."""
        self.store.execute(
            cursor,
            "UPDATE cutover_outbox SET next_at = ?, lease_until = 0, updated_at = ? WHERE route = ? AND entity = ? "
            "AND side = ? AND kind = 'copy' AND state = 'pending'",
            (time.time(), now_iso(), route, entity, side),
        )

    def failed(self, message: Message, error: str, max_attempts: int | None = None) -> str:
        """Count a failed attempt; the message waits with backoff, or is dead after the last attempt."""
        return self._once(self.failed_in, message, error, max_attempts)

    def failed_in(self, cursor: Any, message: Message, error: str, max_attempts: int | None = None) -> str:
        attempts = message.attempts + 1
        max_attempts = MAX_ATTEMPTS if max_attempts is None else max_attempts
        state = "dead" if attempts >= max_attempts else "pending"  # a dead message still holds its key back
        wait = min(BACKOFF_CAP, BACKOFF_SECONDS * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        self.store.execute(
            cursor,
            "UPDATE cutover_outbox SET state = ?, attempts = ?, next_at = ?, lease_until = 0, last_error = ?, "
            "updated_at = ? WHERE id = ? AND state = 'pending'",
            (state, attempts, time.time() + wait, error[:500], now_iso(), message.id),
        )
        return state

    def recover(self, older_than: float = 60.0, now: float | None = None) -> int:
        """Writes left without an outcome become in-doubt: never dropped, never retried blindly.
        Intents whose serving call never settled (the gateway died mid-call), and accepted writes
        whose delivery lease ran out unsettled (the gateway died while making them: the side may have
        booked them, and a side need not honour the Idempotency-Key they carry). Returns how many."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            intents = self.store.execute(
                cursor,
                "UPDATE cutover_outbox SET state = 'in_doubt', last_error = ?, updated_at = ? "
                "WHERE state = 'intent' AND created < ?",
                (
                    "the serving call's outcome is unknown (the gateway stopped mid-call)",
                    now_iso(),
                    moment - older_than,
                ),
            ).rowcount
            accepted = self.store.execute(
                cursor,
                "UPDATE cutover_outbox SET state = 'in_doubt', lease_until = 0, last_error = ?, updated_at = ? "
                "WHERE state = 'pending' AND kind = 'accepted' AND lease_until <> 0 AND lease_until < ?",
                ("whether the side booked it is unknown: the gateway stopped while making it", now_iso(), moment),
            ).rowcount
            return int(intents) + int(accepted)

    def repair_heads(self) -> int:
        """Make every queue with unfinished writes have its head, and no head point at a finished write.
        Two PostgreSQL gateways finishing and recording one key's writes at the same instant can miss
        each other's; this, on each tick, bounds that to a delay. Returns the heads it fixed."""
        with self.store.transaction() as cursor:
            stale = self.store.execute(
                cursor,
                "DELETE FROM cutover_outbox_heads WHERE NOT EXISTS (SELECT 1 FROM cutover_outbox AS o "
                f"WHERE o.id = cutover_outbox_heads.head AND o.state IN {_UNFINISHED})",
            ).rowcount
            keyed = self.store.execute(
                cursor,
                "INSERT INTO cutover_outbox_heads (head, route, entity, business_key) "
                "SELECT MIN(id), route, entity, business_key FROM cutover_outbox "
                f"WHERE business_key IS NOT NULL AND state IN {_UNFINISHED} GROUP BY route, entity, business_key "
                "ON CONFLICT (route, entity, business_key) DO NOTHING",
            ).rowcount
            keyless = self.store.execute(
                cursor,
                "INSERT INTO cutover_outbox_heads (head, route, entity, business_key) "
                "SELECT id, route, entity, NULL FROM cutover_outbox AS o "
                f"WHERE business_key IS NULL AND state IN {_UNFINISHED} "
                "AND NOT EXISTS (SELECT 1 FROM cutover_outbox_heads AS h WHERE h.head = o.id)",
            ).rowcount
        return int(stale) + int(keyed) + int(keyless)

    def prune(self, older_than: float = KEEP_FINISHED_SECONDS, now: float | None = None) -> int:
        """Forget finished messages (delivered, cancelled, discarded) older than `older_than` seconds;
        in-doubt and dead ones wait for a person however old they are. Returns how many."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            return int(
                self.store.execute(
                    cursor,
                    "DELETE FROM cutover_outbox WHERE state IN ('delivered', 'cancelled', 'discarded') AND created < ?",
                    (moment - older_than,),
                ).rowcount
            )

    # -- write ownership ------------------------------------------------------------------------
    def owed_sides(self, routes: Sequence[str], entity: str, key: str) -> set[str]:
        """The sides still owed writes of business key `key` by any of `routes`: a side with an
        unfinished write of the key (intent, pending, in doubt or dead) is behind on it, and must not
        serve it until that write has landed or a person has closed it."""
        marks = ", ".join("?" * len(routes))
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT DISTINCT side FROM cutover_outbox WHERE route IN ({marks}) AND entity = ? "
                f"AND business_key = ? AND state IN {_UNFINISHED}",
                (*routes, entity, key),
            ).fetchall()
        return {str(side) for (side,) in rows}

    def backlog(self) -> dict[tuple[str, str, str], tuple[int, float]]:
        """How far each side is behind, per route and entity: (route, entity, side) → the number of
        unfinished writes owed to it and when the oldest was made (epoch seconds)."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT route, entity, side, COUNT(*), MIN(created) FROM cutover_outbox WHERE state IN {_UNFINISHED} "
                "GROUP BY route, entity, side",
            ).fetchall()
        return {
            (str(route), str(entity), str(side)): (int(count), float(oldest))
            for route, entity, side, count, oldest in rows
        }

    # -- people ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self.store.reading() as cursor:
            rows = self.store.execute(cursor, "SELECT state, COUNT(*) FROM cutover_outbox GROUP BY state").fetchall()
        found = {state: int(count) for state, count in rows}
        return {state: found.get(state, 0) for state in STATES}

    def list(self, state: str | None = None, route: str | None = None, limit: int = 100) -> list[Message]:
        if state is not None and state not in STATES:
            raise OutboxError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
        where, params = where_equal(state=state, route=route)
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, f"SELECT {_COLUMNS} FROM cutover_outbox {where} ORDER BY id LIMIT {int(limit)}", params
            ).fetchall()
        return [_message(row) for row in rows]

    def accepted(self, token: str) -> Message | None:
        """The accepted write whose status URL carries `token`."""
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor, f"SELECT {_COLUMNS} FROM cutover_outbox WHERE token = ? AND kind = 'accepted'", (token,)
            ).fetchone()
        return _message(row) if row is not None else None

    def get(self, message_id: int) -> Message:
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor, f"SELECT {_COLUMNS} FROM cutover_outbox WHERE id = ?", (message_id,)
            ).fetchone()
        if row is None:
            raise OutboxError(f"no outbox message {message_id}: `banyan outbox list` shows them")
        return _message(row)

    def replay(self, message_id: int, reason: str, actor: str) -> Message:
        """Deliver an in-doubt or dead message again (with its original idempotency key)."""
        return self._close(message_id, "pending", ("in_doubt", "dead"), reason, actor, "outbox_replay")

    def discard(self, message_id: int, reason: str, actor: str) -> Message:
        """Close an in-doubt or dead message without delivering it."""
        return self._close(message_id, "discarded", ("in_doubt", "dead"), reason, actor, "outbox_discard")

    def _close(self, message_id: int, to: str, allowed: tuple[str, ...], reason: str, actor: str, kind: str) -> Message:
        if not reason.strip():
            raise OutboxError("every outbox action needs a reason")
        message = self.get(message_id)
        if message.state not in allowed:
            raise OutboxError(f"message {message_id} is {message.state}: only {' or '.join(allowed)} messages can be")
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE cutover_outbox SET state = ?, attempts = 0, next_at = ?, lease_until = 0, updated_at = ? "
                "WHERE id = ? AND state = ?",
                (to, time.time(), now_iso(), message_id, message.state),
            ).rowcount
            if changed != 1:
                raise OutboxError(f"message {message_id} changed meanwhile: look again")
            if to == "discarded":
                self._advance(cursor, message_id, message.route, message.entity, message.business_key)
            event = {"kind": kind, "reason": f"message {message_id} ({message.state} → {to}): {reason}"}
            self.store.append_audit(cursor, now_iso(), actor, message.route, message.entity, event)
        return self.get(message_id)
