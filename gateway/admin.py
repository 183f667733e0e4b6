"""The admin API and the migration console: the CLI's cutover and outbox operations for scripts and
consoles. It needs the admin key, and every change names its actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from cutover.decide import Rule, Side
from cutover.engine import CutoverError
from cutover.outbox import OutboxError
from cutover.runtime import in_thread, run_background
from cutover.store import AuditEvent, Conflict, StoreError
from gateway.admin_auth import PERSON, admin_actor, change_body, identify, in_scope
from gateway.admin_views import (
    admin_calendar,
    admin_deprecations,
    admin_flow_files,
    admin_mismatches,
    admin_processes,
    admin_reconciliations,
    admin_series,
    admin_slo,
)
from gateway.problems import Problem
from gateway.state import CUTOVER
from gateway.static import Files, serve_file

log = logging.getLogger("banyan.cutover")


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


async def changed(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a change on the store off the loop; the ladder's refusal is a 422, a concurrent change a
    409, a store away a 503 (and nothing was changed)."""
    try:
        return await in_thread(operation, *args, **kwargs)
    except CutoverError as exc:
        raise Problem(422, "Change refused", str(exc)) from None
    except Conflict as exc:
        raise Problem(409, "Changed meanwhile", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", f"nothing was changed: {exc}") from None


async def _change(request: web.Request, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> web.Response:
    cutover = request.app[CUTOVER]
    result = await changed(operation, *args, **kwargs)
    await in_thread(cutover.reload)  # this gateway sees its own change at once
    if isinstance(result, Rule):
        return web.json_response(_rule_json(result))
    if isinstance(result, AuditEvent) and result.kind == "pause_copies":  # the pause a person ended
        return web.json_response({"resumed": result.id, "paused_at": result.at, "reason": result.reason})
    if isinstance(result, AuditEvent):  # an acknowledged step down
        return web.json_response({"acknowledged": result.id, "at": result.at, "reason": result.reason})
    return web.json_response({"done": result})


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "route": rule.route,
        "entity": rule.entity,
        "mode": rule.mode.value,
        "percent": rule.percent,
        "pins": {k: v.value for k, v in rule.pins.items()},
        "version": rule.version,
    }


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
    """Every row, each with why the caller may not change it (`why_not`: their role or scope), so
    the console shows only what they may act on as actionable."""
    admin_actor(request)
    engine = request.app[CUTOVER].engine
    try:
        rows = await in_thread(engine.status, request.query.get("route"), request.query.get("entity"), True)
    except CutoverError as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    person = request.get(PERSON)
    return web.json_response(
        [{**row.as_dict(), "why_not": engine.refusal(person, row.route, row.entity)} for row in rows]
    )


async def admin_whoami(request: web.Request) -> web.Response:
    """Who the admin key says you are: the console shows it."""
    actor, person = identify(request)
    if person is None:
        return web.json_response(
            {"actor": actor, "role": "admin", "key": "shared", "scope": "every entity; every route"}
        )
    return web.json_response(
        {"actor": person.name, "role": person.admin_role, "key": "personal", "scope": person.person().scope()}
    )


async def admin_history(request: web.Request) -> web.StreamResponse:
    admin_actor(request)
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
    body, actor = await change_body(request)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    in_scope(request, engine, route, entity)
    version = body.get("expected_version")
    if version is not None and not isinstance(version, int):
        raise Problem(400, "Malformed expected_version", "expected_version is an integer")
    return await _change(
        request,
        engine.set,
        route,
        entity,
        str(body.get("mode", "")),
        str(body.get("reason", "")),
        actor,
        percent=_percent(body.get("percent")),
        pins=_pins(body.get("pins")),
        force=bool(body.get("force")),
        expected_version=version,
        acknowledge=bool(body.get("acknowledge")),
    )


async def admin_step(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    in_scope(request, engine, route, entity)
    reason = str(body.get("reason", ""))
    step = request.match_info["step"]
    if step == "promote":
        return await _change(
            request,
            engine.promote,
            route,
            entity,
            reason,
            actor,
            force=bool(body.get("force")),
            acknowledge=bool(body.get("acknowledge")),
        )
    if step == "acknowledge":
        return await _change(request, engine.acknowledge, route, entity, reason, actor)
    if step == "resume":
        return await _change(request, engine.resume_copies, route, entity, reason, actor)
    return await _change(request, engine.rollback, route, entity, reason, actor)


async def admin_schedule(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    engine = request.app[CUTOVER].engine
    fields = [str(body.get(name, "")) for name in ("route", "entity", "mode", "at", "reason")]
    in_scope(request, engine, fields[0], fields[1])
    return await _change(request, engine.schedule, *fields, actor, percent=_percent(body.get("percent")))


async def admin_freeze(request: web.Request) -> web.Response:
    body, actor = await change_body(request)
    engine = request.app[CUTOVER].engine
    fields = [str(body.get(name, "")) for name in ("entity", "starts", "ends", "reason")]
    in_scope(request, engine, "*", fields[0])  # a freeze holds every route of the entity
    return await _change(request, engine.freeze, *fields, actor)


async def admin_outbox(request: web.Request) -> web.Response:
    admin_actor(request)
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
    body, actor = await change_body(request)
    outbox = request.app[CUTOVER].outbox
    action = outbox.replay if request.match_info["action"] == "replay" else outbox.discard
    message_id = int(request.match_info["id"])
    if message_id >= 2**63:  # no store numbers a message that high
        raise Problem(422, "Refused", f"no outbox message {message_id}")
    try:
        if PERSON in request:
            found = await in_thread(outbox.get, message_id)
            in_scope(request, request.app[CUTOVER].engine, found.route, found.entity)
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
    app.router.add_get("/admin/processes", admin_processes)
    app.router.add_get("/admin/processes/{instance}", admin_processes)
    app.router.add_get("/admin/cutover/series", admin_series)
    app.router.add_get("/admin/cutover/calendar", admin_calendar)
    app.router.add_get("/admin/deprecations", admin_deprecations)
    app.router.add_get("/admin/whoami", admin_whoami)
    app.router.add_post("/admin/cutover/schedule", admin_schedule)
    app.router.add_post("/admin/cutover/freeze", admin_freeze)
    app.router.add_put("/admin/cutover/{route}/{entity}", admin_set)
    app.router.add_post("/admin/cutover/{route}/{entity}/{step:promote|rollback|acknowledge|resume}", admin_step)
