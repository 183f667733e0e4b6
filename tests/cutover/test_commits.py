"""Group commit on SQLite and on the real PostgreSQL: shared transactions, one failure kept to its caller;
on SQLite, made on the event loop while the lock is free and never waiting for it there."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cutover.commits import GroupCommit, merged
from cutover.outbox import Outbox
from cutover.store import Store, StoreError, open_store
from events.log import EventLog
from gateway import route_events


def _insert(store: Store, cursor: Any, n: int) -> int:
    return int(
        store.execute(
            cursor,
            "INSERT INTO cutover_freeze (entity, starts, ends, reason, actor) VALUES (?, '', '', '', '') RETURNING id",
            (f"E{n}",),
        ).fetchone()[0]
    )


def test_concurrent_writes_share_transactions_and_all_land(store: Store) -> None:
    commits = GroupCommit(store)

    async def main() -> list[int]:
        return await asyncio.gather(*(commits.run(lambda c, n=n: _insert(store, c, n)) for n in range(500)))

    ids = asyncio.run(main())
    commits.close()
    assert len(set(ids)) == 500
    assert sorted(f.entity for f in store.freezes()) == sorted(f"E{n}" for n in range(500))
    assert commits.writes == 500 and commits.transactions < 500  # they were grouped


def test_one_failing_operation_fails_alone(store: Store) -> None:
    commits = GroupCommit(store)

    def bad(cursor: Any) -> None:
        _insert(store, cursor, 999)  # written, then rolled back with its transaction
        raise ValueError("this one is wrong")

    async def main() -> list[Any]:
        calls = [commits.run(lambda c, n=n: _insert(store, c, n)) for n in range(20)]
        calls.insert(7, commits.run(bad))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    commits.close()
    assert isinstance(results[7], ValueError)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 7)
    assert sorted(f.entity for f in store.freezes()) == sorted(f"E{n}" for n in range(20))  # no E999


def test_a_store_that_cannot_commit_fails_every_waiting_write(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def down() -> Iterator[Any]:
        raise StoreError("the store is down")
        yield

    monkeypatch.setattr(store, "transaction", down)
    monkeypatch.setattr(store, "transaction_now", down)
    commits = GroupCommit(store)

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(commits.run(lambda c, n=n: _insert(store, c, n)) for n in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    commits.close()
    assert len(results) == 3 and all(isinstance(r, StoreError) for r in results)


def test_a_stopped_writer_refuses_new_writes(store: Store) -> None:
    commits = GroupCommit(store)
    commits.close()
    with pytest.raises(StoreError, match="the gateway is stopping"):
        asyncio.run(commits.run(lambda c: _insert(store, c, 1)))


def test_outbox_writes_through_the_group_commit_keep_per_key_order(store: Store) -> None:
    """64 concurrent writers on one key, intents and outcomes grouped: every write once, in intent order."""
    outbox, commits = Outbox(store), GroupCommit(store)

    async def write(n: int) -> int:
        message_id = await commits.run(outbox.intend_in, "order-put", "ACME-DE", "HOT", "cloud", "r", {"n": n}, f"k{n}")
        await commits.run(outbox.settle_in, message_id, "pending", {"n": n}, "")
        return message_id

    async def main() -> list[int]:
        return await asyncio.gather(*(write(n) for n in range(64)))

    ids = asyncio.run(main())
    delivered = []
    while claimed := outbox.claim("gw"):
        assert len(claimed) == 1  # the hot key's writes one at a time
        outbox.delivered(claimed[0].id)
        delivered.append(claimed[0].id)
    commits.close()
    assert delivered == sorted(ids) and outbox.counts()["delivered"] == 64


def test_on_sqlite_a_turn_of_the_loop_commits_its_writes_there(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "store.db"))
    commits = GroupCommit(store)

    async def main() -> list[int]:
        return await asyncio.gather(*(commits.run(lambda c, n=n: _insert(store, c, n)) for n in range(100)))

    assert len(set(asyncio.run(main()))) == 100
    commits.close()
    assert commits.here == commits.transactions < 100  # grouped, and no hand-over to the writer thread

    async def behind() -> list[int]:  # writes no request waits for: the writer thread's
        return await asyncio.gather(*(commits.background(lambda c, n=n: _insert(store, c, n)) for n in range(10)))

    commits = GroupCommit(store)
    assert len(asyncio.run(behind())) == 10
    commits.close()
    assert commits.here == 0 and commits.writes == 10
    store.close()


def test_a_lock_another_connection_holds_is_waited_for_by_the_writer_thread_not_the_loop(tmp_path: Path) -> None:
    """Another worker (or the CLI) in the middle of a write: the loop goes on serving meanwhile,
    and the write lands once the lock is free."""
    store = open_store(str(tmp_path / "store.db"))
    commits = GroupCommit(store)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    released = threading.Event()

    async def main() -> tuple[int, int, bool]:
        write = asyncio.ensure_future(commits.run(lambda c: _insert(store, c, 1)))
        ticks = 0
        for _ in range(5):  # the loop is free: it ticks while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        waiting = not write.done()
        threading.Thread(target=lambda: (other.execute("COMMIT"), released.set())).start()
        return await write, ticks, waiting

    written, ticks, waited = asyncio.run(main())
    commits.close()
    assert released.is_set() and ticks == 5 and waited
    assert [f.entity for f in store.freezes()] == ["E1"] and written > 0
    assert commits.here == 0 and commits.transactions == 1  # made by the writer thread
    other.close()
    store.close()


def test_writes_commit_in_the_order_they_were_run_when_one_waits_for_the_lock(tmp_path: Path) -> None:
    """A write that found the lock taken waits in the writer thread; one run after it, once the lock
    is free, must not commit on the loop before it: a business key's writes are served in the order
    their copies were recorded (gateway/request.py), and the outbox delivers them in id order."""
    store = open_store(str(tmp_path / "store.db"))
    commits = GroupCommit(store)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock

    async def main() -> tuple[int, int]:
        first = asyncio.ensure_future(commits.run(lambda c: _insert(store, c, 1)))
        await asyncio.sleep(0.05)  # it found the lock taken: the writer thread waits for it
        other.execute("COMMIT")  # free now, while the thread's busy handler still sleeps
        second = asyncio.ensure_future(commits.run(lambda c: _insert(store, c, 2)))
        return await first, await second

    first, second = asyncio.run(main())
    commits.close()
    assert first < second  # ids follow the order of the calls
    assert [f.entity for f in sorted(store.freezes(), key=lambda f: f.id)] == ["E1", "E2"]
    other.close()
    store.close()


def test_merged_operations_are_made_as_one_call_and_a_failing_one_fails_alone(store: Store) -> None:
    """`@merged`: a batch's calls of one kind become one call of `many`, results back in order; when
    that call raises, they are made one by one and only the bad one gets the error."""
    merged_calls: list[int] = []

    def insert_many(cursor: Any, calls: list[tuple[int]]) -> list[int]:
        merged_calls.append(len(calls))
        return [insert(cursor, n) for (n,) in calls]

    @merged(insert_many)
    def insert(cursor: Any, n: int) -> int:
        if n == 13:
            raise ValueError("13 is refused")
        return _insert(store, cursor, n)

    commits = GroupCommit(store)

    async def main() -> list[Any]:
        return await asyncio.gather(*(commits.run(insert, n) for n in range(40)), return_exceptions=True)

    results = asyncio.run(main())
    commits.close()
    assert max(merged_calls) > 1  # made together
    assert isinstance(results[13], ValueError)
    assert all(isinstance(r, int) for n, r in enumerate(results) if n != 13)
    entities = {f.id: f.entity for f in store.freezes()}
    assert [entities[r] for n, r in enumerate(results) if n != 13] == [f"E{n}" for n in range(40) if n != 13]


def test_the_outbox_writes_of_a_batch_are_merged(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies, settlements and deliveries of concurrent writes, each kind made together."""
    outbox, commits, events = Outbox(store), GroupCommit(store), EventLog(store)
    merged_sizes: dict[str, list[int]] = {}
    for operation in (Outbox.intend_in, route_events.settle_and_record, Outbox.delivered_in):
        many = operation.many  # type: ignore[attr-defined]

        def counted(*args: Any, many: Any = many) -> Any:
            merged_sizes.setdefault(many.__name__, []).append(len(args[-1]))
            return many(*args)

        monkeypatch.setattr(operation, "many", counted)

    async def write(n: int) -> int:
        message_id = await commits.run(
            outbox.intend_in, "order-put", "ACME-DE", f"PO-{n % 5}", "cloud", "r", {"n": n}, f"k{n}"
        )
        outcome = "pending" if n % 7 else "cancelled"
        await commits.run(route_events.settle_and_record, outbox, events, message_id, outcome, {"n": n}, "", [])
        return message_id

    async def main() -> list[int]:
        ids = await asyncio.gather(*(write(n) for n in range(60)))
        while due := outbox.due(limit=100):
            await asyncio.gather(*(commits.background(outbox.delivered_in, m.id) for m in due))
        return ids

    ids = asyncio.run(main())
    commits.close()
    assert sorted(merged_sizes) == ["delivered_many_in", "intend_many_in", "settle_and_record_many"]
    assert all(max(sizes) > 1 for sizes in merged_sizes.values()), merged_sizes
    counts = outbox.counts()
    assert counts["cancelled"] == 9 and counts["delivered"] == 51 and counts["pending"] == 0
    assert len(outbox.list(limit=100)) == len(set(ids)) == 60
