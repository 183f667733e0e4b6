"""The shared store on SQLite and on the real PostgreSQL: versions, audit, evidence, change signals."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from cutover.decide import Mode, Rule, Side
from cutover.gates import Counters
from cutover.store import MIGRATIONS, Conflict, Store, StoreError, open_store

EVENT = {"kind": "set", "from_mode": "legacy", "to_mode": "shadow", "reason": "test", "evidence": {"n": 1}}


def test_migrations_are_versioned_and_idempotent(store: Store, store_location: str) -> None:
    again = open_store(store_location)  # a second gateway starting on the same store
    assert again.migrate() == len(MIGRATIONS)
    with store.transaction() as cursor:
        versions = [row[0] for row in store.execute(cursor, "SELECT version FROM schema_migrations").fetchall()]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    again.close()


def test_versioned_update_refuses_a_stale_writer(store: Store) -> None:
    first = store.put_rule(Rule("orders.get", "acme-us", Mode.shadow), 0, "ana", EVENT)
    assert first.version == 1
    # two leads both read version 1; the first to write wins, the second is told, not overwritten
    store.put_rule(Rule("orders.get", "acme-us", Mode.dual_write), 1, "ana", EVENT)
    with pytest.raises(Conflict, match="changed since version 1"):
        store.put_rule(Rule("orders.get", "acme-us", Mode.legacy), 1, "ben", EVENT)
    with pytest.raises(Conflict, match="set by someone else"):
        store.put_rule(Rule("orders.get", "acme-us", Mode.legacy), 0, "ben", EVENT)
    assert store.rule("orders.get", "acme-us") == Rule("orders.get", "acme-us", Mode.dual_write, version=2)
    assert [e.actor for e in store.history()] == ["ana", "ana"]


def test_pins_round_trip(store: Store) -> None:
    store.put_rule(Rule("orders.get", "acme-us", Mode.canary, 5, {"SO-1": Side.cloud}), 0, "ana", EVENT)
    rule = store.rule("orders.get", "acme-us")
    assert rule is not None and rule.pins == {"SO-1": Side.cloud} and rule.percent == 5


def test_the_audit_is_append_only(store: Store) -> None:
    store.put_rule(Rule("orders.get", "acme-us", Mode.shadow), 0, "ana", EVENT)
    for statement in ("UPDATE cutover_audit SET actor = 'mallory'", "DELETE FROM cutover_audit"):
        with pytest.raises(Exception, match="append-only"), store.transaction() as cursor:
            cursor.execute(statement)
    assert store.history()[0].actor == "ana"


def test_evidence_adds_up_per_minute_per_rung_and_windows(store: Store) -> None:
    store.add_evidence("orders.get", "acme-us", "acme-us@1", 100, Counters(calls_cloud=3, errors_cloud=1))
    store.add_evidence("orders.get", "acme-us", "acme-us@1", 100, Counters(calls_cloud=2, comparisons=2, mismatches=1))
    store.add_evidence("orders.get", "acme-us", "acme-us@1", 90, Counters(calls_cloud=50))
    store.add_evidence("orders.get", "acme-de", "acme-us@1", 100, Counters(calls_cloud=7))
    store.add_evidence("orders.get", "acme-us", "acme-us@2", 100, Counters(calls_cloud=1000))  # another rung
    assert store.evidence("orders.get", "acme-us", "acme-us@1", 95) == Counters(
        calls_cloud=5, errors_cloud=1, comparisons=2, mismatches=1
    )
    assert store.evidence("orders.get", "acme-us", "acme-us@1", 0).calls_cloud == 55


def test_listen_sees_a_change_made_elsewhere(store: Store, store_location: str) -> None:
    other = open_store(store_location)
    seen = threading.Event()
    stop = threading.Event()
    listener = threading.Thread(target=store.listen, args=(seen.set, stop), daemon=True)
    listener.start()
    time.sleep(0.5)  # the listener is subscribed
    other.put_rule(Rule("orders.get", "acme-us", Mode.shadow), 0, "ana", EVENT)
    assert seen.wait(2)
    stop.set()
    listener.join(3)
    other.close()


def _bump(location: str, route: str, rounds: int) -> None:
    store = open_store(location)
    for _ in range(rounds):
        while True:
            current = store.rule(route, "acme-us")
            version = current.version if current else 0
            try:
                store.put_rule(Rule(route, "acme-us", Mode.canary, float(version + 1)), version, "proc", EVENT)
                break
            except Conflict:
                continue
        store.add_evidence(route, "acme-us", "acme-us@0", 1, Counters(calls_cloud=1))
    store.close()


def test_two_processes_share_one_sqlite_store_without_losing_a_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    location = str(tmp_path / "shared.db")
    open_store(location).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump, args=(location, "orders.get", 25)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = open_store(location)
    rule = store.rule("orders.get", "acme-us")
    assert rule is not None and rule.version == 50 and rule.percent == 50  # every change kept, in turn
    assert len(store.history(limit=100)) == 50
    assert store.evidence("orders.get", "acme-us", "acme-us@0", 0).calls_cloud == 50
    store.close()


def test_differences_count_by_path_and_keep_the_newest_samples(store: Store) -> None:
    for n in range(8):
        store.add_differences(
            "orders.get",
            "acme-us",
            100,
            {("/total", "value"): 2, ("/lines/*/qty", "value"): 1},
            [("/total", "value", n, n + 1)],
        )
    store.add_differences("orders.get", "acme-de", 100, {("/total", "value"): 5}, [])
    found = store.differences("orders.get", "acme-us", 0)
    assert [(row["path"], row["count"]) for row in found] == [("/total", 16), ("/lines/*/qty", 8)]
    assert [sample["legacy"] for sample in found[0]["samples"]] == [7, 6, 5, 4, 3]  # the newest five
    assert store.differences("orders.get", None, 0)[0]["count"] == 21
    assert store.differences("orders.get", "acme-us", 101) == []


def test_noise_verdicts_weigh_the_cloud_against_legacy_itself(store: Store) -> None:
    store.add_evidence("orders.get", "acme-us", "acme-us@1", 100, Counters(comparisons=1000))
    assert store.differences("orders.get", "acme-us", 0) == []
    store.add_differences("orders.get", "acme-us", 100, {("/x", "value"): 1000}, [])
    assert store.differences("orders.get", "acme-us", 0)[0]["verdict"] == "unknown"  # no legacy self-calls yet
    store.add_differences("orders.get", "acme-us", 100, {("/total", "value"): 50, ("/y", "value"): 100}, [])
    store.add_noise("orders.get", "acme-us", 100, 200, {"/x": 200, "/y": 19})
    verdicts = {row["path"]: row["verdict"] for row in store.differences("orders.get", "acme-us", 0)}
    # /x: always differs, on legacy too; /total: never on legacy; /y: 10 % against legacy's own 9.5 %
    assert verdicts == {"/x": "noise", "/total": "difference", "/y": "noise"}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:my secret pw@127.0.0.1:5432/test",  # psycopg quotes the part with the space
        "postgresql://postgres:Pw%20with%20space@127.0.0.1:1/test",
        "postgres://postgres:S3cr3t!@127.0.0.1:1/test",
    ],
)
def test_a_store_url_that_fails_never_echoes_its_password(url: str) -> None:
    with pytest.raises(StoreError) as refused:
        open_store(url)
    message = str(refused.value)
    for secret in ("my secret pw", "Pw with space", "Pw%20with%20space", "S3cr3t!"):
        assert secret not in message
    assert "--store" in message


def test_idempotency_claims_on_both_stores(store: Store) -> None:
    def claim(scope: str, digest: str = "d1", now: float = 1000.0, lease: float = 60) -> tuple[str, object]:
        with store.transaction() as cursor:
            return store.claim_in(cursor, scope, "webshop", digest, lease, 3600, now, "cid-1")

    def finish(scope: str, state: str, body: bytes = b"") -> None:
        with store.transaction() as cursor:
            store.finish_in(cursor, scope, state, 201, "application/json", body)

    assert claim("k1") == ("claimed", None)
    outcome, found = claim("k1", now=1001)
    assert outcome == "running" and found.correlation_id == "cid-1"  # type: ignore[attr-defined]
    finish("k1", "done", b'{"orderId": "SO-1"}')
    outcome, found = claim("k1", now=1002)
    assert outcome == "done" and found.body == b'{"orderId": "SO-1"}' and found.status == 201  # type: ignore[attr-defined]
    assert claim("k1", digest="other", now=1003)[0] == "mismatch"
    assert claim("k1", now=1000 + 3601)[0] == "claimed"  # expired: the key is free again
    # a holder that stops without settling: past its lease the write is in doubt, and stays so
    assert claim("k2", now=2000)[0] == "claimed"
    assert claim("k2", now=2030)[0] == "running"
    assert claim("k2", now=2061)[0] == "in_doubt"
    assert claim("k2", now=2000 + 3601)[0] == "in_doubt"  # not freed by expiry: an operator looks first
    # nothing written: the key is released for a retry
    assert claim("k3", now=3000)[0] == "claimed"
    finish("k3", "released")
    assert claim("k3", now=3001)[0] == "claimed"
    store.prune_idempotency(now=1e12)
    assert claim("k2", now=1e12)[0] == "claimed"  # a week past its expiry even a doubt is forgotten


def test_a_sqlite_write_goes_on_as_soon_as_another_connection_lets_the_lock_go(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SQLite's own busy handler sleeps a millisecond and more between tries; the store asks again
    from 50 µs on, so a write behind a short transaction of another process waits about that long.
    Past BUSY_SECONDS it fails as the store's error, and the connection waits as before afterwards."""
    import sqlite3

    from cutover.store import sqlite as sqlite_store

    store = open_store(str(tmp_path / "cutover.db"))
    other = sqlite3.connect(tmp_path / "cutover.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's transaction holds the write lock
    releasing = threading.Event()

    def release() -> None:
        time.sleep(0.05)
        releasing.set()  # before the COMMIT: nothing can write until the COMMIT, after this
        other.execute("COMMIT")

    threading.Thread(target=release).start()
    with store.transaction() as cursor:  # waits for it, then writes
        assert releasing.is_set()
        store.execute(cursor, "CREATE TABLE probe (n INTEGER)")

    monkeypatch.setattr(sqlite_store, "BUSY_SECONDS", 0.2)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="cannot be written"), store.transaction():
        pass
    other.execute("COMMIT")
    with store.transaction() as cursor:
        store.execute(cursor, "INSERT INTO probe VALUES (1)")
    busy = store._connection().execute("PRAGMA busy_timeout").fetchone()[0]  # type: ignore[attr-defined]
    assert busy == 200  # the waiting connection's own timeout is back (for its reads)
    other.close()
    store.close()
