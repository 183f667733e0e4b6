"""Group commit: the writes of many concurrent requests, committed to the store together.

A write route in dual_write records an intent before its serving call and its outcome after; each
must be durable before the request goes on. Committed one by one from the executor's threads, they
queue for SQLite's write lock (or PostgreSQL's round trips) and every request pays for the others'
commits. Here one thread owns the writing: operations that arrive while a transaction commits wait
for the next one, which takes them all. A surge makes the transactions larger, not more numerous.

On SQLite the transaction is made on the event loop itself when the store's lock is free at that
instant (`SqliteStore.transaction_now`): the operations that arrived in one turn of the loop are
committed at the end of it, which costs a WAL append and no thread (writes no request waits for go
to the thread with `background`). Handing each one to the writer thread and back cost more than
the commit, and under load the thread waited for the interpreter lock behind whatever request the
loop was running: most of a dual write's p99. When another connection holds the lock (the writer
thread's own, another worker, the CLI), the batch goes to the writer thread, which waits for it —
the loop never does — and the batches after it follow it there until it is committed: `run`
commits operations in the order it is called, which is the order a business key's writes are
served in.

An operation is a function of a cursor (and its arguments) that only touches the database. When
one raises, its transaction is rolled back and the others are committed again without it, so one
bad operation costs only its own caller an error.

An operation marked `@merged(many)` is made, with the others of its kind in the same transaction,
as one call of `many`: on PostgreSQL that is one statement for a batch's copies instead of one each.
The writer thread is then not waiting on a round trip per write — each of which, while the event
loop keeps the interpreter lock busy, cost it a wait for the lock too (0.6–1 ms a statement at
capacity, where PostgreSQL answers in 0.1).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from cutover.store import Busy, Store, StoreError

log = logging.getLogger("banyan.cutover")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
MAX_BATCH = 256


@dataclass
class _Operation:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    ordered: bool = True  # a request's write (`run`): committed in the order of the calls


def merged(many: Callable[..., list[Any]]) -> Callable[[F], F]:
    """Mark an operation whose calls in one transaction may be made as one: `many(cursor, calls)`
    takes each call's arguments (after the cursor), in the order of the calls, and returns their
    results in that order; a method's `many` is a method of the same object. They are made where the
    first of them was in the batch, so `many` must not depend on the batch's other operations having
    run before it (and they must not depend on its rows): operations of different requests that
    touch different rows, or the same rows in a way whose order does not matter. When `many` raises,
    the calls are made one by one, so the one that fails is the one that gets the error."""

    def mark(function: F) -> F:
        function.many = many  # type: ignore[attr-defined]
        return function

    return mark


def _kind(function: Callable[..., Any]) -> tuple[Any, int] | None:
    """What calls of `function` are merged by: the same function on the same object; None if never."""
    if getattr(function, "many", None) is None:
        return None
    return getattr(function, "__func__", function), id(getattr(function, "__self__", None))


def _many(function: Callable[..., Any]) -> Callable[..., list[Any]]:
    many = function.many  # type: ignore[attr-defined]
    owner = getattr(function, "__self__", None)
    return cast(Callable[..., list[Any]], many.__get__(owner) if owner is not None else many)


def _steps(batch: list[_Operation], alone: set[int]) -> list[list[_Operation]]:
    """The batch as the transaction makes it: each operation on its own, but those of one merged
    kind together, at the place of the first of them (unless `alone` holds them: made one by one)."""
    steps: list[list[_Operation]] = []
    together: dict[tuple[Any, int], list[_Operation]] = {}
    for operation in batch:
        kind = None if id(operation) in alone else _kind(operation.function)
        if kind is None:
            steps.append([operation])
        elif kind in together:
            together[kind].append(operation)
        else:
            together[kind] = [operation]
            steps.append(together[kind])
    return steps


def _make(cursor: Any, step: list[_Operation]) -> list[Any]:
    """A step's results: its one operation's, or those of its merged call."""
    if len(step) == 1:
        return [step[0].function(cursor, *step[0].args)]
    return _many(step[0].function)(cursor, [operation.args for operation in step])


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
    """A store's writes, grouped: on the event loop while SQLite's lock is free, else by one writer
    thread; `await run(function, *args)` returns once the write is committed."""

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
        self.here = 0  # transactions made on the event loop (the rest, by the writer thread)
        self._here: list[_Operation] = []  # this turn of the loop's operations (SQLite)
        self._with_thread = 0  # `run` operations handed to the writer thread and not yet settled
        # a process that serves no requests (the gateway's deliverer) has no loop to keep free: its
        # background writes go the way of `run`, on the loop while the lock is free, with no thread hop
        self.background_on_loop = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(cursor, *args)` in the next transaction; its result once committed.
        A store that cannot commit raises StoreError; the function's own exception is raised as is."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        operation = _Operation(function, args, future, loop)
        # on the loop unless earlier ones wait for the thread: `run` commits in the order it is called
        # (a key's writes serve in the order their copies were recorded: gateway/request.py)
        if self.store.writes_now and not self._stopping and not self._with_thread:
            self._here.append(operation)
            if len(self._here) == 1:  # the first of this turn of the loop: commit them all at its end
                loop.call_soon(self._commit_here)
        else:
            self._hand_over([operation])
        return await future

    async def background(self, function: Callable[..., T], *args: Any) -> T:
        """`run` for a write no request waits for (the outbox worker's, the evidence flush): always
        by the writer thread, so the loop spends no time, and risks no wait on the disk, for it."""
        if self.background_on_loop:
            return await self.run(function, *args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._hand_over([_Operation(function, args, future, loop, ordered=False)])
        return await future

    def _hand_over(self, operations: list[_Operation]) -> None:
        with self._ready:
            if self._stopping:
                error = StoreError("the gateway is stopping and records no more writes: send it again to another one")
                _settle([(operation, False, error) for operation in operations])
                return
            self._queue.extend(operations)
            self._with_thread += sum(operation.ordered for operation in operations)
            self._ready.notify()

    def _commit_here(self) -> None:
        """On the event loop: this turn's operations in one transaction, if the lock is free now."""
        batch, self._here = self._here[: self.max_batch], self._here[self.max_batch :]
        if self._here:
            batch[0].loop.call_soon(self._commit_here)
        if self._with_thread:  # an earlier batch waits for the lock in the thread: this one goes after it
            self._hand_over(batch)
            return
        before = self.transactions
        results, left = self._transact(batch, self.store.transaction_now)
        self.here += self.transactions - before
        _settle(results)
        if left:  # another connection writes: the writer thread waits for the lock instead of the loop
            self._hand_over(left)

    def _settle_from_thread(self, results: list[tuple[_Operation, bool, Any]]) -> None:
        self._with_thread -= sum(operation.ordered for operation, _, _ in results)
        _settle(results)

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
        results, _ = self._transact(batch, self.store.transaction)  # waits for the lock: nothing left over
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Operation, bool, Any]]] = {}
        for result in results:
            by_loop.setdefault(result[0].loop, []).append(result)
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle_from_thread, settled)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                log.debug("store writer: %d results for a closed event loop", len(settled))

    def _transact(
        self, batch: list[_Operation], transaction: Callable[[], AbstractContextManager[Any]]
    ) -> tuple[list[tuple[_Operation, bool, Any]], list[_Operation]]:
        """Each operation's result (or error), all in one transaction, one failing alone; and the
        operations left over when `transaction_now` found the lock taken."""
        results: list[tuple[_Operation, bool, Any]] = []
        alone: set[int] = set()  # operations of a merged call that failed: made one by one now
        while batch:
            done: list[tuple[_Operation, bool, Any]] = []
            failed: list[_Operation] | None = None
            try:
                with transaction() as cursor:
                    for step in _steps(batch, alone):
                        failed = step
                        made = _make(cursor, step)
                        done += [(operation, True, result) for operation, result in zip(step, made, strict=True)]
                    failed = None
            except Busy:  # raised at BEGIN, before any operation ran: the rest waits for the lock elsewhere
                return results, batch
            except (StoreError, sqlite3.OperationalError) as exc:  # the store failed: every operation did
                results += [(operation, False, exc) for operation in batch]
                break
            except Exception as exc:  # one operation failed: it alone gets the error, the rest go again
                if failed is None:
                    results += [(operation, False, StoreError(str(exc))) for operation in batch]
                    break
                if len(failed) > 1:  # one of a merged call: which one is found by making them one by one
                    alone.update(id(operation) for operation in failed)
                    continue
                results.append((failed[0], False, exc))
                batch = [operation for operation in batch if operation is not failed[0]]
                continue
            results += done
            self.transactions += 1
            self.writes += len(done)
            break
        return results, []
