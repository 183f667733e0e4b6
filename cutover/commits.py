"""Group commit: the writes of many concurrent requests, committed to the store together.

A write route in dual_write records an intent before its serving call and its outcome after; each
must be durable before the request goes on. Committed one by one from the executor's threads, they
queue for SQLite's write lock (or PostgreSQL's round trips) and every request pays for the others'
commits. Here one thread owns the writing: operations that arrive while a transaction commits wait
for the next one, which takes them all. A surge makes the transactions larger, not more numerous.

An operation is a function of a cursor (and its arguments) that only touches the database. When
one raises, its transaction is rolled back and the others are committed again without it, so one
bad operation costs only its own caller an error.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cutover.store import Store, StoreError

log = logging.getLogger("banyan.cutover")
T = TypeVar("T")
MAX_BATCH = 256


@dataclass
class _Operation:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(results: list[tuple[_Operation, bool, Any]]) -> None:
    """On the event loop: hand each operation's result (or error) to its caller, unless it gave up."""
    for operation, ok, value in results:
        if operation.future.done():  # its request was cancelled meanwhile; the write stands
            continue
        if ok:
            operation.future.set_result(value)
        else:
            operation.future.set_exception(value)


class GroupCommit:
    """One writer thread for a store; `await run(function, *args)` returns once the write is committed."""

    def __init__(self, store: Store, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: deque[_Operation] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="store-writer", daemon=True)
        self._thread.start()
        self.transactions = 0  # for the curious: writes ÷ transactions is the batching achieved
        self.writes = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(cursor, *args)` in the next transaction; its result once committed.
        A store that cannot commit raises StoreError; the function's own exception is raised as is."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._ready:
            if self._stopping:
                raise StoreError("the gateway is stopping and records no more writes: send it again to another one")
            self._queue.append(_Operation(function, args, future, loop))
            self._ready.notify()
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout)

    def _work(self) -> None:
        try:
            self.store.become_writer()
        except Exception as exc:  # the store is not there yet: the first transaction will say so
            log.warning("store writer: %s", exc)
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            self._commit(batch)

    def _commit(self, batch: list[_Operation]) -> None:
        results: list[tuple[_Operation, bool, Any]] = []
        while batch:
            done: list[tuple[_Operation, bool, Any]] = []
            failed: _Operation | None = None
            try:
                with self.store.transaction() as cursor:
                    for operation in batch:
                        failed = operation
                        done.append((operation, True, operation.function(cursor, *operation.args)))
                    failed = None
            except (StoreError, sqlite3.OperationalError) as exc:  # the store failed: every operation did
                results += [(operation, False, exc) for operation in batch]
                break
            except Exception as exc:  # one operation failed: it alone gets the error, the rest go again
                if failed is None:
                    results += [(operation, False, StoreError(str(exc))) for operation in batch]
                    break
                results.append((failed, False, exc))
                batch = [operation for operation in batch if operation is not failed]
                continue
            results += done
            self.transactions += 1
            self.writes += len(done)
            break
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Operation, bool, Any]]] = {}
        for result in results:
            by_loop.setdefault(result[0].loop, []).append(result)
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                log.debug("store writer: %d results for a closed event loop", len(settled))
