"""The admin API and the migration console: the CLI's cutover and outbox operations for scripts and
consoles. It needs the admin key, and every change names its actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from cutover import slos
from cutover.decide import Rule, Side
from cutover.engine import CutoverError
from cutover.outbox import OutboxError
from cutover.runtime import in_thread, run_background
from cutover.store import AuditEvent, Conflict, StoreError, minute
from flows.journey import Journey
from gateway.consumers import Consumer
from gateway.guessing import WRONG_KEY
from gateway.inputs import parse_json
from gateway.problems import Problem
from gateway.state import ADMIN_KEY, CUTOVER, ROUTING, SETTINGS
from gateway.static import Files, serve_file
from reconcile.store import RunRow, Runs

log = logging.getLogger("banyan.cutover")


DEPRECATED_DAYS = 30  # the consumers a deprecated version lists: those that called it this recently


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The ladder's runtime: its listener and background work start with the app and stop with it."""
    cutover = app[CUTOVER]
    cutover.start_listening()
    task = asyncio.create_task(run_background(cutover))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await in_thread(cutover.close)


ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may


def _admin(request: web.Request, need: str = "viewer") -> str:
    """Check the admin key; return who acts (see `_identify`)."""
    return _identify(request, need)[0]


def _identify(request: web.Request, need: str = "viewer") -> tuple[str, Consumer | None]:
    """Who the admin key is: a person's key (a consumer with a role) names its holder, whatever
    X-Actor says; the gateway's shared --admin-key takes the actor from X-Actor (and no person)."""
    given = request.headers.get("X-Admin-Key", "")
    if not given:
        raise Problem(401, "Admin key required", "send the admin key in the X-Admin-Key header")
    if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), request.app[ADMIN_KEY].encode()):
        actor = request.headers.get("X-Actor", "").strip()
        if not _is_text(actor):
            raise Problem(400, "Header not acceptable", "the X-Actor header must be UTF-8 text")
        return actor, None
    consumers = request.app[SETTINGS].consumers
    person = consumers.find(given) if consumers is not None else None
    role = person.admin_role if person is not None else None
    if person is None or role is None:
        request[WRONG_KEY] = ("admin", given)  # counted, and answered more slowly as they add up (guessing.py)
        raise Problem(401, "Wrong admin key", "the admin key is not valid: check it with whoever runs the gateway")
    if ROLES.index(role) < ROLES.index(need):
        raise Problem(403, "Role not allowed", f"{person.name} is a {role}; this needs an {need}")
    return person.name, person


async def _change_body(request: web.Request) -> tuple[dict[str, Any], str]:
    """A change's JSON object and who makes it: the admin key is checked before the body is read
    (no key is a 401 whatever the body), and every text in it must be text (no lone surrogate)."""
    who = _admin(request, "operator")
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise Problem(400, "Malformed request", "send a JSON object")
    for name, value in body.items():
        if isinstance(value, str) and not _is_text(value):
            raise Problem(400, "Malformed request", f"{name} is not text: it holds a lone surrogate")
    actor = who or str(body.get("actor", "")).strip()
    if not actor:
        raise Problem(400, "Actor required", 'every change names its actor: send X-Actor or "actor"')
    return body, actor


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _change(request: web.Request, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> web.Response:
    cutover = request.app[CUTOVER]
    try:
        result = await in_thread(operation, *args, **kwargs)
    except CutoverError as exc:
        raise Problem(422, "Change refused", str(exc)) from None
    except Conflict as exc:
        raise Problem(409, "Changed meanwhile", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", f"nothing was changed: {exc}") from None
    await in_thread(cutover.reload)  # this gateway sees its own change at once
    if isinstance(result, Rule):
        return web.json_response(_rule_json(result))
    if isinstance(result, AuditEvent) and result.kind == "pause_copies":  # the pause a person ended
        return web.json_response({"resumed": result.id, "paused_at": result.at, "reason": result.reason})
    if isinstance(result, AuditEvent):  # an acknowledged step down
        return web.json_response({"acknowledged": result.id, "at": result.at, "reason": result.reason})
    return web.json_response({"done": result})


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {"route": rule.route, "entity": rule.entity, "mode": rule.mode.value, "percent": rule.percent,
            "pins": {k: v.value for k, v in rule.pins.items()}, "version": rule.version}  # fmt: skip


def _pins(raw: Any) -> dict[str, Side]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Problem(400, "Malformed pins", 'pins is an object: {"KEY": "legacy" | "cloud"}')
    try:
        return {str(k): Side(v) for k, v in raw.items()}
    except ValueError:
        raise Problem(400, "Malformed pins", "a key is pinned to legacy or cloud") from None


def _percent(raw: Any) -> float:
    try:
        return float(raw or 0)
    except (TypeError, ValueError):
        raise Problem(400, "Malformed percent", f"percent is a number, not {raw!r}") from None


async def admin_status(request: web.Request) -> web.Response:
    _admin(request)
    engine = request.app[CUTOVER].engine
    try:
        rows = await in_thread(engine.status, request.query.get("route"), request.query.get("entity"), True)
    except CutoverError as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    return web.json_response([row.as_dict() for row in rows])


async def admin_flow_files(request: web.Request) -> web.Response:
    """A flow's recent files, with what each side got and answered: `?flow=&entity=&state=&limit=`."""
    _admin(request)
    engine = request.app[CUTOVER].engine
    flow, entity = request.query.get("flow", ""), request.query.get("entity")
    try:
        if engine.route(flow).kind != "flow":
            raise CutoverError(f"{flow} is a route, not a flow")
        limit = min(max(int(request.query.get("limit", 50)), 1), 500)
    except (CutoverError, ValueError) as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    journey = Journey(engine.store)

    def read() -> list[dict[str, Any]]:
        return [journey.described(row) for row in journey.files(flow, entity, request.query.get("state"), limit)]

    try:
        return web.json_response(await in_thread(read))
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None


async def admin_reconciliations(request: web.Request) -> web.Response:
    """Each reconciliation × entity: its newest run and the drift of its last ten, oldest first (the
    console's trend)."""
    _admin(request)
    runs = Runs(request.app[CUTOVER].store)

    def read() -> list[dict[str, Any]]:
        found: dict[tuple[str, str], list[RunRow]] = {}
        for row in runs.recent(limit=500):
            found.setdefault((row.name, row.entity), []).append(row)
        shown = []
        for _, rows in sorted(found.items()):
            trend = [{"run": r.id, "state": r.state, "drift_rate": r.counts.get("drift_rate")} for r in rows[:10]]
            shown.append(rows[0].as_dict() | {"trend": trend[::-1]})
        return shown

    try:
        return web.json_response(await in_thread(read))
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None


async def admin_mismatches(request: web.Request) -> web.Response:
    _admin(request)
    route = request.query.get("route", "")
    engine = request.app[CUTOVER].engine
    try:
        engine.route(route)  # a known route, or the error that says which are
        minutes = int(request.query.get("minutes", 24 * 60))
    except (CutoverError, ValueError) as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    found = await in_thread(engine.store.differences, route, request.query.get("entity"), minute() - minutes + 1)
    return web.json_response(found)


async def admin_series(request: web.Request) -> web.Response:
    """Evidence a minute for one route × entity over the last `minutes`: what the console charts."""
    _admin(request)
    engine = request.app[CUTOVER].engine
    route, entity = request.query.get("route", ""), request.query.get("entity", "")
    try:
        engine.check_names(route, entity)
        minutes = min(max(int(request.query.get("minutes", 180)), 1), 7 * 24 * 60)
    except (CutoverError, ValueError) as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    since = minute() - minutes + 1
    series = await in_thread(engine.store.evidence_series, route, entity, since)
    return web.json_response(
        {"since": since, "minutes": minutes, "points": [{"minute": at, **vars(counters)} for at, counters in series]}
    )


async def admin_calendar(request: web.Request) -> web.Response:
    _admin(request)
    store = request.app[CUTOVER].engine.store
    schedules, freezes = await in_thread(store.schedules), await in_thread(store.freezes)
    return web.json_response({"schedules": [asdict(s) for s in schedules], "freezes": [asdict(f) for f in freezes]})


async def admin_deprecations(request: web.Request) -> web.Response:
    """Each deprecated version, its sunset and successor, and who called it in the last 30 days."""
    _admin(request)
    since = (datetime.now(UTC) - timedelta(days=DEPRECATED_DAYS)).date().isoformat()
    calls = await in_thread(request.app[CUTOVER].engine.store.deprecated_calls, since)
    found = []
    for compiled in request.app[ROUTING].table.routes:
        operation, retiring = compiled.route.operation, compiled.retiring
        if operation is None or operation.deprecated is None or retiring is None:
            continue
        found.append({
            "route": compiled.route.name, "since": str(operation.deprecated.since),
            "sunset": str(operation.deprecated.sunset), "successor": operation.deprecated.successor,
            "consumers": [{"consumer": consumer, "calls": count, "last_at": last}
                          for route, consumer, count, last in calls if route == compiled.route.name],
        })  # fmt: skip
    return web.json_response(found)


async def admin_slo(request: web.Request) -> web.Response:
    """Each entity's business SLOs: SLI, error budget left, burn rates and alert (cutover/slos.py)."""
    _admin(request)
    cutover = request.app[CUTOVER]
    standings = await in_thread(slos.standings, cutover.store, cutover.objectives)
    return web.json_response([standing.as_dict() for standing in standings])


async def admin_whoami(request: web.Request) -> web.Response:
    """Who the admin key says you are: the console shows it."""
    actor, person = _identify(request)
    if person is None:
        return web.json_response({"actor": actor, "role": "admin", "key": "shared"})
    return web.json_response({"actor": person.name, "role": person.admin_role, "key": "personal"})


async def admin_history(request: web.Request) -> web.StreamResponse:
    _admin(request)
    try:
        events = await in_thread(
            request.app[CUTOVER].engine.history, request.query.get("route"), request.query.get("entity")
        )
    except CutoverError as exc:  # an unknown route or entity, named as a change would name it
        raise Problem(422, "Bad query", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    lines = "".join(json.dumps(asdict(event), sort_keys=True) + "\n" for event in reversed(events))
    return web.Response(text=lines, content_type="application/x-ndjson")


async def admin_set(request: web.Request) -> web.Response:
    body, actor = await _change_body(request)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    version = body.get("expected_version")
    if version is not None and not isinstance(version, int):
        raise Problem(400, "Malformed expected_version", "expected_version is an integer")
    return await _change(
        request, engine.set, route, entity, str(body.get("mode", "")), str(body.get("reason", "")), actor,
        percent=_percent(body.get("percent")), pins=_pins(body.get("pins")), force=bool(body.get("force")),
        expected_version=version, acknowledge=bool(body.get("acknowledge")),
    )  # fmt: skip


async def admin_step(request: web.Request) -> web.Response:
    body, actor = await _change_body(request)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    reason = str(body.get("reason", ""))
    step = request.match_info["step"]
    if step == "promote":
        return await _change(request, engine.promote, route, entity, reason, actor, force=bool(body.get("force")),
                             acknowledge=bool(body.get("acknowledge")))  # fmt: skip
    if step == "acknowledge":
        return await _change(request, engine.acknowledge, route, entity, reason, actor)
    if step == "resume":
        return await _change(request, engine.resume_copies, route, entity, reason, actor)
    return await _change(request, engine.rollback, route, entity, reason, actor)


async def admin_schedule(request: web.Request) -> web.Response:
    body, actor = await _change_body(request)
    engine = request.app[CUTOVER].engine
    fields = [str(body.get(name, "")) for name in ("route", "entity", "mode", "at", "reason")]
    return await _change(request, engine.schedule, *fields, actor, percent=_percent(body.get("percent")))


async def admin_freeze(request: web.Request) -> web.Response:
    body, actor = await _change_body(request)
    engine = request.app[CUTOVER].engine
    fields = [str(body.get(name, "")) for name in ("entity", "starts", "ends", "reason")]
    return await _change(request, engine.freeze, *fields, actor)


async def admin_outbox(request: web.Request) -> web.Response:
    _admin(request)
    outbox = request.app[CUTOVER].outbox
    try:
        counts = await in_thread(outbox.counts)
        messages = await in_thread(outbox.list, request.query.get("state"), request.query.get("route"))
    except OutboxError as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    return web.json_response({"counts": counts, "messages": [message.as_dict() for message in messages]})


async def admin_outbox_action(request: web.Request) -> web.Response:
    body, actor = await _change_body(request)
    outbox = request.app[CUTOVER].outbox
    action = outbox.replay if request.match_info["action"] == "replay" else outbox.discard
    message_id = int(request.match_info["id"])
    if message_id >= 2**63:  # no store numbers a message that high
        raise Problem(422, "Refused", f"no outbox message {message_id}")
    try:
        message = await in_thread(action, message_id, str(body.get("reason", "")), actor)
    except OutboxError as exc:
        raise Problem(422, "Refused", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", f"nothing was changed: {exc}") from None
    return web.json_response(message.as_dict())


CONSOLE = Path(__file__).parent / "console"
CONSOLE_FILES: Files = {
    "": (CONSOLE / "index.html", "text/html"),
    "console.css": (CONSOLE / "console.css", "text/css"),
    "console.js": (CONSOLE / "console.js", "text/javascript"),
}


async def console_page(request: web.Request) -> web.Response:
    """The migration console: a static page that talks to the admin API with the key the user types."""
    policy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    return serve_file(CONSOLE_FILES, request.match_info.get("asset", ""), "the console", policy)


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/{asset}", console_page)
    app.router.add_get("/admin/outbox", admin_outbox)
    app.router.add_post(r"/admin/outbox/{id:\d+}/{action:replay|discard}", admin_outbox_action)
    app.router.add_get("/admin/cutover", admin_status)
    app.router.add_get("/admin/slo", admin_slo)
    app.router.add_get("/admin/cutover/history", admin_history)
    app.router.add_get("/admin/cutover/mismatches", admin_mismatches)
    app.router.add_get("/admin/flows/files", admin_flow_files)
    app.router.add_get("/admin/reconcile", admin_reconciliations)
    app.router.add_get("/admin/cutover/series", admin_series)
    app.router.add_get("/admin/cutover/calendar", admin_calendar)
    app.router.add_get("/admin/deprecations", admin_deprecations)
    app.router.add_get("/admin/whoami", admin_whoami)
    app.router.add_post("/admin/cutover/schedule", admin_schedule)
    app.router.add_post("/admin/cutover/freeze", admin_freeze)
    app.router.add_put("/admin/cutover/{route}/{entity}", admin_set)
    app.router.add_post("/admin/cutover/{route}/{entity}/{step:promote|rollback|acknowledge|resume}", admin_step)
