"""Change requests: a step one person proposes and a second approves. A request leaves `proposed`
once, by a compare-and-set on its state, in the same transaction as what its decision does (the
rule written, the schedule added): two approvers at once apply it once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cutover.store.engine import Engine
from cutover.store.records import Change, Conflict, now_iso

_COLUMNS = (
    "id, route, entity, mode, percent, force, at, rule_version, reason, evidence, needs, proposed_by, proposed_at, "
    "expires, state, decided_by, decided_at, note"
)


def _change(row: Any) -> Change:
    values = list(row)
    values[5] = bool(values[5])
    values[9] = json.loads(values[9] or "{}")
    return Change(*values)


class ChangeTables(Engine):
    """Change requests, with the connection of the Store they are part of."""

    def add_change(self, change: Change, audit: Callable[[Any, int], None]) -> int:
        """Keep a proposal; `audit(cursor, id)` records it in the same transaction."""
        with self.transaction() as cursor:
            self.execute(
                cursor,
                "INSERT INTO cutover_changes (route, entity, mode, percent, force, at, rule_version, reason, evidence, "
                "needs, proposed_by, proposed_at, expires, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.route,
                    change.entity,
                    change.mode,
                    change.percent,
                    int(change.force),
                    change.at,
                    change.rule_version,
                    change.reason,
                    json.dumps(change.evidence, sort_keys=True, default=str),
                    change.needs,
                    change.proposed_by,
                    change.proposed_at,
                    change.expires,
                    "proposed",
                ),
            )
            change_id = int(self.execute(cursor, "SELECT MAX(id) FROM cutover_changes").fetchone()[0])
            audit(cursor, change_id)
            return change_id

    def change(self, change_id: int) -> Change | None:
        with self.reading() as cursor:
            row = self.execute(cursor, f"SELECT {_COLUMNS} FROM cutover_changes WHERE id = ?", (change_id,)).fetchone()
        return _change(row) if row is not None else None

    def changes(self, state: str | None = None, limit: int = 200) -> list[Change]:
        """The newest first; `state` proposed gives the approvers' queue."""
        where, params = ("WHERE state = ?", (state, limit)) if state else ("", (limit,))
        with self.reading() as cursor:
            rows = self.execute(
                cursor, f"SELECT {_COLUMNS} FROM cutover_changes {where} ORDER BY id DESC LIMIT ?", params
            ).fetchall()
        return [_change(row) for row in rows]

    def decide_in(self, cursor: Any, change_id: int, state: str, actor: str, note: str) -> None:
        """Move a proposed request to `state` in the caller's transaction; Conflict if it left
        `proposed` meanwhile (another approver, a withdrawal), and the transaction is rolled back."""
        changed = self.execute(
            cursor,
            "UPDATE cutover_changes SET state = ?, decided_by = ?, decided_at = ?, note = ? "
            "WHERE id = ? AND state = 'proposed'",
            (state, actor, now_iso(), note[:2000], change_id),
        ).rowcount
        if changed != 1:
            row = self.execute(
                cursor, "SELECT state, decided_by FROM cutover_changes WHERE id = ?", (change_id,)
            ).fetchone()
            said = f"{row[0]} by {row[1]}" if row is not None and row[1] else (row[0] if row else "gone")
            raise Conflict(f"change {change_id} was {said} meanwhile")

    def decide(self, change_id: int, state: str, actor: str, note: str, then: Callable[[Any], None]) -> None:
        with self.transaction() as cursor:
            self.decide_in(cursor, change_id, state, actor, note)
            then(cursor)

    def untold_changes(self) -> list[Change]:
        with self.reading() as cursor:
            rows = self.execute(
                cursor, f"SELECT {_COLUMNS} FROM cutover_changes WHERE state = 'proposed' AND told = 0 ORDER BY id"
            ).fetchall()
        return [_change(row) for row in rows]

    def mark_told(self, change_id: int, moment: float) -> bool:
        """True for the one process of the fleet that tells the approvers of this request."""
        with self.transaction() as cursor:
            changed = self.execute(
                cursor, "UPDATE cutover_changes SET told = ? WHERE id = ? AND told = 0", (moment, change_id)
            ).rowcount
        return bool(changed == 1)
