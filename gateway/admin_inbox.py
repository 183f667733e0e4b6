"""The exception inbox on the admin API, for the console and for scripts.

    GET  /admin/exceptions?owner=&entity=&kind=&state=&older_than_minutes=&after=&limit=
         → {"exceptions": [...], "next": cursor or null, "counts": [{owner, entity, open, oldest_seconds}]}
    GET  /admin/exceptions/{id}  → the exception, its actions, its owner, its history
    POST /admin/exceptions/{id}/{action}  {"version": 3, "note": "…", "to": "bo" | "cloud", "minutes": 60}
         action: assign, comment, snooze, resolve, replay, discard, resend, delivered, acknowledge, repair

A viewer may read; acting takes an operator. A change names the version the person saw: if
someone acted since, the answer is 409 saying who did what and when, and nothing is done.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from cutover.runtime import in_thread
from cutover.store import StoreError
from gateway.admin_auth import PERSON, admin_actor, change_body, in_scope
from gateway.problems import Problem
from gateway.state import CUTOVER, DECLARED, INBOX
from inbox.desk import ACTIONS, Desk
from inbox.store import Conflict, Inbox, InboxError, Item

PAGE = 25
COUNTS_SECONDS = 5.0  # the counts per owner and entity (a scan of the open ones) are kept this long
COUNTED = web.AppKey("inbox_counts", dict)  # this process's counts, and until when they are shown
COMMON = ("assign", "comment", "snooze", "resolve")


def _shown(item: Item, now: float, why_not: str | None = None) -> dict[str, Any]:
    return {
        **item.as_dict(),
        "age_seconds": round(item.age(now), 1),
        "actions": [*COMMON, *ACTIONS.get(item.kind, ())],
        "why_not": why_not,  # why the caller may not act on it (their role or scope); None: they may
    }


async def admin_exceptions(request: web.Request) -> web.Response:
    admin_actor(request)
    query = request.query
    try:
        limit = min(max(int(query.get("limit", PAGE)), 1), 500)
        older = float(query["older_than_minutes"]) * 60 if query.get("older_than_minutes") else None
        created, _, number = query.get("after", "").partition(":")
        after = (float(created), int(number)) if created else None
    except ValueError:
        raise Problem(400, "Bad query", "limit and older_than_minutes are numbers; after is a page's cursor") from None
    inbox = Inbox(request.app[CUTOVER].store)

    watch, kept = request.app.get(INBOX), request.app[COUNTED]
    counted = watch.counts if watch is not None and time.time() < watch.fresh_until else None
    if counted is None and kept.get("until", 0.0) > time.time():
        counted = kept["counts"]

    def read() -> tuple[list[Item], list[tuple[str, str, str, int, float]]]:
        page = inbox.page(
            query.get("owner"), query.get("entity"), query.get("kind"), query.get("state"), older, after, limit
        )
        if counted is not None:  # the sync's counts, or this process's of a few seconds ago
            return page, counted
        kept.update(counts=inbox.counts(), until=time.time() + COUNTS_SECONDS)
        return page, kept["counts"]

    try:
        items, counts = await in_thread(read)
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    now = time.time()
    summed: dict[tuple[str, str], list[float]] = {}
    for _, entity, owner, count, oldest in counts:
        total = summed.setdefault((owner, entity), [0, oldest])
        total[0] += count
        total[1] = min(total[1], oldest)
    return web.json_response(
        {
            "exceptions": [_shown(item, now, _why_not(request, item)) for item in items],
            "next": f"{items[-1].created}:{items[-1].id}" if len(items) == limit else None,
            "counts": [
                {"owner": owner or None, "entity": entity, "open": int(count), "oldest_seconds": round(now - oldest)}
                for (owner, entity), (count, oldest) in sorted(summed.items(), key=lambda kv: kv[1][1])
            ],
        }
    )


def _why_not(request: web.Request, item: Item) -> str | None:
    return request.app[CUTOVER].engine.refusal(request.get(PERSON), item.subject, item.entity)


async def admin_exception(request: web.Request) -> web.Response:
    admin_actor(request)
    inbox, declared = Inbox(request.app[CUTOVER].store), request.app[DECLARED].files
    item_id = int(request.match_info["id"])
    item, history = await in_thread(lambda: (inbox.get(item_id), inbox.history(item_id)))
    if item is None:
        raise Problem(404, "No such exception", f"no exception {item_id}")
    owner = declared.owner_of(item.subject, item.entity)
    return web.json_response(
        {
            **_shown(item, time.time()),
            "owner_detail": owner.shown() if owner else None,
            "history": [entry.as_dict() for entry in history],
        }
    )


async def admin_exception_action(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    item_id, action = int(request.match_info["id"]), request.match_info["action"]
    desk = Desk(request.app[CUTOVER].store, request.app[DECLARED].files)
    version = body.get("version")
    if version is not None and not isinstance(version, int):
        raise Problem(400, "Malformed request", "version is the number the exception showed")
    note = str(body.get("note") or body.get("reason") or "")
    if PERSON in request:  # a person acts on the exceptions of their own routes and entities
        found = await in_thread(Inbox(request.app[CUTOVER].store).get, item_id)
        if found is not None:
            in_scope(request, request.app[CUTOVER].engine, found.subject, found.entity)

    def act() -> Item:
        if action == "assign":
            return desk.assign(item_id, str(body.get("to", "")), actor, note, version)
        if action == "comment":
            return desk.comment(item_id, note, actor)
        if action == "snooze":
            return desk.snooze(item_id, int(body.get("minutes", 60)), actor, note, version)
        if action == "resolve":
            return desk.resolve(item_id, note, actor, version)
        return desk.act(item_id, action, actor, note, version, to=str(body.get("to") or "cloud"))

    try:
        item = await in_thread(act)
    except Conflict as exc:
        raise Problem(409, "Someone acted first", str(exc)) from None
    except (InboxError, ValueError, TypeError) as exc:
        raise Problem(422, "Action refused", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", f"nothing was changed: {exc}") from None
    await in_thread(request.app[CUTOVER].reload)  # an acknowledged step-down counts at once here
    return web.json_response(_shown(item, time.time()))


def add_inbox_routes(app: web.Application) -> None:
    app[COUNTED] = {}
    actions = "|".join((*COMMON, *sorted({name for names in ACTIONS.values() for name in names})))
    app.router.add_get("/admin/exceptions", admin_exceptions)
    app.router.add_get(r"/admin/exceptions/{id:\d+}", admin_exception)
    app.router.add_post(rf"/admin/exceptions/{{id:\d+}}/{{action:{actions}}}", admin_exception_action)
