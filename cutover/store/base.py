"""What every store does, written once with `?` placeholders: rules and their versions, the audit,
settings, consumers, idempotency claims, evidence, differences, noise, schedules and freezes.
The engines (sqlite.py, postgres.py) bring the connection and the transaction."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from cutover.decide import Mode, Rule, Side
from cutover.gates import Counters, Gate, Guardrail
from cutover.store.records import COUNTERS, IN_DOUBT_KEPT, AuditEvent, Conflict, Freeze, Recorded, Scheduled, now_iso
from cutover.store.schema import APPEND_ONLY, IDS, MIGRATIONS

NOISE_ABSOLUTE = 0.001  # a field is a real difference when the cloud's rate beats legacy's own by 0.1 point…
NOISE_RELATIVE = 0.2  # …and by a fifth of it (Diffy's two thresholds)
SAMPLES_PER_PATH = 5  # the newest samples kept per route × entity × path (values already masked)


_RULE_COLUMNS = "route, entity, mode, percent, pins, version, updated_at"


def _rule(row: Any) -> Rule:
    route, entity, mode, percent, pins, version, since = row
    sides = {k: Side(v) for k, v in json.loads(pins).items()}
    return Rule(route, entity, Mode(mode), float(percent), sides, int(version), since)


def _event(row: Any) -> AuditEvent:
    id_, at, actor, kind, route, entity, from_mode, to_mode, from_percent, to_percent, reason, evidence = row
    return AuditEvent(
        id_, at, actor, kind, route, entity, from_mode, to_mode, from_percent, to_percent, reason, json.loads(evidence)
    )


def where_equal(**filters: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (with ? placeholders) for the filters that are set, and its parameters."""
    given = {column: value for column, value in filters.items() if value}
    clause = " AND ".join(f"{column} = ?" for column in given)
    return (f"WHERE {clause}" if clause else ""), tuple(given.values())


def _noise_verdict(rate: float | None, own: float | None) -> str:
    """`difference` when the cloud differs clearly more often than legacy differs from itself."""
    if own is None or rate is None:
        return "unknown"  # no second legacy calls sampled yet
    if rate - own > NOISE_ABSOLUTE and rate > own * (1 + NOISE_RELATIVE):
        return "difference"
    return "noise" if own > 0 else "difference"


class Store:
    """Shared behaviour; subclasses bring the connection and the placeholder style."""

    placeholder = "?"
    engine = "sqlite"
    writes_now = False  # True where `transaction_now` can write from the event loop without waiting

    def transaction_now(self) -> AbstractContextManager[Any]:
        """A write transaction if the lock is free this instant, else Busy (see SqliteStore)."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def execute(self, cursor: Any, text: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement written with `?` placeholders inside a transaction's cursor."""
        return cursor.execute(self._sql(text), params)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """For one SELECT that only reads: it takes no write lock (SQLite) and no transaction round trips
        (PostgreSQL), so writers never wait on it."""
        with self.transaction() as cursor:
            yield cursor

    def migrate(self) -> int:
        with self.transaction() as cursor:
            if self.engine == "postgres":  # gateways starting together migrate one at a time
                cursor.execute("SELECT pg_advisory_xact_lock(7210431)")
            self.execute(
                cursor,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            done = {row[0] for row in self.execute(cursor, "SELECT version FROM schema_migrations").fetchall()}
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in migration:
                    if statement == "{append_only}":
                        for guard in APPEND_ONLY[self.engine]:
                            cursor.execute(guard)
                    else:
                        cursor.execute(statement.format(id=IDS[self.engine]))
                self.execute(
                    cursor, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now_iso())
                )
            return len(MIGRATIONS)

    # -- rules ----------------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        with self.reading() as cursor:
            rows = self.execute(cursor, f"SELECT {_RULE_COLUMNS} FROM cutover_rules").fetchall()
        return [_rule(row) for row in rows]

    def rule(self, route: str, entity: str) -> Rule | None:
        with self.reading() as cursor:
            row = self.execute(
                cursor,
                f"SELECT {_RULE_COLUMNS} FROM cutover_rules WHERE route = ? AND entity = ?",
                (route, entity),
            ).fetchone()
        return _rule(row) if row else None

    def generation(self) -> int:
        with self.reading() as cursor:
            return int(self.execute(cursor, "SELECT value FROM cutover_generation WHERE id = 1").fetchone()[0])

    def put_rule(self, rule: Rule, expected_version: int, actor: str, event: dict[str, Any]) -> Rule:
        """Write `rule` if its stored version is still `expected_version`; append the audit event."""
        stamp = now_iso()
        new = Rule(rule.route, rule.entity, rule.mode, rule.percent, rule.pins, expected_version + 1, stamp)
        pins = json.dumps({k: v.value for k, v in rule.pins.items()}, sort_keys=True)
        with self.transaction() as cursor:
            if expected_version == 0:
                exists = self.execute(
                    cursor,
                    "SELECT version FROM cutover_rules WHERE route = ? AND entity = ?",
                    (rule.route, rule.entity),
                ).fetchone()
                if exists:
                    raise Conflict(
                        f"{rule.route}/{rule.entity} was set by someone else meanwhile (version {exists[0]})"
                    )
                self.execute(
                    cursor,
                    "INSERT INTO cutover_rules (route, entity, mode, percent, pins, version, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (rule.route, rule.entity, rule.mode.value, rule.percent, pins, 1, stamp, actor),
                )
            else:
                changed = self.execute(
                    cursor,
                    "UPDATE cutover_rules SET mode = ?, percent = ?, pins = ?, version = ?, updated_at = ?, "
                    "updated_by = ? "
                    "WHERE route = ? AND entity = ? AND version = ?",
                    (
                        rule.mode.value,
                        rule.percent,
                        pins,
                        new.version,
                        stamp,
                        actor,
                        rule.route,
                        rule.entity,
                        expected_version,
                    ),
                ).rowcount
                if changed != 1:
                    raise Conflict(
                        f"{rule.route}/{rule.entity} changed since version {expected_version}: read it again"
                    )
            self.append_audit(cursor, stamp, actor, rule.route, rule.entity, event)
            self.execute(cursor, "UPDATE cutover_generation SET value = value + 1 WHERE id = 1")
            self._notify(cursor, f"{rule.route}/{rule.entity}")
        return new

    def _notify(self, cursor: Any, payload: str) -> None:
        pass

    # -- audit ----------------------------------------------------------------------------------
    def append_audit(self, cursor: Any, stamp: str, actor: str, route: str, entity: str, event: dict[str, Any]) -> None:
        self.execute(
            cursor,
            "INSERT INTO cutover_audit (at, actor, kind, route, entity, from_mode, to_mode, from_percent, to_percent, "
            "reason, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stamp, actor, event["kind"], route, entity, event.get("from_mode"), event.get("to_mode"),
             event.get("from_percent"), event.get("to_percent"), event["reason"],
             json.dumps(event.get("evidence", {}), sort_keys=True)),
        )  # fmt: skip

    def record(self, actor: str, route: str, entity: str, event: dict[str, Any]) -> None:
        """An audit event that changes no rule (a refused or postponed change, a freeze)."""
        with self.transaction() as cursor:
            self.append_audit(cursor, now_iso(), actor, route, entity, event)

    def history(self, route: str | None = None, entity: str | None = None, limit: int = 1000) -> list[AuditEvent]:
        where, params = where_equal(route=route, entity=entity)
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT id, at, actor, kind, route, entity, from_mode, to_mode, from_percent, to_percent, reason, "
                "evidence "
                f"FROM cutover_audit {where} ORDER BY id DESC LIMIT {int(limit)}",
                params,
            ).fetchall()
        return [_event(row) for row in rows]

    # -- the settings the gateways run ------------------------------------------------------------
    def put_settings(self, settings: dict[str, tuple[Gate, Guardrail]], source: str) -> None:
        """Record each route's gate and guardrail as this process runs them; `source` says who."""
        stamp = now_iso()
        with self.transaction() as cursor:
            for route, (gate, guardrail) in sorted(settings.items()):
                self.execute(
                    cursor,
                    "INSERT INTO cutover_settings (route, gate, guardrail, source, at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (route) DO UPDATE SET gate = excluded.gate, guardrail = excluded.guardrail, "
                    "source = excluded.source, at = excluded.at",
                    (route, gate.model_dump_json(), guardrail.model_dump_json(), source, stamp),
                )

    def settings(self) -> dict[str, tuple[Gate, Guardrail, str]]:
        """route → (gate, guardrail, "who recorded them, when") as last recorded by a gateway."""
        with self.reading() as cursor:
            rows = self.execute(cursor, "SELECT route, gate, guardrail, source, at FROM cutover_settings").fetchall()
        return {
            route: (Gate.model_validate_json(gate), Guardrail.model_validate_json(guardrail), f"{source} at {at[:19]}")
            for route, gate, guardrail, source, at in rows
        }

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

    # -- API consumers ------------------------------------------------------------------------------
    def put_consumer(self, name: str, key_sha256: str, spec: dict[str, Any], actor: str, kind: str) -> None:
        """Add a consumer (`kind` create) or give one a new key (rotate); audited; every gateway hears it."""
        stamp = now_iso()
        with self.transaction() as cursor:
            row = self.execute(cursor, "SELECT revoked_at FROM cutover_consumers WHERE name = ?", (name,)).fetchone()
            if kind == "create" and row is not None and row[0] is None:
                raise Conflict(f"a consumer named {name} exists: rotate its key, or revoke it first")
            if kind == "rotate" and (row is None or row[0] is not None):
                raise Conflict(f"no consumer named {name} to rotate the key of: see banyan keys list")
            self.execute(
                cursor,
                "INSERT INTO cutover_consumers (name, key_sha256, spec, revoked_at, created_at, updated_at) "
                "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (name) DO UPDATE SET key_sha256 = excluded.key_sha256, "
                "spec = excluded.spec, revoked_at = NULL, updated_at = excluded.updated_at",
                (name, key_sha256, json.dumps(spec, sort_keys=True), stamp, stamp),
            )
            self._changed(cursor, stamp, actor, name, f"key_{kind}")

    def revoke_consumer(self, name: str, actor: str) -> None:
        stamp = now_iso()
        with self.transaction() as cursor:
            changed = self.execute(
                cursor,
                "UPDATE cutover_consumers SET revoked_at = ?, updated_at = ? WHERE name = ? AND revoked_at IS NULL",
                (stamp, stamp, name),
            ).rowcount
            if changed != 1:
                raise Conflict(f"no consumer named {name} with a key to revoke: see banyan keys list")
            self._changed(cursor, stamp, actor, name, "key_revoke")

    def _changed(self, cursor: Any, stamp: str, actor: str, name: str, kind: str) -> None:
        self.append_audit(cursor, stamp, actor, "(consumers)", name, {"kind": kind, "reason": kind.replace("_", " ")})
        self.execute(cursor, "UPDATE cutover_generation SET value = value + 1 WHERE id = 1")
        self._notify(cursor, f"consumers/{name}")

    def consumers(self) -> list[tuple[str, str, dict[str, Any], str | None]]:
        """(name, key hash, scopes and limits, revoked at) of every consumer the store knows."""
        with self.reading() as cursor:
            rows = self.execute(
                cursor, "SELECT name, key_sha256, spec, revoked_at FROM cutover_consumers ORDER BY name"
            ).fetchall()
        return [(name, key, json.loads(spec), revoked) for name, key, spec, revoked in rows]

    # -- idempotency, fleet-wide --------------------------------------------------------------------
    def claim_in(
        self, cursor: Any, scope: str, consumer: str, digest: str, lease: float, ttl: float, now: float,
        correlation_id: str = "",
    ) -> tuple[str, Recorded | None]:  # fmt: skip
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
        self, cursor: Any, scope: str, state: str, status: int, content_type: str, body: bytes,
        location: str | None = None,
    ) -> None:  # fmt: skip
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
    def add_deprecated_calls(self, calls: dict[tuple[str, str], int]) -> None:
        with self.transaction() as cursor:
            self.add_deprecated_calls_in(cursor, calls)

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

    def latest(self, kinds: tuple[str, ...]) -> dict[tuple[str, str], AuditEvent]:
        """The newest audit event of any of `kinds`, per route × entity."""
        marks = ", ".join("?" for _ in kinds)
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT id, at, actor, kind, route, entity, from_mode, to_mode, from_percent, to_percent, reason, "
                "evidence FROM cutover_audit WHERE id IN "
                f"(SELECT MAX(id) FROM cutover_audit WHERE kind IN ({marks}) GROUP BY route, entity)",
                kinds,
            ).fetchall()
        return {(event.route, event.entity): event for event in map(_event, rows)}

    # -- evidence -------------------------------------------------------------------------------
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
        self, cursor: Any, route: str, entity: str, minute: int, counts: dict[tuple[str, str], int],
        samples: list[tuple[str, str, Any, Any]],
    ) -> None:  # fmt: skip
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
                found.append({"path": path, "kind": kind, "count": int(count), "rate": rate, "legacy_own_rate": own,
                              "verdict": _noise_verdict(rate, own), "samples": listed})  # fmt: skip
        return found

    # -- schedules and freezes ------------------------------------------------------------------
    def add_schedule(self, route: str, entity: str, mode: str, percent: float, at: str, reason: str, actor: str) -> int:
        with self.transaction() as cursor:
            self.execute(
                cursor,
                "INSERT INTO cutover_schedule (route, entity, mode, percent, at, reason, actor, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                (route, entity, mode, percent, at, reason, actor),
            )
            return int(self.execute(cursor, "SELECT MAX(id) FROM cutover_schedule").fetchone()[0])

    def schedules(self, state: str | None = None) -> list[Scheduled]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        with self.reading() as cursor:
            rows = self.execute(
                cursor,
                "SELECT id, route, entity, mode, percent, at, reason, actor, state, note "
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

    def become_writer(self) -> None:
        """Called once on the thread that will make most of this process's writes (the group commit)."""

    def checkpoint(self) -> None:
        """Fold the write-ahead log back into the database, off the writer's path (SQLite only)."""

    def listen(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call `on_change` whenever a rule changes, until `stop` is set (runs in a thread)."""
        seen = self.generation()
        while not stop.wait(0.2):
            current = self.generation()
            if current != seen:
                seen = current
                on_change()

    def close(self) -> None:
        pass
