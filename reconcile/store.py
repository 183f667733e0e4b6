"""Reconciliation runs in the shared store: one row a run with its counts, and the keys it found
differing or on one side only (with their differences and the legacy record, masked), for `show`,
`export` and, later, repair."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cutover.store import Store, now_iso

_RUN = "id, name, entity, since, started, finished, state, counts, warnings, reason"


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    entity: str
    since: str | None
    started: str
    finished: str | None
    state: str  # running, done, failed
    counts: dict[str, Any]
    warnings: list[str]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "entity": self.entity,
            "since": self.since,
            "started": self.started,
            "finished": self.finished,
            "state": self.state,
            "counts": self.counts,
            "warnings": self.warnings,
            "reason": self.reason,
        }


def _run(row: Any) -> RunRow:
    run_id, name, entity, since, started, finished, state, counts, warnings, reason = row
    return RunRow(
        int(run_id),
        name,
        entity,
        since,
        started,
        finished,
        state,
        json.loads(counts or "{}"),
        json.loads(warnings or "[]"),
        reason,
    )


class Runs:
    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, name: str, entity: str, since: str | None) -> int:
        with self.store.transaction() as cursor:
            row = self.store.execute(
                cursor,
                "INSERT INTO recon_runs (name, entity, since, started, created, state) VALUES (?, ?, ?, ?, ?, "
                "'running') RETURNING id",
                (name, entity, since, now_iso(), time.time()),
            ).fetchone()
        return int(row[0])

    def finish(self, run_id: int, state: str, counts: dict[str, Any], warnings: list[str], reason: str) -> None:
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "UPDATE recon_runs SET state = ?, finished = ?, counts = ?, warnings = ?, reason = ? WHERE id = ?",
                (state, now_iso(), json.dumps(counts), json.dumps(warnings[:200]), reason[:1000], run_id),
            )

    def items(self, run_id: int, items: Iterable[tuple[str, str, Any, dict[str, Any]]]) -> None:
        """The keys found (kind, key, what is shown, each side's record as read, for a repair),
        written a thousand at a time."""
        batch: list[tuple[int, str, str, str, str]] = []
        for kind, key, detail, records in items:
            batch.append((run_id, kind, key, json.dumps(detail, default=str), json.dumps(records, default=str)))
            if len(batch) >= 1000:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)

    def _write(self, batch: list[tuple[int, str, str, str, str]]) -> None:
        with self.store.transaction() as cursor:
            for row in batch:
                self.store.execute(
                    cursor,
                    "INSERT INTO recon_items (run_id, kind, record_key, detail, records) VALUES (?, ?, ?, ?, ?)",
                    row,
                )

    def records(self, run_id: int, kinds: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
        """(kind, key, each side's record) of the keys a run found of `kinds`: what a repair sends."""
        marks = ", ".join("?" * len(kinds))
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT kind, record_key, records FROM recon_items WHERE run_id = ? AND kind IN ({marks}) "
                "ORDER BY record_key",
                (run_id, *kinds),
            ).fetchall()
        return [(kind, key, json.loads(records)) for kind, key, records in rows]

    def get(self, run_id: int) -> RunRow | None:
        with self.store.reading() as cursor:
            row = self.store.execute(cursor, f"SELECT {_RUN} FROM recon_runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run(row)

    def recent(self, name: str | None = None, entity: str | None = None, limit: int = 20) -> list[RunRow]:
        clauses, values = [], []
        for column, value in (("name", name), ("entity", entity)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor, f"SELECT {_RUN} FROM recon_runs {where} ORDER BY id DESC LIMIT {int(limit)}", tuple(values)
            ).fetchall()
        return [_run(row) for row in rows]

    def found(self, run_id: int, kind: str | None = None, limit: int | None = None) -> list[tuple[str, str, Any]]:
        """The keys a run found: (kind, key, detail), by kind then key."""
        clause, values = ("AND kind = ?", (run_id, kind)) if kind else ("", (run_id,))
        bound = f"LIMIT {int(limit)}" if limit is not None else ""
        with self.store.reading() as cursor:
            rows = self.store.execute(
                cursor,
                f"SELECT kind, record_key, detail FROM recon_items WHERE run_id = ? {clause} "
                f"ORDER BY kind, record_key {bound}",
                values,
            ).fetchall()
        return [(kind, key, json.loads(detail)) for kind, key, detail in rows]
