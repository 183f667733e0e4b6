"""What every store does, written once with `?` placeholders: rules and their versions, the audit,
settings and consumers here; evidence, call records and the calendar in the tables it is made of
(evidence.py, calls.py, calendar.py). The engines (sqlite.py, postgres.py) bring the connection."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from cutover.decide import Mode, Rule, Side
from cutover.gates import Gate, Guardrail
from cutover.store.calendar import CalendarTables
from cutover.store.calls import CallTables
from cutover.store.changes import ChangeTables
from cutover.store.evidence import EvidenceTables
from cutover.store.records import AuditEvent, Conflict, now_iso
from cutover.store.schema import APPEND_ONLY, IDS, MIGRATIONS


class _Unchanged(Exception):
    """Rolls back a conditional write whose condition no longer holds."""


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


class Store(EvidenceTables, CallTables, CalendarTables, ChangeTables):
    """Every table's queries, written once; subclasses bring the connection and the placeholder style."""

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

    def put_rule(
        self,
        rule: Rule,
        expected_version: int,
        actor: str,
        event: dict[str, Any],
        then: Callable[[Any], None] | None = None,
    ) -> Rule:
        """Write `rule` if its stored version is still `expected_version`; append the audit event;
        with `then`, run it in the same transaction (an approved change request marked applied)."""
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
            if then is not None:
                then(cursor)
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
            (
                stamp,
                actor,
                event["kind"],
                route,
                entity,
                event.get("from_mode"),
                event.get("to_mode"),
                event.get("from_percent"),
                event.get("to_percent"),
                event["reason"],
                json.dumps(event.get("evidence", {}), sort_keys=True),
            ),
        )

    def record(self, actor: str, route: str, entity: str, event: dict[str, Any]) -> None:
        """An audit event that changes no rule (a refused or postponed change, a freeze)."""
        with self.transaction() as cursor:
            self.append_audit(cursor, now_iso(), actor, route, entity, event)

    def record_if(
        self,
        actor: str,
        route: str,
        entity: str,
        event: dict[str, Any],
        kinds: tuple[str, ...],
        seen: int | None,
        then: Callable[[Any], None] | None = None,
    ) -> bool:
        """Append `event` (one of `kinds`) if the newest event of `kinds` for route × entity is still
        `seen` (its id; None for none), and tell every gateway; with `then`, run it in the same
        transaction. False, with nothing written, when another process recorded one meanwhile: a
        state kept as audit events (a guardrail's alert, the cloud's paused copies) changes once."""
        marks = ", ".join("?" for _ in kinds)
        try:
            self._record_if(actor, route, entity, event, marks, kinds, seen, then)
        except _Unchanged:  # rolled back: nothing was written
            return False
        return True

    def _record_if(
        self,
        actor: str,
        route: str,
        entity: str,
        event: dict[str, Any],
        marks: str,
        kinds: tuple[str, ...],
        seen: int | None,
        then: Callable[[Any], None] | None,
    ) -> None:
        with self.transaction() as cursor:
            # the generation row serialises this against every other change, on both stores
            self.execute(cursor, "UPDATE cutover_generation SET value = value + 1 WHERE id = 1")
            newest = self.execute(
                cursor,
                f"SELECT MAX(id) FROM cutover_audit WHERE kind IN ({marks}) AND route = ? AND entity = ?",
                (*kinds, route, entity),
            ).fetchone()[0]
            if newest != seen:
                raise _Unchanged
            self.append_audit(cursor, now_iso(), actor, route, entity, event)
            if then is not None:
                then(cursor)
            self._notify(cursor, f"{route}/{entity}")

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
