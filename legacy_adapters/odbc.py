"""ODBC backend: a stored procedure or a parameterised statement through pyodbc, on a thread pool.

Parameters are always bound (`?` markers), never spliced into SQL, and are taken from the payload
by JSON pointer. The connection string comes from an environment variable and never reaches a
message.
"""

from __future__ import annotations

import asyncio
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import (
    BackendError,
    BackendFault,
    BackendRejected,
    BackendTimeout,
    BackendUnauthorised,
    BackendUnavailable,
)
from legacy_adapters.mapping import MappingError, pointer_get


class OdbcConfig(BackendConfig):
    backend: Literal["odbc"] = "odbc"
    connection_env: str = Field(description="environment variable holding the ODBC connection string")
    statement: str = Field(
        description="SQL with ? markers, e.g. {CALL erp.create_order(?, ?)} or SELECT … WHERE id = ?"
    )
    params: list[str] = Field(default_factory=list, description="JSON pointers into the payload, one per ? marker")
    then: str | None = Field(
        default=None,
        description="a SELECT run on the same connection after the statement, whose rows are the result: "
        "reads back what an INSERT made where the driver has no RETURNING or OUTPUT",
    )
    then_params: list[str] = Field(default_factory=list, description="JSON pointers for the ? markers of `then`")
    result: Literal["rows", "row", "none"] = "rows"
    pool_size: int = Field(default=4, ge=1)


def plain(value: Any) -> Any:
    """A value the driver returned, as JSON carries it: numbers, ISO times, hex for bytes."""
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


class OdbcBackend(Registered):
    name = "odbc"
    Config = OdbcConfig

    def __init__(self, config: OdbcConfig) -> None:
        self.config = config
        self.retry_safe = config.statement.lstrip().lower().startswith("select")
        self._pool: ThreadPoolExecutor = ThreadPoolExecutor(max_workers=config.pool_size, thread_name_prefix="odbc")
        self._connections: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _connect(self) -> Any:
        import pyodbc

        connection = os.environ.get(self.config.connection_env)
        if not connection:
            raise BackendUnavailable(
                f"environment variable {self.config.connection_env} (the ODBC connection string) is not set"
            )
        try:
            return pyodbc.connect(connection, timeout=int(self.config.timeout), autocommit=True)
        except pyodbc.Error:
            raise BackendUnavailable("cannot connect to the ODBC backend") from None

    def _run(self, params: list[Any], then_params: list[Any]) -> list[dict[str, Any]]:
        import pyodbc

        try:
            connection = self._connections.get_nowait()
        except queue.Empty:
            connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(self.config.statement, params)
            if self.config.then is not None:
                cursor.execute(self.config.then, then_params)
            rows: list[dict[str, Any]] = []
            if cursor.description is not None and self.config.result != "none":
                names = [column[0] for column in cursor.description]
                rows = [dict(zip(names, (plain(v) for v in row), strict=True)) for row in cursor.fetchall()]
            cursor.close()
            self._connections.put(connection)
            return rows
        except (OverflowError, TypeError) as exc:  # pyodbc refused a value before sending: 2**64, a dict …
            self._connections.put(connection)
            raise BackendRejected(f"a value cannot be sent to the database: {exc}") from None
        except pyodbc.Error as exc:
            connection.close()
            state = str(exc.args[0]) if exc.args else ""
            message = str(exc.args[1]) if len(exc.args) > 1 else ""
            raise _classified(state, message) from None

    async def call(self, request: Call) -> Reply:
        try:
            params = [pointer_get(request.payload, pointer) for pointer in self.config.params]
            then_params = [pointer_get(request.payload, pointer) for pointer in self.config.then_params]
        except MappingError as exc:
            raise BackendRejected(f"missing parameter {exc}") from None
        for value in (*params, *then_params):
            if isinstance(value, str) and not _bindable(value):
                raise BackendRejected("a text value holds a NUL or a lone surrogate, which the database cannot store")
        loop = asyncio.get_running_loop()
        try:
            rows = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._run, params, then_params), self.config.timeout
            )
        except TimeoutError:
            raise BackendTimeout(f"the database gave no answer within {self.config.timeout:g} s") from None
        if self.config.result == "row":
            if not rows:
                return Reply(404, None)
            return Reply(200, rows[0])
        return Reply(200, rows if self.config.result == "rows" else None)

    async def close(self) -> None:
        while not self._connections.empty():
            self._connections.get_nowait().close()
        self._pool.shutdown(wait=False)


def _bindable(text: str) -> bool:
    """Drivers cut a string at a NUL (SQLite's stores "PO\\0X" as "PO") or fail on a lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# SQLSTATE classes (ISO/IEC 9075, and what the drivers add) and what they say about the call.
_NOT_MADE = ("40", "08001", "08004", "HYT01")  # rolled back (deadlock, serialization), never connected
_NOT_AUTHORISED = ("28", "42501")  # the gateway's login or grants
_REFUSED = ("22", "23", "P0")  # data and integrity errors, raised exceptions: the caller's values


def _classified(state: str, message: str) -> BackendError:
    """One database error as what it says about the call (errors.py's table)."""
    if state.startswith(_NOT_MADE) or "database is locked" in message:  # SQLite: SQLITE_BUSY, nothing written
        return BackendUnavailable(f"the database rolled the call back (SQLSTATE {state}): nothing was booked, retry")
    if state.startswith(_NOT_AUTHORISED):
        return BackendUnauthorised(f"the database refused the gateway's login or grants (SQLSTATE {state})")
    # SQLite's driver reports a violated constraint as a general error (HY000): its message tells.
    if state.startswith(_REFUSED) or "constraint failed" in message:
        return BackendRejected(f"the database refused the values (SQLSTATE {state})")
    if state.startswith("HYT"):
        return BackendTimeout(f"the database gave no answer in time (SQLSTATE {state})")
    return BackendFault(f"the database call failed (SQLSTATE {state})")
