"""The embedded store: one SQLite file in WAL mode, a connection per thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cutover.store.base import Store
from cutover.store.records import Busy, StoreError

BUSY_SECONDS = 10  # how long a write waits for another connection's lock before it fails


class SqliteStore(Store):
    writes_now = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._now: sqlite3.Connection | None = None  # transaction_now's own

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._open()
        return connection

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot open the SQLite store {self.path} ({exc}): check that its folder exists and is writable, "
                "or name another with --store / BANYAN_STORE"
            ) from None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:  # a file that is not a SQLite database
            connection.close()
            raise StoreError(
                f"{self.path} is not a cutover store ({exc}): name the store with --store / BANYAN_STORE"
            ) from None
        # in WAL mode NORMAL is durable when a process dies (the SIGKILL case); only a power cut
        # can take the last commits, and it saves an fsync on every request that writes
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        return connection

    @contextmanager
    def transaction_now(self) -> Iterator[Any]:
        """A write transaction begun only if the write lock is free this instant, else Busy (before
        anything ran): for the event loop, which must never wait for a lock. Its own connection,
        used from one thread (the loop's), with no busy wait and no automatic checkpoint."""
        if self._now is None:
            self._now = self._open()
            self._now.execute("PRAGMA busy_timeout=0")
            self._now.execute("PRAGMA wal_autocheckpoint=0")  # `checkpoint` runs on another thread
        yield from self._write(self._now, waits=False)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        yield from self._write(self._connection(), waits=True)

    def _write(self, connection: sqlite3.Connection, waits: bool) -> Iterator[Any]:
        cursor = connection.cursor()
        try:
            if waits:
                self._begin_when_free(cursor)
            else:
                cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked (beyond the busy timeout), read-only, disk full…
            if not waits and exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise Busy(str(exc)) from None
            raise StoreError(f"the SQLite store {self.path} cannot be written: {exc}") from None
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    @staticmethod
    def _begin_when_free(cursor: sqlite3.Cursor) -> None:
        """BEGIN IMMEDIATE as soon as the write lock is free, for up to BUSY_SECONDS. SQLite's own
        busy handler sleeps 1, 2, 5, 10… ms between tries, so a write that found the lock taken for
        0.2 ms (another process's commit: the deliverer's, a sibling worker's) waited a whole
        millisecond or three; asked again after 50 µs, doubling to 2 ms, it goes on at once."""
        deadline, pause = time.monotonic() + BUSY_SECONDS, 0.00005
        cursor.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                        raise
                    if time.monotonic() + pause > deadline:
                        raise
                time.sleep(pause)
                pause = min(2 * pause, 0.002)
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")

    def become_writer(self) -> None:
        # SQLite checkpoints the WAL on whichever commit crosses 1,000 pages, and a checkpoint syncs
        # the file: one request in a hundred waited for it (p99 0.55 ms → 0.23 ms without). The
        # writer leaves that to `checkpoint`, which the gateway runs every second on another thread.
        self._connection().execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> None:
        self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for, nor blocks, writers

    @contextmanager
    def reading(self) -> Iterator[Any]:
        cursor = self._connection().cursor()
        cursor.execute("BEGIN")  # deferred: a snapshot to read, no write lock (WAL)
        try:
            yield cursor
        finally:
            cursor.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        if self._now is not None:
            self._now.close()
            self._now = None
