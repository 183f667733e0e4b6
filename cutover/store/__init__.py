"""The store every gateway shares: rules, audit, evidence, schedules and freezes.

SQLite is the embedded default; PostgreSQL is the store when several gateways run, and a change
reaches them through LISTEN/NOTIFY. Rule updates are versioned: an update names the version it
read, and a concurrent writer gets a conflict instead of silently losing the other's change. The
audit table is append-only, enforced by the database itself.


The package, one room each: records.py (what it keeps, its errors), schema.py (the migrations),
engine.py (a transaction, a read, a statement: what every query uses), the queries written once per
table family — base.py (rules, audit, settings, consumers: the Store), evidence.py (evidence,
differences, noise), calls.py (idempotency claims, deprecated calls, event marks), calendar.py
(schedules, freezes), changes.py (change requests) — sqlite.py and postgres.py (the engines), and
here open_store.
"""

from __future__ import annotations

from pathlib import Path

from cutover.store.base import Store, where_equal
from cutover.store.evidence import NOISE_ABSOLUTE, NOISE_RELATIVE, SAMPLES_PER_PATH
from cutover.store.postgres import PostgresStore
from cutover.store.records import (
    CHANNEL,
    COUNTERS,
    IN_DOUBT_KEPT,
    AuditEvent,
    Busy,
    Change,
    Conflict,
    Freeze,
    Recorded,
    Scheduled,
    StoreError,
    minute,
    now_iso,
)
from cutover.store.schema import MIGRATIONS
from cutover.store.sqlite import SqliteStore

__all__ = [
    "CHANNEL",
    "COUNTERS",
    "IN_DOUBT_KEPT",
    "MIGRATIONS",
    "NOISE_ABSOLUTE",
    "NOISE_RELATIVE",
    "SAMPLES_PER_PATH",
    "AuditEvent",
    "Busy",
    "Change",
    "Conflict",
    "Freeze",
    "PostgresStore",
    "Recorded",
    "Scheduled",
    "SqliteStore",
    "Store",
    "StoreError",
    "minute",
    "now_iso",
    "open_store",
    "where_equal",
]


def open_store(location: str, create: bool = True) -> Store:
    """`postgresql://…` or a SQLite file path; migrated on open. With `create=False` a SQLite file
    that does not exist is an error, so a mistyped --store never makes a new, empty store."""
    is_postgres = location.startswith(("postgresql://", "postgres://"))
    if not create and not is_postgres and not Path(location).is_file():
        raise StoreError(
            f"no cutover store at {location}: check --store / BANYAN_STORE (a gateway creates its store when it starts)"
        )
    store: Store = (
        PostgresStore(location)
        if location.startswith(("postgresql://", "postgres://"))
        else SqliteStore(Path(location))
    )
    store.migrate()
    return store
