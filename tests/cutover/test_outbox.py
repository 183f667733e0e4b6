"""The outbox on SQLite and on the real PostgreSQL: states, leases, backoff, dead letters, recovery."""

from __future__ import annotations

import time

import pytest

from cutover.outbox import _DUE, LEASE_SECONDS, Outbox, OutboxError, idempotency_key
from cutover.store import Store, open_store


def intend(outbox: Outbox, n: int = 1) -> int:
    key = idempotency_key("order-create", "ACME-DE", None, f"corr-{n}")
    return outbox.intend("order-create", "ACME-DE", f"PO-{n}", "cloud", "ACME-DE@1", {"payload": {"n": n}}, key)


def test_a_write_goes_intent_pending_delivered(store: Store) -> None:
    outbox = Outbox(store)
    message_id = intend(outbox)
    assert outbox.claim("gw-a") == []  # an intent is not deliverable: the serving call has not answered
    outbox.settle(message_id, "pending", served={"orderId": "1"})
    [claimed] = outbox.claim("gw-a")
    assert claimed.call == {"payload": {"n": 1}} and claimed.served == {"orderId": "1"}
    assert outbox.claim("gw-b") == []  # leased to gw-a
    outbox.delivered(message_id)
    assert outbox.counts()["delivered"] == 1 and outbox.claim("gw-b", now=time.time() + 3600) == []


def test_refused_and_unknown_outcomes(store: Store) -> None:
    outbox = Outbox(store)
    refused, unknown = intend(outbox, 1), intend(outbox, 2)
    outbox.settle(refused, "cancelled", error="422 from legacy")
    outbox.settle(unknown, "in_doubt", error="timed out")
    assert {m.id: m.state for m in outbox.list()} == {refused: "cancelled", unknown: "in_doubt"}
    assert outbox.claim("gw") == []


def test_failures_back_off_then_go_dead(store: Store) -> None:
    outbox = Outbox(store)
    message_id = intend(outbox)
    outbox.settle(message_id, "pending")
    states = []
    for _ in range(3):
        [message] = outbox.claim("gw", now=time.time() + 10_000)
        states.append(outbox.failed(message, "503 from the cloud", max_attempts=3))
    assert states == ["pending", "pending", "dead"]
    dead = outbox.get(message_id)
    assert dead.attempts == 3 and dead.last_error == "503 from the cloud"
    [message] = outbox.list("dead")
    assert message.next_at > time.time()  # the backoff pushed it out


def test_a_crash_leaves_in_doubt_not_lost_not_retried(store: Store) -> None:
    outbox = Outbox(store)
    message_id = intend(outbox)
    assert outbox.recover(older_than=60) == 0  # a fresh intent may still be completing
    assert outbox.recover(older_than=-1) == 1
    assert outbox.get(message_id).state == "in_doubt" and outbox.claim("gw") == []


def test_replay_and_discard_need_a_reason_and_are_audited(store: Store) -> None:
    outbox = Outbox(store)
    first, second = intend(outbox, 1), intend(outbox, 2)
    outbox.recover(older_than=-1)
    with pytest.raises(OutboxError, match="needs a reason"):
        outbox.replay(first, " ", "ana")
    assert outbox.replay(first, "the cloud has no PO-1: checked", "ana").state == "pending"
    assert outbox.discard(second, "PO-2 was keyed in by hand", "ana").state == "discarded"
    with pytest.raises(OutboxError, match="only in_doubt or dead"):
        outbox.discard(second, "again", "ana")
    with pytest.raises(OutboxError, match="no outbox message 999"):
        outbox.replay(999, "x", "ana")
    assert [e.kind for e in store.history()] == ["outbox_discard", "outbox_replay"]
    [pending] = outbox.claim("gw")
    assert pending.idempotency_key == idempotency_key("order-create", "ACME-DE", None, "corr-1")  # the same key


def test_two_workers_never_claim_the_same_message(store_location: str) -> None:
    a, b = Outbox(open_store(store_location)), Outbox(open_store(store_location))
    ids = [intend(a, n) for n in range(30)]
    for message_id in ids:
        a.settle(message_id, "pending")
    claimed = [m.id for m in a.claim("a", limit=20)] + [m.id for m in b.claim("b", limit=20)]
    assert sorted(claimed) == ids
    a.store.close()
    b.store.close()


def test_idempotency_keys() -> None:
    assert idempotency_key("r", "E", "abc", "c1") == idempotency_key("r", "E", "abc", "c2")  # the consumer's key wins
    assert idempotency_key("r", "E", None, "c1") != idempotency_key("r", "E", None, "c2")
    assert idempotency_key("r", "E", "abc", "c1") != idempotency_key("r", "F", "abc", "c1")


def test_a_keys_writes_reach_the_other_side_in_order(store: Store) -> None:
    outbox = Outbox(store)
    create = outbox.intend("order-put", "ACME-DE", "PO-7", "cloud", "r", {"payload": "create"}, "k1")
    update = outbox.intend("order-put", "ACME-DE", "PO-7", "cloud", "r", {"payload": "update"}, "k2")
    other = outbox.intend("order-put", "ACME-DE", "PO-8", "cloud", "r", {"payload": "other"}, "k3")
    for message_id in (create, update, other):
        outbox.settle(message_id, "pending")
    assert [m.id for m in outbox.claim("gw")] == [create, other]  # PO-7's update waits for its create
    outbox.failed(outbox.get(create), "503")
    outbox.delivered(other)
    later = time.time() + 10_000
    assert [m.id for m in outbox.claim("gw", now=later)] == [create]  # still not the update
    outbox.delivered(create)
    assert [m.id for m in outbox.claim("gw", now=later + 60)] == [update]  # after the lease on create


def test_a_hot_keys_history_does_not_hold_its_writes_back(store: Store) -> None:
    """One big customer's key: a long delivered history, then a backlog; the head goes first, in order."""
    outbox = Outbox(store)
    history = [outbox.intend("order-put", "ACME-DE", "HOT", "cloud", "r", {"n": n}, f"h{n}") for n in range(300)]
    for message_id in history:
        outbox.settle(message_id, "pending")
        outbox.delivered(message_id)
    backlog = [outbox.intend("order-put", "ACME-DE", "HOT", "cloud", "r", {"n": n}, f"b{n}") for n in range(50)]
    for message_id in backlog:
        outbox.settle(message_id, "pending")
    delivered = []
    moment = time.time()
    while len(delivered) < len(backlog):
        claimed = outbox.claim("gw", now=moment)
        assert len(claimed) == 1  # a key's writes one at a time
        outbox.delivered(claimed[0].id)
        delivered.append(claimed[0].id)
        moment += LEASE_SECONDS + 1
    assert delivered == backlog


def test_what_is_due_is_read_from_the_heads_and_the_next_head_through_the_unfinished_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(str(tmp_path / "plan.db"))
    with store.transaction() as cursor:
        due = cursor.execute("EXPLAIN QUERY PLAN " + _DUE["sqlite"].format(limit=32), (1, 1)).fetchall()
        head = cursor.execute(
            "EXPLAIN QUERY PLAN SELECT MIN(id) FROM cutover_outbox WHERE route = 'r' AND entity = 'e' "
            "AND business_key = 'k' AND state IN ('intent', 'pending', 'in_doubt', 'dead')"
        ).fetchall()
    plan = " ".join(str(row) for row in due)
    assert "SCAN h" in plan and "SEARCH o USING INTEGER PRIMARY KEY" in plan  # one row per queue, not the backlog
    assert "cutover_outbox_unfinished" in " ".join(str(row) for row in head)


def test_on_postgresql_what_is_due_is_read_from_the_heads_however_long_the_backlog(postgres_url: str) -> None:
    """A surge's backlog (one hot key's 3,000 pending copies) and stale statistics: still one lookup by
    id per queue head, never a walk over the pending messages and a sort."""
    store = open_store(postgres_url)
    outbox = Outbox(store)
    with store.transaction() as cursor:
        store.execute(cursor, "ANALYZE cutover_outbox")  # statistics of an empty table, as before a surge
        calls = [
            ("order-put", "ACME-DE", "HOT" if n < 3000 else f"PO-{n}", "cloud", "r", {}, f"k{n}", "pending")
            for n in range(3010)
        ]
        outbox.intend_many_in(cursor, calls)
    with store.reading() as cursor:
        plan = " ".join(
            row[0] for row in store.execute(cursor, "EXPLAIN " + _DUE["postgres"].format(limit=8), (1e12, 1e12))
        )
    assert "cutover_outbox_pkey" in plan and "cutover_outbox_due" not in plan, plan
    assert [m.business_key for m in outbox.due(limit=3)] == ["HOT", "PO-3000", "PO-3001"]
    store.close()


def test_a_refused_or_discarded_head_lets_its_key_go_on(store: Store) -> None:
    outbox = Outbox(store)
    first, second, third = (
        outbox.intend("order-put", "ACME-DE", "PO-9", "cloud", "r", {"n": n}, f"k{n}") for n in range(3)
    )
    outbox.settle(first, "cancelled", error="422 from legacy")  # never to be delivered: not a head any more
    outbox.settle(second, "in_doubt", error="timed out")  # waits for a person, and holds PO-9 back
    outbox.settle(third, "pending")
    assert outbox.claim("gw") == []
    outbox.discard(second, "keyed in by hand", "ana")
    assert [m.id for m in outbox.claim("gw")] == [third]


def test_lost_heads_are_repaired(store: Store) -> None:
    """Two gateways recording and finishing one key at the same instant can miss each other's head."""
    outbox = Outbox(store)
    message_id = intend(outbox)
    outbox.settle(message_id, "pending")
    with store.transaction() as cursor:
        store.execute(cursor, "DELETE FROM cutover_outbox_heads")
        store.execute(cursor, "INSERT INTO cutover_outbox_heads VALUES (12345, 'r', 'e', 'gone')")
    assert outbox.claim("gw") == []
    assert outbox.repair_heads() == 2  # the stale one dropped, the missing one made
    assert [m.id for m in outbox.claim("gw")] == [message_id]
    assert outbox.repair_heads() == 0


def test_writes_without_a_business_key_go_out_without_waiting_for_each_other(store: Store) -> None:
    outbox = Outbox(store)
    ids = [outbox.intend("order-create", "ACME-DE", None, "cloud", "r", {"n": n}, f"k{n}") for n in range(3)]
    for message_id in ids:
        outbox.settle(message_id, "pending")
    assert [m.id for m in outbox.claim("gw")] == ids


def test_finished_messages_are_pruned_and_unfinished_ones_kept(store: Store) -> None:
    outbox = Outbox(store)
    done, refused, doubtful = intend(outbox, 1), intend(outbox, 2), intend(outbox, 3)
    outbox.settle(done, "pending")
    outbox.delivered(done)
    outbox.settle(refused, "cancelled")
    outbox.settle(doubtful, "in_doubt")
    assert outbox.prune(older_than=3600) == 0  # all young
    assert outbox.prune(older_than=3600, now=time.time() + 7200) == 2
    assert [m.id for m in outbox.list()] == [doubtful]


def test_many_copies_in_one_call_keep_their_order_and_their_keys_queues(store: Store) -> None:
    """`intend_many_in`, `settle_many_in` and `delivered_many_in` (one statement each on PostgreSQL):
    ids in the order of the calls, the first copy of a key heads it, copies without a key each their own."""
    outbox = Outbox(store)
    keys = ["PO-1", "PO-2", "PO-1", None, None, "PO-2"]
    with store.transaction() as cursor:
        ids = outbox.intend_many_in(
            cursor, [("order-put", "ACME-DE", key, "cloud", "r", {"n": n}, f"k{n}") for n, key in enumerate(keys)]
        )
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [outbox.get(i).call for i in ids] == [{"n": n} for n in range(6)]
    assert all(outbox.get(i).served is None and outbox.get(i).business_key == k for i, k in zip(ids, keys, strict=True))
    with store.transaction() as cursor:  # PO-1's first copy refused: its second heads PO-1 now
        outbox.settle_many_in(
            cursor, [(ids[0], "cancelled", None, "409"), *((i, "pending", {"ok": i}) for i in ids[1:])]
        )
    assert outbox.get(ids[0]).state == "cancelled" and outbox.get(ids[1]).served == {"ok": ids[1]}
    due = outbox.due(limit=10)
    assert [m.id for m in due] == [ids[1], ids[2], ids[3], ids[4]]  # PO-2's second waits for its first
    with store.transaction() as cursor:
        outbox.delivered_many_in(cursor, [(m.id,) for m in due])
    assert [m.id for m in outbox.due(limit=10)] == [ids[5]]
    with store.transaction() as cursor:
        outbox.delivered_many_in(cursor, [(ids[5],)])
    assert outbox.due(limit=10) == [] and outbox.counts()["delivered"] == 5
    assert outbox.repair_heads() == 0  # nothing left for the repair to mend


def test_a_heads_next_writes_are_leased_as_a_run_up_to_the_first_not_ready(store: Store) -> None:
    outbox = Outbox(store)
    ids = [outbox.intend("order-put", "ACME-DE", "PO-7", "cloud", "r", {"payload": n}, f"k{n}") for n in range(6)]
    other = outbox.intend("order-put", "ACME-DE", "PO-8", "cloud", "r", {"payload": "other"}, "k-other")
    for message_id in (*ids[:3], ids[4], other):  # ids[3] is still an intent: its serving call has not answered
        outbox.settle(message_id, "pending")
    [head, _] = outbox.claim("gw")
    assert head.id == ids[0]
    run = outbox._once(outbox.lease_run_in, head, 10)
    assert [m.id for m in run] == ids[1:3] and run[0].call == {"payload": 1}  # up to the intent, none skipped
    assert outbox._once(outbox.lease_run_in, head, 10) == []  # leased: no other worker takes them meanwhile
    assert outbox._once(outbox.lease_run_in, head, 1, time.time() + LEASE_SECONDS + 1)[0].id == ids[1]  # longest
    outbox._once(outbox.release_in, run)  # not delivered after all: claimable again at once
    assert [m.id for m in outbox._once(outbox.lease_run_in, head, 10)] == ids[1:3]
    for message in (head, *run):
        outbox.delivered(message.id)
    outbox.settle(ids[3], "pending")
    [next_head] = outbox.claim("gw")
    assert next_head.id == ids[3] and [m.id for m in outbox._once(outbox.lease_run_in, next_head, 10)] == [ids[4]]


def test_an_accepted_write_whose_gateway_died_while_making_it_is_in_doubt(store: Store) -> None:
    """Leased, sent, and no outcome recorded (SIGKILL mid-drain): once its lease runs out it is not
    made again — the side may have booked it — but waits, in doubt, for a person."""
    outbox = Outbox(store)
    call = {"payload": {"qty": 1}, "consumer": "webshop"}
    made, crashed = (
        outbox._once(
            outbox.accept_in, "order-create", "ACME-US", f"PO-{n}", "legacy", "ACME-US@0", call, f"k-{n}", f"token-{n}"
        )
        for n in (1, 2)
    )
    now = max(outbox.get(made).next_at, outbox.get(crashed).next_at)  # when both were due: no clock read
    assert {m.id for m in outbox.claim("gw-a", now=now)} == {made, crashed}
    outbox.failed(outbox.get(made), "503 Backend unavailable: not made")  # an outcome: due again later
    later = now + LEASE_SECONDS + 1
    assert [m.id for m in outbox.due(now=later + 3600)] == [made]  # the crashed one is never due again
    assert outbox.recover(now=later) == 1
    doubtful = outbox.accepted("token-2")
    assert doubtful is not None and doubtful.state == "in_doubt" and "unknown" in doubtful.last_error
    assert outbox.get(made).state == "pending"
