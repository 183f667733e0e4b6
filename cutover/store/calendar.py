"""The cutover calendar: rung changes scheduled for later, and freezes during which none is made."""

from __future__ import annotations

from typing import Any

from cutover.store.engine import Engine
from cutover.store.records import Freeze, Scheduled


class CalendarTables(Engine):
    """Schedules and freezes, with the connection of the Store they are part of."""

    def add_schedule(self, route: str, entity: str, mode: str, percent: float, at: str, reason: str, actor: str) -> int:
        with self.transaction() as cursor:
            return self.schedule_in(cursor, route, entity, mode, percent, at, reason, actor)

    def schedule_in(
        self,
        cursor: Any,
        route: str,
        entity: str,
        mode: str,
        percent: float,
        at: str,
        reason: str,
        actor: str,
        change_id: int | None = None,
    ) -> int:
        """A schedule added in the caller's transaction (an approved change becomes one with its approval)."""
        self.execute(
            cursor,
            "INSERT INTO cutover_schedule (route, entity, mode, percent, at, reason, actor, state, change_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (route, entity, mode, percent, at, reason, actor, change_id),
        )
        return int(self.execute(cursor, "SELECT MAX(id) FROM cutover_schedule").fetchone()[0])

    def schedules(self, state: str | None = None) -> list[Scheduled]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT id, route, entity, mode, percent, at, reason, actor, state, note, change_id "
                f"FROM cutover_schedule {where} ORDER BY at",
                params,
            ).fetchall()
        return [Scheduled(*row) for row in rows]

    def mark_schedule(self, schedule_id: int, state: str, note: str) -> None:
        with self.transaction() as cursor:
            self.execute(
                cursor, "UPDATE cutover_schedule SET state = ?, note = ? WHERE id = ?", (state, note, schedule_id)
            )

    def add_freeze(self, entity: str, starts: str, ends: str, reason: str, actor: str) -> None:
        with self.transaction() as cursor:
            self.execute(
                cursor,
                "INSERT INTO cutover_freeze (entity, starts, ends, reason, actor) VALUES (?, ?, ?, ?, ?)",
                (entity, starts, ends, reason, actor),
            )

    def freezes(self) -> list[Freeze]:
        with self.reading() as cursor:
            rows = self.execute(
                cursor, "SELECT id, entity, starts, ends, reason, actor FROM cutover_freeze ORDER BY starts"
            ).fetchall()
        return [Freeze(*row) for row in rows]
