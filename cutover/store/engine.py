"""The connection side of a store, which every table's queries use: a transaction, a read, and
one statement written with `?` placeholders. The engines (sqlite.py, postgres.py) bring the rest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


class Engine:
    """Subclasses bring the connection and the placeholder style."""

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
