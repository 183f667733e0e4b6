"""The exception inbox against the real stores: what the collectors find becomes exceptions,
folded, owned, acted on once, reopened when the trouble comes back, and never lost."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
import time_machine

from cutover.outbox import Outbox
from cutover.store import Store, open_store
from inbox.collect import collect
from inbox.desk import Desk
from inbox.store import Conflict, Failure, Inbox, InboxError
from specs.files import RouteFile, load_folder

ROUTES = {
    "owner": {"team": "order-desk", "contact": "orders@acme.example"},
    "owners": {"ACME-UK": {"team": "uk-ops", "webhook": "http://127.0.0.1:9/hook"}},
    "routes": [
        {
            "name": "order-create",
            "writes": True,
            "tier": 1,
            "operation": {"method": "POST", "path": "/v1/{entity}/orders"},
            "entity": {"from": "path", "name": "entity"},
            "legacy": {"backend": {"backend": "http", "url": "http://127.0.0.1:9/orders"}},
            "cloud": {"backend": {"backend": "http", "url": "http://127.0.0.1:9/cloud/orders"}},
        },
        {
            "name": "order-status",
            "owner": {"team": "status-team"},
            "operation": {"method": "GET", "path": "/v1/{entity}/orders/{id}"},
            "entity": {"from": "path", "name": "entity"},
            "legacy": {"backend": {"backend": "http", "url": "http://127.0.0.1:9/orders/{id}"}},
        },
    ],
}


def folder(tmp_path: Path, spec: dict[str, Any] | None = None) -> RouteFile:
    routes = tmp_path / "routes"
    routes.mkdir(exist_ok=True)
    (routes / "orders.yaml").write_text(json.dumps(spec or ROUTES))
    return load_folder(routes)


def dead_message(opened: Store, key: str, error: str = "503 from the cloud ERP", entity: str = "ACME-US") -> int:
    outbox = Outbox(opened)
    message_id = outbox.intend("order-create", entity, key, "cloud", "dual_write", {"payload": {"id": key}}, f"k-{key}")
    with opened.transaction() as cursor:
        opened.execute(cursor, "UPDATE cutover_outbox SET state = 'pending' WHERE id = ?", (message_id,))
    outbox.failed(outbox.get(message_id), error, max_attempts=1)
    return message_id


# the tests that read the clock run from the last second of a leap day, across midnight into March
LEAP_NIGHT = time_machine.travel("2028-02-29T23:59:59.5Z", tick=True)


def failure(n: int, failed: float = 1000.0, source: str | None = None) -> Failure:
    return Failure("slo_burn", f"r|E|{n}", "r", "E", None, source or f"slo:{n}", "burning", failed)


@LEAP_NIGHT
def test_sync_opens_folds_resolves_and_reopens(store: Store) -> None:
    inbox = Inbox(store)
    done = inbox.sync(["slo_burn"], lambda: [failure(1), failure(2)], now=2000.0)
    assert len(done.opened) == 2
    same = inbox.sync(["slo_burn"], lambda: [failure(1), failure(2)], now=2001.0)
    assert same.opened == []  # nothing new: nothing done
    again = inbox.sync(["slo_burn"], lambda: [failure(1, 3000.0, "slo:1b"), failure(2)], now=3001.0)
    assert again.repeated == 1
    [first] = [item for item in inbox.page() if item.fold == "r|E|1"]
    assert first.count == 2 and first.source == "slo:1b"
    gone = inbox.sync(["slo_burn"], lambda: [failure(1, 3000.0, "slo:1b")], now=3002.0)  # 2 burns no more
    assert gone.resolved == 1 and [item.fold for item in inbox.page()] == ["r|E|1"]
    second = next(item for item in inbox.page(resolved=True) if item.fold == "r|E|2")
    assert second.state == "resolved" and [entry.action for entry in inbox.history(second.id)] == ["opened", "resolved"]
    back = inbox.sync(["slo_burn"], lambda: [failure(1, 3000.0, "slo:1b"), failure(2, time.time() + 5)])
    assert back.reopened == [second.id]
    reopened = inbox.get(second.id)
    assert reopened is not None and reopened.state == "open" and reopened.count == 2
    assert [entry.action for entry in inbox.history(second.id)] == ["opened", "resolved", "reopened"]
    assert inbox.sync(["outbox_dead"], lambda: []).resolved == 0  # a kind's sync never touches another kind


def test_a_sync_never_resolves_what_another_gateway_opened_after_it_read_the_failures(store: Store) -> None:
    mine, theirs = Inbox(store), Inbox(store)

    def read_before_the_failure() -> list[Failure]:
        # this gateway's read of the failing rows came before the message died; meanwhile the other
        # gateway, which read after, opened the exception
        theirs.sync(["slo_burn"], lambda: [failure(1)])
        return []

    done = mine.sync(["slo_burn"], read_before_the_failure)
    assert done.resolved == 0
    [item] = mine.page()
    assert item.state == "open" and [entry.action for entry in mine.history(item.id)] == ["opened"]
    assert mine.sync(["slo_burn"], lambda: []).resolved == 1  # read after it: no longer failing


@LEAP_NIGHT
def test_a_dead_message_replayed_then_dead_again_is_reopened_with_its_history(
    store: Store,
    tmp_path: Path,
) -> None:
    routes = folder(tmp_path)
    message_id = dead_message(store, "SO-1")
    dead_message(store, "SO-2", entity="ACME-UK")
    done = collect(store, routes)
    assert len(done.opened) == 2
    inbox, desk = Inbox(store), Desk(store, routes)
    items = {item.key: item for item in inbox.page()}
    assert items["SO-1"].kind == "outbox_dead" and items["SO-1"].owner == "order-desk" and items["SO-1"].tier == 1
    assert items["SO-2"].owner == "uk-ops" or items["SO-2"].owner == "order-desk"
    replayed = desk.act(items["SO-1"].id, "replay", "ana", "the cloud ERP is back (INC-7)")
    assert replayed.state == "resolved" and Outbox(store).get(message_id).state == "pending"
    assert collect(store, routes).resolved == 0  # the message is pending: nothing to reopen
    time.sleep(0.01)
    Outbox(store).failed(Outbox(store).get(message_id), "503 again", max_attempts=1)
    assert collect(store, routes).reopened == [items["SO-1"].id]
    item = inbox.get(items["SO-1"].id)
    assert item is not None and item.state == "open" and item.count == 2 and item.error == "503 again"
    actions = [entry.action for entry in inbox.history(item.id)]
    assert actions == ["opened", "replay started", "replay", "reopened"]
    with pytest.raises(InboxError, match="allows replay, discard"):
        desk.act(item.id, "acknowledge", "ana", "no")


def test_owner_comes_from_the_item_then_its_file_then_the_entity(tmp_path: Path) -> None:
    routes = folder(tmp_path, {**ROUTES, "owner": None})
    assert routes.owner_of("order-status", "ACME-US") is not None
    assert routes.owner_of("order-status", "ACME-US").team == "status-team"  # type: ignore[union-attr]
    assert routes.owner_of("order-create", "ACME-UK").team == "uk-ops"  # type: ignore[union-attr]
    assert routes.owner_of("order-create", "ACME-US") is None
    stamped = folder(tmp_path)
    assert stamped.owner_of("order-create", "ACME-UK").team == "order-desk"  # type: ignore[union-attr]


@LEAP_NIGHT
def test_people_assign_snooze_comment_and_resolve_and_pruning_keeps_open_ones(store: Store) -> None:
    inbox = Inbox(store)
    inbox.sync(["slo_burn"], lambda: [failure(1), failure(2)], now=1000.0)
    one, two = inbox.page()
    desk = Desk(store, RouteFile())
    desk.assign(one.id, "bo", "ana")
    desk.snooze(two.id, 30, "ana", "waiting for the ERP vendor")
    desk.comment(two.id, "vendor ticket 4411", "bo")
    with pytest.raises(InboxError, match="needs a note"):
        desk.resolve(one.id, " ", "bo")
    resolved = desk.resolve(one.id, "budget recovered", "bo")
    assert resolved.state == "resolved" and resolved.assignee == "bo"
    assert Inbox(store).prune(older_than=0, now=time.time() + 1) == 1
    assert [item.id for item in inbox.page()] == [two.id] and inbox.get(one.id) is None
    assert [entry.action for entry in inbox.history(two.id)] == ["opened", "snoozed", "commented"]


def _replay(location: str, routes: str, item_id: int, version: int, actor: str, start: Any, said: Any) -> None:
    opened = open_store(location)
    try:
        start.wait()
        Desk(opened, load_folder(Path(routes))).act(item_id, "replay", actor, f"{actor} replays", version=version)
        said.put((actor, "done"))
    except Conflict as exc:
        said.put((actor, str(exc)))
    finally:
        opened.close()


def test_two_people_replaying_at_once_act_once_and_the_second_is_told_who(
    store_location: str,
    tmp_path: Path,
) -> None:
    routes = folder(tmp_path)
    opened = open_store(store_location)
    try:
        message_id = dead_message(opened, "SO-9")
        collect(opened, routes)
        [item] = Inbox(opened).page()
    finally:
        opened.close()
    context = multiprocessing.get_context("spawn")
    start, said = context.Event(), context.Queue()
    people = [
        context.Process(
            target=_replay, args=(store_location, str(tmp_path / "routes"), item.id, item.version, actor, start, said)
        )
        for actor in ("ana", "bo")
    ]
    for person in people:
        person.start()
    start.set()
    for person in people:
        person.join(60)
    answers = dict(said.get(timeout=5) for _ in people)
    assert sorted(answers.values(), key=lambda text: text != "done")[0] == "done"
    loser = next(actor for actor, text in answers.items() if text != "done")
    winner = "bo" if loser == "ana" else "ana"
    assert f"{winner} replay" in answers[loser]  # told who acted, and what
    opened = open_store(store_location)
    try:
        history = [entry.action for entry in Inbox(opened).history(item.id)]
        assert history.count("replay") == 1 and Outbox(opened).get(message_id).state == "pending"
        audit = [event for event in opened.history() if event.kind == "outbox_replay"]
        assert len(audit) == 1 and audit[0].actor == winner
    finally:
        opened.close()


@LEAP_NIGHT
def test_the_owner_of_a_tier_one_exception_is_told_once_and_again_when_it_waits(
    store: Store, tmp_path: Path, webhook: str
) -> None:
    from inbox.watch import Watch
    from tests.cutover.conftest import Hook

    spec = json.loads(json.dumps(ROUTES))
    spec["owner"] = {"team": "order-desk", "webhook": webhook, "respond_minutes": 30, "runbook": "https://wiki/ord"}
    routes = folder(tmp_path, spec)
    dead_message(store, "SO-5", error="409 from the cloud ERP")
    watch = Watch(store, routes)
    watch.once()
    watch.once()  # nothing new: nobody is told twice
    assert len(Hook.received) == 1
    told = Hook.received[0]
    assert told["why"] == "opened" and told["exception"]["key"] == "SO-5"
    assert told["owner"] == {"team": "order-desk", "runbook": "https://wiki/ord"}
    assert [(kind, owner, n) for kind, _, owner, n, _ in watch.counts] == [("outbox_dead", "order-desk", 1)]
    watch.once(now=time.time() + 31 * 60)
    assert [hook["why"] for hook in Hook.received] == ["opened", "waiting longer than 30 minutes"]


@LEAP_NIGHT
def test_a_cloud_that_breaks_the_contract_is_an_exception_until_it_stops(store: Store, tmp_path: Path) -> None:
    from cutover.store import minute
    from inbox.collect import _contracts

    routes = folder(tmp_path)
    with store.transaction() as cursor:
        for path, count in (("/total", 3), ("/currency", 1)):
            store.execute(
                cursor,
                "INSERT INTO cutover_differences (route, entity, path, kind, minute, count) "
                "VALUES ('order-status', 'ACME-DE', ?, 'contract', ?, ?)",
                (path, minute(), count),
            )
    collect(store, routes)
    [item] = [item for item in Inbox(store).page() if item.kind == "contract_broken"]
    assert item.owner == "status-team" and "/total (3×)" in item.error and "/currency (1×)" in item.error
    assert _contracts(store, now=time.time() + 61 * 60) == []  # an hour later, without new ones: nothing
