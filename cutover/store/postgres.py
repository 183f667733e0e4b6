"""The store for several gateways: PostgreSQL, a connection per thread, changes sent by LISTEN/NOTIFY."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from cutover.store.base import Store
from cutover.store.records import CHANNEL, StoreError


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _without_password(message: str, url: str) -> str:
    """`message` with the store URL's password taken out, wherever the driver quoted it."""
    found = re.match(r"^[a-z]+://[^:/@]*:(.*)@[^@]*$", url)
    password = found.group(1) if found else ""
    for secret in {password, unquote(password)} - {""}:
        message = message.replace(secret, "***")
    return message


class PostgresStore(Store):
    """A connection per thread that uses the store: the request path's writer, the evidence flush and
    the admin API never queue behind one another on a shared connection."""

    placeholder = "%s"
    engine = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()
        self._connect()

    def _connect(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            try:
                connection = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except self._psycopg.Error as exc:
                reason = _without_password(_first_line(exc), self.url)
                raise StoreError(
                    f"cannot connect to the PostgreSQL store: {reason}; check that the server is up and "
                    "the URL in --store / BANYAN_STORE"
                ) from None
            self._local.connection = connection
            with self._opened_lock:
                self._opened = [c for c in self._opened if not c.closed] + [connection]
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        connection = self._connect()
        try:
            with connection.transaction(), connection.cursor() as cursor:
                yield cursor
        except self._psycopg.OperationalError as exc:
            connection.close()  # reconnect on the next call
            raise StoreError(f"the PostgreSQL store failed: {_without_password(_first_line(exc), self.url)}") from None

    @contextmanager
    def reading(self) -> Iterator[Any]:
        # one SELECT in autocommit is its own snapshot: no BEGIN and COMMIT round trips around it
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                yield cursor
        except self._psycopg.OperationalError as exc:
            connection.close()
            raise StoreError(f"the PostgreSQL store failed: {_without_password(_first_line(exc), self.url)}") from None

    def _notify(self, cursor: Any, payload: str) -> None:
        cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def listen(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        connection = self._psycopg.connect(self.url, autocommit=True)
        try:
            connection.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                for _ in connection.notifies(timeout=0.5, stop_after=1):
                    on_change()
        finally:
            connection.close()

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
