"""Group commit on SQLite and on the real PostgreSQL: shared transactions, one failure kept to its caller."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cutover.commits import GroupCommit
from cutover.outbox import Outbox
from cutover.store import Store, StoreError


def _insert(store: Store, cursor: Any, n: int) -> int:
    return int(store.execute(cursor, "INSERT INTO cutover_freeze (entity, starts, ends, reason, actor) "
                             "VALUES (?, '', '', '', '') RETURNING id", (f"E{n}",)).fetchone()[0])  # fmt: skip


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
