"""What the fleet keeps about calls: how far each event source is published, the answers to writes
by Idempotency-Key (so a retry on any gateway replays the first), and who still calls deprecated
versions."""

from __future__ import annotations

import base64
from typing import Any

from cutover.store.engine import Engine
from cutover.store.records import IN_DOUBT_KEPT, Recorded, now_iso


class CallTables(Engine):
    """Event marks, idempotency claims and deprecated calls, with the connection of the Store they are
    part of."""

    # -- event sources ------------------------------------------------------------------------------
    def event_mark(self, source: str) -> int:
        """How far `source` has been published (0: not yet)."""
        with self.reading() as cursor:
            row = self.execute(cursor, "SELECT mark FROM cutover_event_marks WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def set_event_mark(self, source: str, mark: int) -> None:
        with self.transaction() as cursor:
            self.execute(
                cursor,
                "INSERT INTO cutover_event_marks (source, mark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET mark = excluded.mark, updated_at = excluded.updated_at",
                (source, mark, now_iso()),
            )

    # -- idempotency, fleet-wide --------------------------------------------------------------------
    def claim_in(
        self,
        cursor: Any,
        scope: str,
        consumer: str,
        digest: str,
        lease: float,
        ttl: float,
        now: float,
        correlation_id: str = "",
    ) -> tuple[str, Recorded | None]:
        """Claim a write's Idempotency-Key inside a transaction: ("claimed", None) when this call may
        go ahead, else what it meets — ("mismatch" | "done" | "running" | "in_doubt", the record)."""
        inserted = self.execute(
            cursor,
            "INSERT INTO cutover_idempotency (scope, consumer, digest, state, lease_until, created, expires, "
            "correlation_id) VALUES (?, ?, ?, 'running', ?, ?, ?, ?) ON CONFLICT (scope) DO NOTHING",
            (scope, consumer, digest, now + lease, now, now + ttl, correlation_id),
        )
        if inserted.rowcount == 1:
            return "claimed", None
        row = self.execute(
            cursor,
            "SELECT digest, state, status, content_type, body, lease_until, expires, correlation_id, created, "
            "location FROM cutover_idempotency WHERE scope = ?",
            (scope,),
        ).fetchone()
        if row is None:  # settled and freed between the insert and the read: try again
            return self.claim_in(cursor, scope, consumer, digest, lease, ttl, now, correlation_id)
        if row[6] < now and row[1] != "in_doubt":  # expired: the key is free again
            self.execute(
                cursor,
                "UPDATE cutover_idempotency SET consumer = ?, digest = ?, state = 'running', status = NULL, "
                "content_type = NULL, body = NULL, location = NULL, lease_until = ?, created = ?, expires = ?, "
                "correlation_id = ? "
                "WHERE scope = ?",
                (consumer, digest, now + lease, now, now + ttl, correlation_id, scope),
            )
            return "claimed", None
        body = base64.b64decode(row[4]) if row[4] else b""
        found = Recorded(row[0], row[1], row[2], row[3], body, row[7], row[8], row[9])
        if found.digest != digest:
            return "mismatch", found
        if found.state == "running" and row[5] < now:
            # its holder stopped without saying how the write ended: nobody knows, so nobody resends it
            self.execute(
                cursor,
                "UPDATE cutover_idempotency SET state = 'in_doubt' WHERE scope = ? AND state = 'running'",
                (scope,),
            )
            return "in_doubt", found
        return found.state, found

    def finish_in(
        self,
        cursor: Any,
        scope: str,
        state: str,
        status: int,
        content_type: str,
        body: bytes,
        location: str | None = None,
    ) -> None:
        """Settle a claimed key: `done` keeps the answer to replay, `in_doubt` keeps the key from being
        resent, `released` frees it (nothing was written: a retry may go ahead)."""
        if state == "released":
            self.execute(cursor, "DELETE FROM cutover_idempotency WHERE scope = ? AND state = 'running'", (scope,))
            return
        self.execute(
            cursor,
            "UPDATE cutover_idempotency SET state = ?, status = ?, content_type = ?, body = ?, location = ? "
            "WHERE scope = ?",
            (state, status, content_type, base64.b64encode(body).decode("ascii"), location, scope),
        )

    def prune_idempotency(self, now: float) -> None:
        """Forget expired keys; one in doubt is kept a week longer, for the operators to settle."""
        with self.transaction() as cursor:
            self.execute(
                cursor,
                "DELETE FROM cutover_idempotency WHERE (state <> 'in_doubt' AND expires < ?) OR expires < ?",
                (now, now - IN_DOUBT_KEPT),
            )

    # -- who still calls deprecated versions --------------------------------------------------------
    def add_deprecated_calls_in(self, cursor: Any, calls: dict[tuple[str, str], int]) -> None:
        stamp = now_iso()
        for (route, consumer), count in sorted(calls.items()):
            self.execute(
                cursor,
                "INSERT INTO cutover_deprecated_calls (route, consumer, day, calls, last_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, consumer, day) DO UPDATE SET "
                "calls = cutover_deprecated_calls.calls + excluded.calls, last_at = excluded.last_at",
                (route, consumer, stamp[:10], count, stamp),
            )

    def deprecated_calls(self, since_day: str) -> list[tuple[str, str, int, str]]:
        """(route, consumer, calls since `since_day`, last call) for every consumer still calling."""
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT route, consumer, SUM(calls), MAX(last_at) FROM cutover_deprecated_calls WHERE day >= ? "
                "GROUP BY route, consumer ORDER BY route, consumer",
                (since_day,),
            ).fetchall()
        return [(route, consumer, int(calls), last) for route, consumer, calls, last in rows]
