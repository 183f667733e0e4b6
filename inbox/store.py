"""The exception inbox in the shared store: one row for each thing a person must act on.

    collectors (inbox/collect.py) ─► Failure (kind, fold, subject, entity, key, source, error …)
        └─► sync: new → opened · seen again → count + 1 · failed again after it was resolved → reopened
                  · no longer failing → resolved by banyan
    people (CLI, admin API, console) ─► change: assign · comment · snooze · resolve · the kind's action

An exception is identified by its kind and its fold (what repeats fold by: the route, entity, key
and side of an outbox message; the flow and name of a file; the reconciliation and entity of a
run), so a cause that repeats is one exception with a count, not a thousand. Its `source` is the
newest row it stands for (outbox:42, file:7, run:12), which its action acts on.

Every change is a compare-and-set on the row's version, with a history row in the same
transaction: of two people (or two gateways) acting on one exception at once, exactly one action
happens, and the other is told who acted, what they did and when. An exception resolved by an
action keeps its history, and a failure after that reopens it. Pruning removes only resolved ones.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cutover.store import Store, now_iso

WORKING_SECONDS = 600.0  # an action whose process died is given up after this long: the exception is open again
_ITEM = (
    "id, kind, fold, subject, entity, business_key, source, error, evidence, state, owner, assignee, "
    "snoozed_until, tier, count, since, created, last_seen, failed, resolved, updated_at, version"
)


@dataclass(frozen=True)
class Failure:
    """One thing a collector found failing."""

    kind: str  # outbox_dead, file_refused, step_down, drift …
    fold: str  # the same kind and fold is one exception
    subject: str  # the route, flow, batch or reconciliation it is about
    entity: str
    key: str | None  # the business key, where there is one
    source: str  # the row it stands for: outbox:42, file:7, run:12
    error: str  # what the system said
    failed: float  # when it failed (seconds since the epoch)
    evidence: dict[str, Any] = field(default_factory=dict)  # links: the call, the file, the run


@dataclass(frozen=True)
class Item:
    """An exception as the inbox holds it."""

    id: int
    kind: str
    fold: str
    subject: str
    entity: str
    key: str | None
    source: str
    error: str
    evidence: dict[str, Any]
    state: str
    owner: str
    assignee: str
    snoozed_until: str | None
    tier: int | None
    count: int
    since: str
    created: float
    last_seen: str
    failed: float
    resolved: float | None
    updated_at: str
    version: int

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "entity": self.entity,
            "key": self.key,
            "source": self.source,
            "error": self.error,
            "evidence": self.evidence,
            "state": self.state,
            "owner": self.owner,
            "assignee": self.assignee,
            "snoozed_until": self.snoozed_until,
            "tier": self.tier,
            "count": self.count,
            "since": self.since,
            "last_seen": self.last_seen,
            "updated_at": self.updated_at,
            "version": self.version,
        }


@dataclass(frozen=True)
class Entry:
    """One line of an exception's history."""

    at: str
    actor: str
    action: str
    note: str
    from_state: str | None
    to_state: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "note": self.note,
            "from": self.from_state,
            "to": self.to_state,
        }


@dataclass
class Synced:
    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    repeated: int = 0
    resolved: int = 0


@dataclass(frozen=True)
class _Row:
    """What a sync needs of an exception: a few columns, so a hundred thousand of them stay small."""

    id: int
    kind: str
    fold: str
    state: str
    source: str
    assignee: str
    failed: float
    resolved: float | None
    version: int


_ROW = "id, kind, fold, state, source, assignee, failed, resolved, version"


def _row(row: Any) -> _Row:
    item_id, kind, fold, state, source, assignee, failed, resolved, version = row
    return _Row(
        int(item_id),
        kind,
        fold,
        state,
        source,
        assignee,
        float(failed),
        None if resolved is None else float(resolved),
        int(version),
    )


class Conflict(Exception):
    """Someone acted on the exception first; the message says who, what and when."""


class InboxError(ValueError):
    """An action the exception does not allow, or one without what it needs."""


def _item(row: Any) -> Item:
    (
        item_id,
        kind,
        fold,
        subject,
        entity,
        key,
        source,
        error,
        evidence,
        state,
        owner,
        assignee,
        snoozed,
        tier,
        count,
        since,
        created,
        last_seen,
        failed,
        resolved,
        updated_at,
        version,
    ) = row
    return Item(
        int(item_id),
        kind,
        fold,
        subject,
        entity,
        key,
        source,
        error,
        json.loads(evidence or "{}"),
        state,
        owner,
        assignee,
        snoozed,
        None if tier is None else int(tier),
        int(count),
        since,
        float(created),
        last_seen,
        float(failed),
        None if resolved is None else float(resolved),
        updated_at,
        int(version),
    )


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- what the collectors found ------------------------------------------------------------
    def sync(self, kinds: Iterable[str], find: Callable[[], list[Failure]], now: float | None = None) -> Synced:
        """The inbox brought in line with what is failing now for `kinds`: each failure opened,
        counted or reopened; each exception of those kinds no longer failing resolved.

        The inbox's rows are read before `find` reads the failures: an exception another gateway
        opened after this sync's read of the failures is then not among the rows it may resolve."""
        moment = time.time() if now is None else now
        kinds = tuple(kinds)
        done = Synced()
        known = {(row.kind, row.fold): row for row in self._rows(kinds)}
        found = find()
        fresh = [failure for failure in found if (failure.kind, failure.fold) not in known]
        for start in range(0, len(fresh), 500):  # a transaction for 500 new ones: an end-of-month surge is quick
            done.opened += self._open(fresh[start : start + 500], moment)
        for failure in found:
            row = known.get((failure.kind, failure.fold))
            if row is None:
                continue
            if row.resolved is None:
                if row.source != failure.source or failure.failed > row.failed:
                    done.repeated += self._repeat(row, failure, None)
            elif failure.failed > row.resolved and self._repeat(row, failure, "reopened"):
                done.reopened.append(row.id)
        failing = {(failure.kind, failure.fold) for failure in found}
        for key, row in known.items():
            if row.resolved is None and key not in failing and row.state != "working":
                done.resolved += self._settle(row, "banyan", "resolved", "no longer failing", moment)
        self._wake(moment)
        return done

    def _rows(self, kinds: tuple[str, ...]) -> list[_Row]:
        """Every exception of `kinds` (the resolved ones too, until they are pruned), in one read."""
        if not kinds:
            return []
        marks = ", ".join("?" * len(kinds))
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, f"SELECT {_ROW} FROM exceptions WHERE kind IN ({marks})", kinds
            ).fetchall()
        return [_row(row) for row in rows]

    def _open(self, failures: list[Failure], moment: float) -> list[int]:
        stamp, opened = now_iso(), []
        with self.store.transaction() as cursor:
            for failure in failures:
                row = self.store.execute(
                    cursor,
                    "INSERT INTO exceptions (kind, fold, subject, entity, business_key, source, error, evidence, "
                    "state, since, created, last_seen, failed, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, "
                    "?, ?, ?, ?) ON CONFLICT (kind, fold) DO NOTHING RETURNING id",
                    (
                        failure.kind,
                        failure.fold,
                        failure.subject,
                        failure.entity,
                        failure.key,
                        failure.source,
                        failure.error[:2000],
                        json.dumps(failure.evidence, default=str),
                        stamp,
                        moment,
                        stamp,
                        failure.failed,
                        stamp,
                    ),
                ).fetchone()
                if row is not None:  # else another gateway opened it a moment ago
                    self._note(cursor, int(row[0]), "banyan", "opened", failure.error[:500], None, "open")
                    opened.append(int(row[0]))
        return opened

    def _repeat(self, row: _Row, failure: Failure, reopened: str | None) -> int:
        state = ("assigned" if row.assignee else "open") if reopened else row.state
        stamp = now_iso()
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE exceptions SET count = count + 1, source = ?, error = ?, evidence = ?, last_seen = ?, "
                "failed = ?, state = ?, resolved = NULL, snoozed_until = NULL, updated_at = ?, version = version + 1 "
                "WHERE id = ? AND version = ?",
                (
                    failure.source,
                    failure.error[:2000],
                    json.dumps(failure.evidence, default=str),
                    stamp,
                    failure.failed,
                    state if reopened else row.state,
                    stamp,
                    row.id,
                    row.version,
                ),
            ).rowcount
            if changed and reopened:
                self._note(cursor, row.id, "banyan", reopened, f"failed again: {failure.error[:400]}", row.state, state)
        return int(changed)

    def _settle(self, row: _Row, actor: str, action: str, note: str, moment: float) -> int:
        stamp = now_iso()
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE exceptions SET state = 'resolved', resolved = ?, updated_at = ?, version = version + 1 "
                "WHERE id = ? AND version = ?",
                (moment, stamp, row.id, row.version),
            ).rowcount
            if changed:
                self._note(cursor, row.id, actor, action, note, row.state, "resolved")
        return int(changed)

    def _wake(self, moment: float) -> None:
        """Snoozes that ran out, and actions whose process died, back in the inbox."""
        stamp = now_iso()
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {_ITEM} FROM exceptions WHERE resolved IS NULL AND ((state = 'snoozed' AND snoozed_until "
                "<= ?) OR (state = 'working' AND updated_at < ?))",
                (stamp, _iso(moment - WORKING_SECONDS)),
            ).fetchall()
        for item in map(_item, rows):
            why = "the snooze ran out" if item.state == "snoozed" else "the action stopped without an outcome"
            with contextlib.suppress(Conflict):  # someone acted on it meanwhile
                self.change(
                    item, "banyan", "woke", why, state="assigned" if item.assignee else "open", snoozed_until=None
                )

    def own(self, owner_of: Any) -> int:
        """Each unresolved exception's owner and tier from `owner_of(subject, entity)` → (team, tier),
        written where they changed (an owner named or moved in the route files)."""
        with self.store.reading() as cursor:
            pairs = self.store.execute(
                cursor, "SELECT DISTINCT subject, entity, owner, tier FROM exceptions WHERE resolved IS NULL"
            ).fetchall()
        changed = 0
        for subject, entity, owner, tier in pairs:
            team, level = owner_of(subject, entity)
            if (team, level) != (owner, tier):
                with self.store.transaction() as cursor:
                    changed += self.store.execute(
                        cursor,
                        "UPDATE exceptions SET owner = ?, tier = ? WHERE resolved IS NULL AND subject = ? "
                        "AND entity = ? AND owner = ?",
                        (team, level, subject, entity, owner),
                    ).rowcount
        return changed

    # -- people ---------------------------------------------------------------------------------
    def change(self, item: Item, actor: str, action: str, note: str = "", **fields: Any) -> Item:
        """One action on one exception, if nobody acted on it since `item` was read; Conflict says
        who did otherwise."""
        columns = {name: value for name, value in fields.items()}
        if columns.get("state") == "resolved":
            columns["resolved"] = time.time()
        columns["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                f"UPDATE exceptions SET {assignments}, version = version + 1 WHERE id = ? AND version = ?",
                (*columns.values(), item.id, item.version),
            ).rowcount
            if changed:
                self._note(cursor, item.id, actor, action, note, item.state, columns.get("state", item.state))
        if not changed:
            raise Conflict(self._who(item.id))
        found = self.get(item.id)
        assert found is not None
        return found

    def _who(self, item_id: int) -> str:
        latest = self.history(item_id)[-1:]
        current = self.get(item_id)
        if not latest or current is None:
            return f"exception {item_id} changed meanwhile: look again"
        entry = latest[0]
        return (
            f"exception {item_id} changed meanwhile: {entry.actor} {entry.action} it at {entry.at[:19]}"
            f"{f' ({entry.note})' if entry.note else ''}; it is {current.state} now"
        )

    def _note(
        self, cursor: Any, item_id: int, actor: str, action: str, note: str, was: str | None, now: str | None
    ) -> None:
        self.store.execute(
            cursor,
            "INSERT INTO exception_history (exception_id, at, actor, action, note, from_state, to_state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, now_iso(), actor, action, note[:1000], was, now),
        )

    # -- reading --------------------------------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        with self.store.reading() as cursor:
            row = self.store.execute(cursor, f"SELECT {_ITEM} FROM exceptions WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else _item(row)

    def history(self, item_id: int) -> list[Entry]:
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT at, actor, action, note, from_state, to_state FROM exception_history WHERE exception_id = ? "
                "ORDER BY id",
                (item_id,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def page(
        self,
        owner: str | None = None,
        entity: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        older_than: float | None = None,
        after: tuple[float, int] | None = None,
        limit: int = 50,
        resolved: bool = False,
    ) -> list[Item]:
        """Oldest first, a page at a time (`after`: the last one's (created, id)); unresolved ones
        unless `resolved` or a `state` says otherwise."""
        clauses = [] if resolved or state == "resolved" else ["resolved IS NULL"]
        values: list[Any] = []
        for column, value in (("owner", owner), ("entity", entity), ("kind", kind), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if older_than is not None:
            clauses.append("created <= ?")
            values.append(time.time() - older_than)
        if after is not None:
            clauses.append("(created > ? OR (created = ? AND id > ?))")
            values += [after[0], after[0], after[1]]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, f"SELECT {_ITEM} FROM exceptions {where} ORDER BY created, id LIMIT {int(limit)}", tuple(values)
            ).fetchall()
        return [_item(row) for row in rows]

    def counts(self) -> list[tuple[str, str, str, int, float]]:
        """(kind, entity, owner, unresolved exceptions, the oldest one's created) for the metrics and
        the console's counts."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT kind, entity, owner, COUNT(*), MIN(created) FROM exceptions WHERE resolved IS NULL "
                "GROUP BY kind, entity, owner ORDER BY kind, entity, owner",
            ).fetchall()
        return [(kind, entity, owner, int(count), float(oldest)) for kind, entity, owner, count, oldest in rows]

    def due_alerts(self, minutes: dict[str, int], now: float | None = None) -> list[tuple[Item, float]]:
        """Tier-1 exceptions whose owner has not been told yet, or not since they waited past the
        owner's respond_minutes (`minutes`: owner → respond_minutes); each with when it was last told."""
        moment = time.time() if now is None else now
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {_ITEM}, alerted FROM exceptions WHERE resolved IS NULL AND tier = 1 AND state <> 'snoozed'",
            ).fetchall()
        due = []
        for row in rows:
            item, alerted = _item(row[:-1]), float(row[-1])
            waited = minutes.get(item.owner)
            if waited is not None and (alerted == 0 or moment - max(alerted, item.created) >= waited * 60):
                due.append((item, alerted))
        return due

    def alerted(self, item: Item, before: float, at: float) -> bool:
        """Mark an alert as sent, once for the fleet: False if another gateway sent it first."""
        with self.store.transaction() as cursor:
            return bool(
                self.store.execute(
                    cursor, "UPDATE exceptions SET alerted = ? WHERE id = ? AND alerted = ?", (at, item.id, before)
                ).rowcount
            )

    def prune(self, older_than: float, now: float | None = None) -> int:
        """Resolved exceptions (and their history) resolved longer ago than `older_than` seconds;
        never an unresolved one."""
        cutoff = (time.time() if now is None else now) - older_than
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "DELETE FROM exception_history WHERE exception_id IN (SELECT id FROM exceptions WHERE resolved "
                "IS NOT NULL AND resolved < ?)",
                (cutoff,),
            )
            return int(
                self.store.execute(
                    cursor, "DELETE FROM exceptions WHERE resolved IS NOT NULL AND resolved < ?", (cutoff,)
                ).rowcount
            )


def _iso(moment: float) -> str:
    """A moment as the store writes its times (now_iso), so the two compare as text."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
