"""Evidence the gateways gather while a route is on a rung: per-minute counters, the fields that
differ (with a few masked samples), and the noise legacy makes against itself."""

from __future__ import annotations

import json
from typing import Any

from cutover.gates import Counters
from cutover.store.engine import Engine
from cutover.store.records import COUNTERS, now_iso

NOISE_ABSOLUTE = 0.001  # a field is a real difference when the cloud's rate beats legacy's own by 0.1 point…
NOISE_RELATIVE = 0.2  # …and by a fifth of it (Diffy's two thresholds)
SAMPLES_PER_PATH = 5  # the newest samples kept per route × entity × path (values already masked)


def _noise_verdict(rate: float | None, own: float | None) -> str:
    """`difference` when the cloud differs clearly more often than legacy differs from itself."""
    if own is None or rate is None:
        return "unknown"  # no second legacy calls sampled yet
    if rate - own > NOISE_ABSOLUTE and rate > own * (1 + NOISE_RELATIVE):
        return "difference"
    return "noise" if own > 0 else "difference"


class EvidenceTables(Engine):
    """Evidence, differences and noise, with the connection of the Store they are part of."""

    def add_evidence(self, route: str, entity: str, rung: str, minute: int, counters: Counters) -> None:
        """Add counters to a minute of evidence gathered on `rung` (see Rule.rung)."""
        with self.transaction() as cursor:
            self.add_evidence_in(cursor, route, entity, rung, minute, counters)

    def add_evidence_in(self, cursor: Any, route: str, entity: str, rung: str, minute: int, counters: Counters) -> None:
        names, marks = ", ".join(COUNTERS), ", ".join("?" * len(COUNTERS))
        adds = ", ".join(f"{name} = cutover_evidence.{name} + excluded.{name}" for name in COUNTERS)
        values = tuple(getattr(counters, name) for name in COUNTERS)
        self.execute(
            cursor,
            f"INSERT INTO cutover_evidence (route, entity, rung, minute, {names}) VALUES (?, ?, ?, ?, {marks}) "
            f"ON CONFLICT (route, entity, rung, minute) DO UPDATE SET {adds}",
            (route, entity, rung, minute, *values),
        )

    def evidence(self, route: str, entity: str, rung: str, since_minute: int) -> Counters:
        sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in COUNTERS)
        with self.reading() as cursor:
            row = self.execute(
                cursor,
                f"SELECT {sums} FROM cutover_evidence WHERE route = ? AND entity = ? AND rung = ? AND minute >= ?",
                (route, entity, rung, since_minute),
            ).fetchone()
        return Counters(*(int(v) for v in row))

    def reconciled(self, name: str, entity: str) -> tuple[int, str, str, float] | None:
        """The newest finished run of a reconciliation for an entity (reconcile/): its id, state,
        when it finished, and its drift rate; None before any."""
        with self.reading() as cursor:
            row = self.execute(
                cursor,
                "SELECT id, state, finished, counts FROM recon_runs WHERE name = ? AND entity = ? "
                "AND state IN ('done', 'failed') ORDER BY id DESC LIMIT 1",
                (name, entity),
            ).fetchone()
        if row is None:
            return None
        run_id, state, finished, counts = row
        return int(run_id), state, finished or "", float(json.loads(counts or "{}").get("drift_rate", 0.0))

    def evidence_series(self, route: str, entity: str, since_minute: int) -> list[tuple[int, Counters]]:
        """(minute, counters on every rung that minute) for one route × entity, oldest first: what
        the console draws."""
        sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in COUNTERS)
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                f"SELECT minute, {sums} FROM cutover_evidence WHERE route = ? AND entity = ? AND minute >= ? "
                "GROUP BY minute ORDER BY minute",
                (route, entity, since_minute),
            ).fetchall()
        return [(int(row[0]), Counters(*(int(v) for v in row[1:]))) for row in rows]

    def prune_evidence(self, before_minute: int) -> None:
        with self.transaction() as cursor:
            self.execute(cursor, "DELETE FROM cutover_evidence WHERE minute < ?", (before_minute,))
            self.execute(cursor, "DELETE FROM cutover_differences WHERE minute < ?", (before_minute,))

    # -- differences, by field ------------------------------------------------------------------
    def add_differences(
        self,
        route: str,
        entity: str,
        minute: int,
        counts: dict[tuple[str, str], int],
        samples: list[tuple[str, str, Any, Any]],
    ) -> None:
        """Add per-path difference counts, and keep the newest few (masked) samples per path."""
        with self.transaction() as cursor:
            self.add_differences_in(cursor, route, entity, minute, counts, samples)

    def add_differences_in(
        self,
        cursor: Any,
        route: str,
        entity: str,
        minute: int,
        counts: dict[tuple[str, str], int],
        samples: list[tuple[str, str, Any, Any]],
    ) -> None:
        stamp = now_iso()
        for (path, kind), count in counts.items():
            self.execute(
                cursor,
                "INSERT INTO cutover_differences (route, entity, path, kind, minute, count) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (route, entity, path, kind, minute) "
                "DO UPDATE SET count = cutover_differences.count + excluded.count",
                (route, entity, path, kind, minute, count),
            )
        for path, kind, legacy, cloud in samples:
            self.execute(
                cursor,
                "INSERT INTO cutover_samples (at, route, entity, path, kind, legacy, cloud) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stamp, route, entity, path, kind, json.dumps(legacy), json.dumps(cloud)),
            )
            self.execute(
                cursor,
                "DELETE FROM cutover_samples WHERE route = ? AND entity = ? AND path = ? AND id NOT IN "
                "(SELECT id FROM cutover_samples WHERE route = ? AND entity = ? AND path = ? "
                f"ORDER BY id DESC LIMIT {SAMPLES_PER_PATH})",
                (route, entity, path, route, entity, path),
            )

    def noise_calls(self, route: str, since_minute: int) -> list[tuple[int, int]]:
        """(minute, repeated legacy reads) for `route` since `since_minute`, oldest first."""
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT minute, SUM(count) FROM cutover_noise_calls WHERE route = ? AND minute >= ? "
                "GROUP BY minute ORDER BY minute",
                (route, since_minute),
            ).fetchall()
        return [(int(at), int(count)) for at, count in rows]

    def add_noise(self, route: str, entity: str, minute: int, calls: int, counts: dict[str, int]) -> None:
        with self.transaction() as cursor:
            self.add_noise_in(cursor, route, entity, minute, calls, counts)

    def add_noise_in(
        self, cursor: Any, route: str, entity: str, minute: int, calls: int, counts: dict[str, int]
    ) -> None:
        self.execute(
            cursor,
            "INSERT INTO cutover_noise_calls (route, entity, minute, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (route, entity, minute) DO UPDATE SET count = cutover_noise_calls.count + excluded.count",
            (route, entity, minute, calls),
        )
        for path, count in counts.items():
            self.execute(
                cursor,
                "INSERT INTO cutover_noise (route, entity, path, minute, count) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (route, entity, path, minute) "
                "DO UPDATE SET count = cutover_noise.count + excluded.count",
                (route, entity, path, minute, count),
            )

    def differences(self, route: str, entity: str | None, since_minute: int, limit: int = 20) -> list[dict[str, Any]]:
        """The fields that differ most: counts, rates, legacy's own rate (noise), verdict, samples."""
        where, params = ("AND entity = ?", (route, since_minute, entity)) if entity else ("", (route, since_minute))
        with self.transaction() as cursor:
            scope = f"WHERE route = ? AND minute >= ? {where}"
            total = self.execute(cursor, f"SELECT COALESCE(SUM(comparisons), 0) FROM cutover_evidence {scope}", params)
            total = total.fetchone()[0]
            calls = self.execute(cursor, f"SELECT COALESCE(SUM(count), 0) FROM cutover_noise_calls {scope}", params)
            noise_calls = calls.fetchone()[0]
            paths = self.execute(cursor, f"SELECT path, SUM(count) FROM cutover_noise {scope} GROUP BY path", params)
            noise = dict(paths.fetchall())
            rows = self.execute(
                cursor,
                f"SELECT path, kind, SUM(count) FROM cutover_differences WHERE route = ? AND minute >= ? {where} "
                f"GROUP BY path, kind ORDER BY SUM(count) DESC, path LIMIT {int(limit)}",
                params,
            ).fetchall()
            found = []
            for path, kind, count in rows:
                sample_where = "AND entity = ?" if entity else ""
                sample_params = (route, path, kind, entity) if entity else (route, path, kind)
                samples = self.execute(
                    cursor,
                    "SELECT entity, legacy, cloud FROM cutover_samples "
                    f"WHERE route = ? AND path = ? AND kind = ? {sample_where} "
                    f"ORDER BY id DESC LIMIT {SAMPLES_PER_PATH}",
                    sample_params,
                ).fetchall()
                listed = [{"entity": e, "legacy": json.loads(a), "cloud": json.loads(b)} for e, a, b in samples]
                rate = int(count) / total if total else None
                own = int(noise.get(path, 0)) / noise_calls if noise_calls else None
                found.append(
                    {
                        "path": path,
                        "kind": kind,
                        "count": int(count),
                        "rate": rate,
                        "legacy_own_rate": own,
                        "verdict": _noise_verdict(rate, own),
                        "samples": listed,
                    }
                )
        return found
