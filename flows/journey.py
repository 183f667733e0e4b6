"""Each file's journey through a flow, in the shared store, so a restart resumes exactly.

    arrival ──read, then claimed──► delivering ──each side: intent → delivered──► delivered
                     │                                         └─(cannot be told)─► in_doubt
                     ├─(nobody takes it: unknown partner, not a document)─► refused
                     └─(the same bytes came before, resends off)─► duplicate

A file is read first, then claimed once per arrival (its name, size and modification time) with
what became of it, in one write: of two runners on one store, one takes it. A claim carries a
lease, renewed while the file is copied; a runner that dies leaves the lease to run out, and the
next one resumes the file from its deliveries: a side whose intent has no outcome is looked for in
its intake (see `flows/runner.py`). The intents of all sides are one write, and so are their
deliveries with the file's end: three writes a file in all. Each side's replies are matched to the
file they answer, by control number or by a business number it carries, and kept one per kind (its
997, its 855), each compared with the other side's of the same kind.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cutover.store import Store, now_iso

LEASE_SECONDS = 10.0  # renewed while a file is copied: a runner that stops holds a file this long at most
_FILE = (
    "id, flow, arrival, name, digest, size, created, at, entity, business_key, document, control, groups, rung, "
    "serving, state, reason, numbers"
)
FINISHED = ("delivered", "refused", "duplicate", "in_doubt", "discarded", "resent")


@dataclass(frozen=True)
class FileRow:
    id: int
    flow: str
    arrival: str
    name: str
    digest: str
    size: int
    created: float
    at: str
    entity: str | None
    business_key: str | None
    document: str | None
    control: str | None
    groups: str
    rung: str | None
    serving: str | None
    state: str
    reason: str
    numbers: str  # the business numbers the file carries (its PO numbers), comma-joined

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow": self.flow,
            "name": self.name,
            "at": self.at,
            "size": self.size,
            "digest": self.digest[:16],
            "entity": self.entity,
            "key": self.business_key,
            "document": self.document,
            "control": self.control,
            "rung": self.rung,
            "serving": self.serving,
            "state": self.state,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Delivery:
    file_id: int
    side: str
    folder: str
    target: str
    staged: str  # the temporary name the copy was written under, before it was given `target`
    state: str  # intent, delivered, in_doubt


@dataclass(frozen=True)
class Answer:
    """One side's reply of one kind to a file: its acknowledgement (997, CONTRL), its order response
    (855, ORDRSP), its despatch advice or invoice (856, 810), as parsed."""

    file_id: int
    side: str
    kind: str
    name: str
    reply: dict[str, Any]
    accepted: bool | None
    replied: float


def _file(row: Any) -> FileRow:
    values = list(row)
    values[0], values[5], values[6] = int(values[0]), int(values[5]), float(values[6])
    return FileRow(*values)


def _delivery(row: Any) -> Delivery:
    file_id, side, folder, target, staged, state = row
    return Delivery(int(file_id), side, folder, target, staged, state)


class Journey:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- files ----------------------------------------------------------------------------------
    def claim(
        self,
        flow: str,
        arrival: str,
        name: str,
        digest: str,
        size: int,
        lease_until: float,
        facts: dict[str, Any],
        once: bool = True,
    ) -> tuple[int, str] | None:
        """Take an arrival, with what became of it (`facts`: state, reason, and for a file to deliver
        its entity, key, document, control, groups, rung and plan): its id and state; None when it was
        taken before. With `once` (a flow that takes no resends), a file to deliver whose bytes another
        file of the flow was taken with meanwhile is claimed a duplicate instead: the check and the
        claim are one transaction (under a lock on the flow and digest on PostgreSQL), so of two
        runners taking the same bytes under two names at once, one delivers them."""
        stamp = now_iso()
        with self.store.transaction() as cursor:
            if once and facts["state"] == "delivering":
                if self.store.engine == "postgres":
                    lock = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"
                    self.store.execute(cursor, lock, (f"flow-file\x1f{flow}\x1f{digest}",))
                earlier = self.store.execute(
                    cursor,
                    "SELECT id, name FROM flow_files WHERE flow = ? AND digest = ? AND state NOT IN "
                    "('refused', 'duplicate', 'discarded', 'resent') ORDER BY id LIMIT 1",
                    (flow, digest),
                ).fetchone()
                if earlier is not None:
                    facts = {"state": "duplicate", "reason": f"the same bytes as file {earlier[0]} ({earlier[1]})"}
            columns = ("entity", "business_key", "document", "control", "groups", "rung", "serving", "numbers")
            values = tuple(
                facts.get(column) or "" if column in ("groups", "numbers") else facts.get(column) for column in columns
            )
            row = self.store.execute(
                cursor,
                f"INSERT INTO flow_files (flow, arrival, name, digest, size, created, at, state, reason, lease_until, "
                f"updated_at, {', '.join(columns)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (flow, arrival) DO NOTHING RETURNING id",
                (
                    flow,
                    arrival,
                    name,
                    digest,
                    size,
                    time.time(),
                    stamp,
                    facts["state"],
                    facts.get("reason", "")[:500],
                    lease_until if facts["state"] == "delivering" else 0,
                    stamp,
                    *values,
                ),
            ).fetchone()
        return None if row is None else (int(row[0]), str(facts["state"]))

    def claimed(self, flow: str, arrival: str) -> FileRow | None:
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor, f"SELECT {_FILE} FROM flow_files WHERE flow = ? AND arrival = ?", (flow, arrival)
            ).fetchone()
        return None if row is None else _file(row)

    def take_over(self, file_id: int, lease_until: float, now: float | None = None) -> bool:
        """Lease an unfinished file whose runner's lease ran out (it died); False when another has it."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE flow_files SET lease_until = ? WHERE id = ? AND lease_until <= ? AND state IN ('new', "
                "'delivering')",
                (lease_until, file_id, moment),
            ).rowcount
        return bool(changed == 1)

    def renew(self, file_id: int, lease_until: float, now: float | None = None) -> bool:
        """Keep a file's lease while it is being copied; False when it ran out (another runner may
        have taken the file over: stop)."""
        moment = time.time() if now is None else now
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE flow_files SET lease_until = ? WHERE id = ? AND lease_until > ? AND state IN ('new', "
                "'delivering')",
                (lease_until, file_id, moment),
            ).rowcount
        return bool(changed == 1)

    def earlier(self, flow: str, digest: str, file_id: int) -> FileRow | None:
        """The first other file of the flow with these bytes that was taken: a resend of it."""
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor,
                f"SELECT {_FILE} FROM flow_files WHERE flow = ? AND digest = ? AND id <> ? AND state NOT IN "
                "('refused', 'duplicate', 'discarded', 'resent') ORDER BY id LIMIT 1",
                (flow, digest, file_id),
            ).fetchone()
        return None if row is None else _file(row)

    def finish(self, file_id: int, state: str, reason: str = "") -> None:
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "UPDATE flow_files SET state = ?, reason = ?, lease_until = 0, updated_at = ? WHERE id = ?",
                (state, reason[:500], now_iso(), file_id),
            )

    def get(self, file_id: int) -> FileRow | None:
        with self.store.reading() as cursor:
            row = self.store.execute(cursor, f"SELECT {_FILE} FROM flow_files WHERE id = ?", (file_id,)).fetchone()
        return None if row is None else _file(row)

    def unfinished(self, flow: str, now: float | None = None) -> list[FileRow]:
        """Files of the flow left unfinished by a runner whose lease ran out."""
        moment = time.time() if now is None else now
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {_FILE} FROM flow_files WHERE flow = ? AND state IN ('new', 'delivering') "
                "AND lease_until <= ? ORDER BY id",
                (flow, moment),
            ).fetchall()
        return [_file(row) for row in rows]

    def files(
        self, flow: str | None = None, entity: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[FileRow]:
        clauses, values = [], []
        for column, value in (("flow", flow), ("entity", entity), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, f"SELECT {_FILE} FROM flow_files {where} ORDER BY id DESC LIMIT {int(limit)}", tuple(values)
            ).fetchall()
        return [_file(row) for row in rows]

    def described(self, row: FileRow) -> dict[str, Any]:
        """A file and what each side got and answered, as the CLI and the console show it."""
        answers: dict[str, list[dict[str, Any]]] = {}
        for answer in self.answers(row.id):
            answers.setdefault(answer.side, []).append(
                {"kind": answer.kind, "name": answer.name, "accepted": answer.accepted}
            )
        sides = [
            {"side": d.side, "state": d.state, "folder": d.folder, "name": d.target, "replies": answers.get(d.side, [])}
            for d in self.deliveries(row.id)
        ]
        return row.as_dict() | {"sides": sides}

    def counts(self, since: float = 0.0) -> dict[tuple[str, str, str], int]:
        """Files per flow × entity × state, arrived since `since`."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT flow, COALESCE(entity, '?'), state, COUNT(*) FROM flow_files WHERE created >= ? "
                "GROUP BY flow, entity, state",
                (since,),
            ).fetchall()
        return {(flow, entity, state): int(count) for flow, entity, state, count in rows}

    # -- deliveries -----------------------------------------------------------------------------
    def intend(self, file_id: int, sides: list[tuple[str, str, str, str]]) -> None:
        """Before the renames into the intakes, in one write: for each side (side, folder, name,
        staged), what will be there, where, and under which temporary name the whole copy waits."""
        if not sides:
            return
        stamp = now_iso()
        with self.store.transaction() as cursor:
            for side, folder, target, staged in sides:
                self.store.execute(
                    cursor,
                    "INSERT INTO flow_deliveries (file_id, side, folder, target, staged, state, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 'intent', ?) ON CONFLICT (file_id, side) DO NOTHING",
                    (file_id, side, folder, target, staged, stamp),
                )

    def delivered(
        self, file_id: int, sides: list[tuple[str, str]], state: str = "delivered", finished: bool = False
    ) -> None:
        """Each side's delivery (side, the name it was given) settled as `state`, in one write; with
        `finished`, the file's journey ends there too."""
        stamp = now_iso()
        with self.store.transaction() as cursor:
            for side, target in sides:
                self.store.execute(
                    cursor,
                    "UPDATE flow_deliveries SET state = ?, target = ?, updated_at = ? WHERE file_id = ? AND side = ?",
                    (state, target, stamp, file_id, side),
                )
            if finished:
                self.store.execute(
                    cursor,
                    "UPDATE flow_files SET state = 'delivered', reason = '', lease_until = 0, updated_at = ? "
                    "WHERE id = ?",
                    (stamp, file_id),
                )

    def forget(self, file_id: int, side: str) -> None:
        """A side's intent that surely came to nothing (an upload refused at the door, 429 or 503):
        the file is delivered to it afresh."""
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "DELETE FROM flow_deliveries WHERE file_id = ? AND side = ? AND state = 'intent'",
                (file_id, side),
            )

    def deliveries(self, file_id: int) -> list[Delivery]:
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT file_id, side, folder, target, staged, state FROM flow_deliveries WHERE file_id = ? "
                "ORDER BY side",
                (file_id,),
            ).fetchall()
        return [_delivery(row) for row in rows]

    # -- replies --------------------------------------------------------------------------------
    def answered(self, flow: str, controls: list[str], numbers: list[str]) -> FileRow | None:
        """The newest file of the flow a reply answers: by interchange or group control number, else
        by a business number the file carries (an 855 answers an 850 by its PO number)."""
        with self.store.reading() as cursor:
            for control in controls:
                row = self.store.execute(
                    cursor,
                    f"SELECT {_FILE} FROM flow_files WHERE flow = ? AND (control = ? OR ',' || groups || ',' LIKE ?) "
                    "ORDER BY id DESC LIMIT 1",
                    (flow, control, f"%,{control},%"),
                ).fetchone()
                if row is not None:
                    return _file(row)
            for number in numbers:
                row = self.store.execute(
                    cursor,
                    f"SELECT {_FILE} FROM flow_files WHERE flow = ? AND (business_key = ? OR ',' || numbers || ',' "
                    "LIKE ?) AND state NOT IN ('refused', 'duplicate', 'resent') ORDER BY id DESC LIMIT 1",
                    (flow, number, f"%,{number},%"),
                ).fetchone()
                if row is not None:
                    return _file(row)
        return None

    def seen(self, flow: str, side: str, name: str, digest: str, file_id: int | None) -> bool:
        """Note a reply read; False when it was read before (by anyone)."""
        with self.store.transaction() as cursor:
            row = self.store.execute(
                cursor,
                "INSERT INTO flow_replies (flow, side, name, digest, file_id, seen_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (flow, side, name, digest) DO NOTHING RETURNING name",
                (flow, side, name, digest, file_id, now_iso()),
            ).fetchone()
        return row is not None

    def was_seen(self, flow: str, side: str, name: str, digest: str) -> bool:
        with self.store.reading() as cursor:
            row = self.store.execute(
                cursor,
                "SELECT 1 FROM flow_replies WHERE flow = ? AND side = ? AND name = ? AND digest = ?",
                (flow, side, name, digest),
            ).fetchone()
        return row is not None

    def replied(self, answer: Answer) -> None:
        """A side's answer of one kind to a file; a later one of the same kind (a corrected 855)
        replaces it, and is compared again."""
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "INSERT INTO flow_answers (file_id, side, kind, name, reply, accepted, replied) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id, side, kind) DO UPDATE SET name = excluded.name, "
                "reply = excluded.reply, accepted = excluded.accepted, replied = excluded.replied",
                (
                    answer.file_id,
                    answer.side,
                    answer.kind,
                    answer.name,
                    json.dumps(answer.reply, sort_keys=True),
                    None if answer.accepted is None else int(answer.accepted),
                    answer.replied,
                ),
            )
            self.store.execute(  # either side's new answer makes the pair worth comparing again
                cursor,
                "UPDATE flow_answers SET compared = 0 WHERE file_id = ? AND kind = ?",
                (answer.file_id, answer.kind),
            )

    def answers(self, file_id: int, kind: str | None = None) -> list[Answer]:
        clause, values = ("AND kind = ?", (file_id, kind)) if kind is not None else ("", (file_id,))
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT file_id, side, kind, name, reply, accepted, replied FROM flow_answers WHERE file_id = ? "
                f"{clause} ORDER BY kind, side",
                values,
            ).fetchall()
        return [
            Answer(
                int(file_id),
                side,
                kind,
                name,
                json.loads(reply),
                None if accepted is None else bool(accepted),
                float(replied),
            )
            for file_id, side, kind, name, reply, accepted, replied in rows
        ]

    def unread_records(self, flow: str, since: float, limit: int = 200) -> list[tuple[FileRow, str, str]]:
        """Files of the flow delivered since `since` with a side whose booked record has not been read
        back yet: (file, side, where it was delivered), oldest first."""
        columns = ", ".join(f"f.{column}" for column in _FILE.split(", "))
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT {columns}, d.side, d.folder FROM flow_files f "
                "JOIN flow_deliveries d ON d.file_id = f.id AND d.state = 'delivered' "
                "LEFT JOIN flow_answers a ON a.file_id = f.id AND a.side = d.side AND a.kind = 'record' "
                f"WHERE f.flow = ? AND f.state = 'delivered' AND f.created >= ? AND a.file_id IS NULL "
                f"ORDER BY f.id LIMIT {int(limit)}",
                (flow, since),
            ).fetchall()
        return [(_file(row[:-2]), row[-2], row[-1]) for row in rows]

    def mark_compared(self, file_id: int, kind: str) -> bool:
        """Count the comparison of a file's two answers of one kind once, whichever runner sees both
        first."""
        with self.store.transaction() as cursor:
            changed = self.store.execute(
                cursor,
                "UPDATE flow_answers SET compared = 1 WHERE file_id = ? AND kind = ? AND side = 'legacy' "
                "AND compared = 0",
                (file_id, kind),
            ).rowcount
        return bool(changed == 1)

    def owed_forwards(self, flow: str, before: str, limit: int = 100) -> list[tuple[str, str, str]]:
        """Replies of the serving side read before `before` (an ISO time) and never passed to the
        partner: a runner stopped between reading one and forwarding it. (side, name, digest)."""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                "SELECT r.side, r.name, r.digest FROM flow_replies r JOIN flow_files f ON f.id = r.file_id "
                "WHERE r.flow = ? AND r.forwarded IS NULL AND r.seen_at < ? "
                f"AND f.serving LIKE ? || r.side || ? ORDER BY r.seen_at LIMIT {int(limit)}",
                (flow, before, '%"serve": "', '"%'),
            ).fetchall()
        return [(side, name, digest) for side, name, digest in rows]

    def forwarded(self, flow: str, side: str, name: str, digest: str, to: str) -> None:
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "UPDATE flow_replies SET forwarded = ? WHERE flow = ? AND side = ? AND name = ? AND digest = ?",
                (to, flow, side, name, digest),
            )
