"""The runner on its own: a real store (SQLite and PostgreSQL), the calls answered by an in-memory
fake of the gateway, so each rule of the runner is seen alone: skipping, checking, retrying, taking
back, and resuming from the record."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cutover.store import Store, open_store
from events.log import EventLog, new_event
from inbox.collect import collect
from inbox.store import Inbox
from processes import runner as runner_module
from processes.book import Book
from processes.runner import Outgoing, Reply, Runner
from specs.processes import Process
from specs.routes import Route
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures

ROUTES = [
    Route.model_validate(
        {
            "name": name,
            "operation": {"method": method, "path": path},
            "entity": {"from": "path", "name": "entity"},
            "writes": method == "POST",
            "legacy": {"backend": {"backend": "http", "url": "http://127.0.0.1:9/"}},
        }
    )
    for name, method, path in (
        ("read", "GET", "/v1/{entity}/things/{id}"),
        ("write", "POST", "/v1/{entity}/things"),
        ("undo", "POST", "/v1/{entity}/things/{id}/undo"),
        ("find", "GET", "/v1/{entity}/found/{id}"),
    )
]


def process(*steps: dict[str, Any]) -> Process:
    return Process.model_validate({"name": "p", "operation": {"method": "POST", "path": "/v1/p"}, "steps": list(steps)})


class Fake:
    """The gateway as the runner sees it: each route answers what its handler says; every call kept."""

    def __init__(self, **handlers: Callable[[Outgoing], Reply]) -> None:
        self.handlers = handlers
        self.calls: list[Outgoing] = []

    async def __call__(self, outgoing: Outgoing) -> Reply:
        self.calls.append(outgoing)
        return self.handlers[outgoing.route](outgoing)

    def routes(self) -> Counter[str]:
        return Counter(call.route for call in self.calls)


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:  # noqa: F811
    opened = open_store(store_location)
    yield opened
    opened.close()


def run(
    store: Store, fake: Fake, spec: Process, request: Any, before: Callable[[Book, str], None] | None = None
) -> Any:
    book = Book(store)

    async def commit(function: Callable[..., Any], *args: Any) -> Any:
        with store.transaction() as cursor:
            return function(cursor, *args)

    async def go() -> Any:
        runner = Runner(book, commit, fake, [spec], ROUTES)
        with store.transaction() as cursor:
            instance_id = book.start_in(cursor, spec.name, "*", "shop", request, "c-1", None, 1e12)
        if before is not None:
            before(book, instance_id)
        return await runner.run(instance_id)

    return asyncio.run(go())


def ok(body: Any, status: int = 200) -> Callable[[Outgoing], Reply]:
    return lambda outgoing: Reply(status, body, "legacy")


def test_a_step_whose_condition_does_not_hold_is_skipped(store: Store) -> None:
    fake = Fake(read=ok({"big": False}), write=ok({"id": "W1"}, 201))
    spec = process(
        {"name": "look", "call": "read", "entity": "=E1", "params": {"id": "=1"}},
        {
            "name": "big",
            "call": "write",
            "entity": "=E1",
            "when": {"pointer": "/steps/look/answer/big", "equals": True},
        },
    )
    ended = run(store, fake, spec, {})
    assert ended.state == "completed" and fake.routes() == Counter({"read": 1})
    calls = {call.call: call.state for call in Book(store).calls(ended.id)}
    assert calls == {"look": "done", "big": "skipped"}


def test_a_call_in_doubt_that_its_check_finds_absent_is_sent_once_more_under_a_new_key(store: Store) -> None:
    answers = iter([Reply(0, None, None, "the connection dropped"), Reply(201, {"id": "W1"}, "cloud")])
    fake = Fake(write=lambda outgoing: next(answers), find=ok({"error": "none"}, 404))
    spec = process(
        {
            "name": "book",
            "call": "write",
            "entity": "=E1",
            "body": {"map": {"n": "/request/n"}},
            "check": {"call": "find", "params": {"id": "/request/n"}, "found": {"pointer": "/id", "present": True}},
        }
    )
    ended = run(store, fake, spec, {"n": "7"})
    assert ended.state == "completed", ended.reason
    keys = [call.headers["Idempotency-Key"] for call in fake.calls if call.route == "write"]
    assert keys == [f"process-{ended.id}-book", f"process-{ended.id}-book-again"]
    assert [call.path for call in fake.calls if call.route == "find"] == ["/v1/E1/found/7"]


def test_a_call_in_doubt_that_its_check_finds_is_done_with_what_the_check_read(store: Store) -> None:
    fake = Fake(write=ok({"title": "Write in doubt"}, 409), find=ok({"id": "W9"}))
    spec = process(
        {
            "name": "book",
            "call": "write",
            "entity": "=E1",
            "check": {"call": "find", "params": {"id": "=9"}, "found": {"pointer": "/id", "present": True}},
        }
    )
    ended = run(store, fake, spec, {})
    assert ended.state == "completed" and ended.result == {"book": {"id": "W9"}}
    assert fake.routes() == Counter({"write": 1, "find": 1})  # never sent blindly again


def test_an_unthrottled_side_is_tried_again_then_what_was_done_is_taken_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF", 0.001)
    fake = Fake(write=ok({"id": "W1"}, 201), read=ok({"title": "Too many requests"}, 429), undo=ok({"undone": True}))
    spec = process(
        {
            "name": "book",
            "call": "write",
            "entity": "=E1",
            "compensate": {"call": "undo", "entity": "=E1", "params": {"id": "/steps/book/answer/id"}},
        },
        {"name": "after", "call": "read", "entity": "=E1", "params": {"id": "=1"}},
    )
    ended = run(store, fake, spec, {})
    assert fake.routes() == Counter({"write": 1, "read": runner_module.TRIES, "undo": 1})
    assert ended.state == "compensated" and ended.status == 502 and "taken back: book" in ended.reason
    assert [c.path for c in fake.calls if c.route == "undo"] == ["/v1/E1/things/W1/undo"]


def test_a_compensation_that_fails_leaves_the_instance_failed_for_a_person(store: Store) -> None:
    fake = Fake(write=ok({"id": "W1"}, 201), read=ok({"error": "no"}, 422), undo=ok({"error": "locked"}, 409))
    spec = process(
        {
            "name": "book",
            "call": "write",
            "entity": "=E1",
            "compensate": {"call": "undo", "entity": "=E1", "params": {"id": "=W1"}},
        },
        {"name": "after", "call": "read", "entity": "=E1", "params": {"id": "=1"}},
    )
    ended = run(store, fake, spec, {})
    assert ended.state == "failed" and "taking back book did not go through" in ended.reason


def test_a_resumed_instance_makes_only_the_calls_not_recorded(store: Store) -> None:
    fake = Fake(write=ok({"id": "W2"}, 201), read=ok({"n": 1}))
    spec = process(
        {"name": "first", "call": "write", "entity": "=E1"},
        {"name": "second", "call": "read", "entity": "=E1", "params": {"id": "/steps/first/answer/id"}},
    )

    def first_was_made(book: Book, instance_id: str) -> None:  # by the runner that stopped
        with store.transaction() as cursor:
            settled = ("done", 201, {"id": "W1"}, "legacy", "")
            book.answered_in(cursor, instance_id, "first", "first", "write", "E1", settled, 0.0, [], 1e12)

    ended = run(store, fake, spec, {}, first_was_made)
    assert ended.state == "completed" and fake.routes() == Counter({"read": 1})
    assert fake.calls[0].path == "/v1/E1/things/W1"  # from the recorded answer


def test_a_pointer_holds_another_filled_first(store: Store) -> None:
    fake = Fake(read=ok({"accounts": {"E2": "A-2"}}), write=ok({"id": "W"}, 201))
    spec = process(
        {"name": "terms", "call": "read", "entity": "=E2", "params": {"id": "=1"}},
        {
            "name": "book",
            "call": "write",
            "entity": "=E2",
            "body": {"map": {"account": "/steps/terms/answer/accounts/{/steps/terms/entity}"}},
        },
    )
    ended = run(store, fake, spec, {})
    assert ended.state == "completed" and fake.calls[1].body == {"account": "A-2"}


def test_a_wait_ends_when_its_event_about_the_subject_is_recorded(store: Store) -> None:
    fake = Fake(write=ok({"id": "W5"}, 201))
    spec = process(
        {"name": "book", "call": "write", "entity": "=E1"},
        {"name": "shipped", "wait": {"event": "com.acme.shipped", "subject": "/steps/book/answer/id"}},
    )

    def later(book: Book, instance_id: str) -> None:
        def record() -> None:
            time.sleep(0.3)
            with store.transaction() as cursor:  # another order's first, then this one's
                for subject in ("W4", "W5"):
                    data = {"orderId": subject, "carrier": "UPS"}
                    event = new_event("com.acme.shipped", "/wh", subject, data, "ship", "E1", "c-9")
                    EventLog(store).record_in(cursor, [event])

        threading.Thread(target=record, daemon=True).start()

    ended = run(store, fake, spec, {}, later)
    assert ended.state == "completed", ended.reason
    assert ended.result["shipped"] == {"orderId": "W5", "carrier": "UPS"}
    [waited] = [call for call in Book(store).calls(ended.id) if call.call == "shipped"]
    assert waited.state == "done" and waited.entity == "E1"


def test_a_wait_that_times_out_takes_back_what_was_done(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "WAIT_POLL", 0.05)
    fake = Fake(write=ok({"id": "W6"}, 201), undo=ok({"undone": True}))
    spec = process(
        {
            "name": "book",
            "call": "write",
            "entity": "=E1",
            "compensate": {"call": "undo", "entity": "=E1", "params": {"id": "=W6"}},
        },
        {"name": "shipped", "wait": {"event": "com.acme.shipped", "subject": "=W6", "timeout_seconds": 0.2}},
    )
    ended = run(store, fake, spec, {})
    assert ended.state == "compensated" and "no com.acme.shipped about W6 within 0.2 s" in ended.reason
    assert fake.routes() == Counter({"write": 1, "undo": 1})
    collect(store)  # a timeout is a failure a person hears of, even taken back
    [item] = Inbox(store).page(kind="process_failed")
    assert item.key == ended.id and "within 0.2 s" in item.error


def test_a_step_either_calls_or_waits() -> None:
    with pytest.raises(ValueError, match="either calls a route or waits"):
        process({"name": "both", "call": "write", "wait": {"event": "x"}})
    with pytest.raises(ValueError, match="either calls a route or waits"):
        process({"name": "neither"})
