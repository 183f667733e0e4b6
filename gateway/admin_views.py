"""What the console reads about a cell beyond its rung: a flow's files, the reconciliations,
the fields the sides differ on, the evidence a minute, the calendar, who still calls a deprecated
version, and each entity's SLOs. Read-only; any admin role may read them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from cutover import slos
from cutover.engine import CutoverError
from cutover.runtime import in_thread
from cutover.store import StoreError, minute
from flows.journey import Journey
from gateway.admin_auth import admin_actor
from gateway.problems import Problem
from gateway.process_api import told
from gateway.state import CUTOVER, ROUTING
from processes.book import Book
from reconcile.store import RunRow, Runs

DEPRECATED_DAYS = 30  # the consumers a deprecated version lists: those that called it this recently


async def admin_flow_files(request: web.Request) -> web.Response:
    """A flow's recent files, with what each side got and answered: `?flow=&entity=&state=&limit=`."""
    admin_actor(request)
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
    admin_actor(request)
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


async def admin_processes(request: web.Request) -> web.Response:
    """Process instances, newest first (`?process=`, `?state=`, `?limit=`), or one with its calls."""
    admin_actor(request)
    book = Book(request.app[CUTOVER].store)
    instance_id = request.match_info.get("instance")
    try:
        if instance_id is not None:
            found = await in_thread(book.get, instance_id)
            if found is None:
                raise Problem(404, "No such process instance", f"no process instance {instance_id}")
            return web.json_response(await in_thread(told, found, book))
        try:
            limit = min(max(int(request.query.get("limit", "50")), 1), 500)
        except ValueError:
            raise Problem(400, "Bad query", "limit must be a whole number") from None
        rows = await in_thread(book.page, request.query.get("process"), request.query.get("state"), limit)
        return web.json_response([row.as_dict() for row in rows])
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None


async def admin_mismatches(request: web.Request) -> web.Response:
    admin_actor(request)
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
    admin_actor(request)
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
    admin_actor(request)
    store = request.app[CUTOVER].engine.store
    schedules, freezes = await in_thread(store.schedules), await in_thread(store.freezes)
    return web.json_response({"schedules": [asdict(s) for s in schedules], "freezes": [asdict(f) for f in freezes]})


async def admin_deprecations(request: web.Request) -> web.Response:
    """Each deprecated version, its sunset and successor, and who called it in the last 30 days."""
    admin_actor(request)
    since = (datetime.now(UTC) - timedelta(days=DEPRECATED_DAYS)).date().isoformat()
    calls = await in_thread(request.app[CUTOVER].engine.store.deprecated_calls, since)
    found = []
    for compiled in request.app[ROUTING].table.routes:
        operation, retiring = compiled.route.operation, compiled.retiring
        if operation is None or operation.deprecated is None or retiring is None:
            continue
        found.append(
            {
                "route": compiled.route.name,
                "since": str(operation.deprecated.since),
                "sunset": str(operation.deprecated.sunset),
                "successor": operation.deprecated.successor,
                "consumers": [
                    {"consumer": consumer, "calls": count, "last_at": last}
                    for route, consumer, count, last in calls
                    if route == compiled.route.name
                ],
            }
        )
    return web.json_response(found)


async def admin_slo(request: web.Request) -> web.Response:
    """Each entity's business SLOs: SLI, error budget left, burn rates and alert (cutover/slos.py)."""
    admin_actor(request)
    cutover = request.app[CUTOVER]
    standings = await in_thread(slos.standings, cutover.store, cutover.objectives)
    return web.json_response([standing.as_dict() for standing in standings])
