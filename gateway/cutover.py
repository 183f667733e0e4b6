"""The cutover engine inside the gateway: rules in memory, evidence out, the admin API.

Each gateway keeps the rules in memory so a decision costs no I/O; a listener thread reloads them
when the store signals a change (LISTEN/NOTIFY on PostgreSQL, a generation check on SQLite). Call
counts, errors and comparisons gather in memory and are flushed to the store once a second, and a
tick applies due schedules and guardrails. The admin API offers the CLI's operations to scripts and
consoles; it needs the admin key, and every change names its actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from cutover.commits import GroupCommit
from cutover.compare import Difference
from cutover.decide import Mode, Rule, Side
from cutover.engine import CutoverError, Engine, RouteInfo
from cutover.gates import Counters
from cutover.outbox import Outbox, OutboxError
from cutover.store import Conflict, Store, StoreError, minute, open_store
from gateway.inputs import parse_json
from gateway.problems import Problem
from gateway.spec import Route

log = logging.getLogger("banyan.cutover")
FLUSH_SECONDS = 1.0
TICK_SECONDS = 5.0
T = TypeVar("T")


def route_infos(routes: list[Route]) -> list[RouteInfo]:
    """What the engine needs of each route spec."""
    infos = []
    for route in routes:
        has_cloud = route.cloud is not None or (route.passthrough is not None and route.passthrough.cloud is not None)
        has_cloud = has_cloud or any("cloud" in sides for sides in route.entities.values())
        plan = route.cutover
        entities = tuple(route.entity.values or ()) if route.entity is not None else ()
        infos.append(
            RouteInfo(route.name, route.writes, has_cloud, Mode(plan.mode), plan.gate, plan.guardrail, entities)
        )
    return infos


def known_entities(routes: list[Route]) -> list[str] | None:
    """The legal entities the routes name; None (any entity) when no route lists them."""
    names: set[str] = set()
    for route in routes:
        if route.entity is not None and route.entity.values:
            names |= set(route.entity.values)
        names |= set(route.entities)
    return sorted(names) or None


NOISE_WINDOW_MINUTES = 24 * 60  # what legacy and the cloud did over the last day decides what is noise
SAMPLES_PER_FLUSH = 10  # new samples per route × entity per flush: the first of each path
DifferencesByRoute = dict[tuple[str, str], tuple[dict[tuple[str, str], int], list[tuple[str, str, Any, Any]]]]


@dataclass
class Taken:
    counters: dict[tuple[str, str, str], Counters]
    differences: DifferencesByRoute
    noise: dict[tuple[str, str], tuple[int, dict[str, int]]]


def spec_rule(route: Route, entity: str | None) -> Rule:
    """The rung the route spec starts on, for an entity with no rule in the store (or no store)."""
    return Rule(route.name, entity or "*", Mode(route.cutover.mode))


def rule_for(cutover: Cutover | None, route: Route, entity: str | None) -> Rule:
    return cutover.rule(route, entity) if cutover is not None else spec_rule(route, entity)


class Cutover:
    """The gateway's view of the ladder: a rule cache, an evidence buffer and the background work."""

    def __init__(
        self, location: str, routes: list[Route], webhook: str | None = None, in_doubt_after: float = 60.0
    ) -> None:
        self.location = location
        self.in_doubt_after = in_doubt_after  # an intent this old without an outcome is in doubt
        self.store: Store = open_store(location)
        self.engine = Engine(self.store, route_infos(routes), known_entities(routes), webhook)
        self.outbox = Outbox(self.store)
        self.commits = GroupCommit(self.store)
        self.rules: dict[tuple[str, str], Rule] = {}
        self.pending: dict[tuple[str, str, str], Counters] = {}
        self.differences: DifferencesByRoute = {}
        self.noise: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
        self.noise_paths: dict[str, frozenset[str]] = {}  # per route: fields learnt to be noise
        self.reloads = 0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.reload()

    def use_routes(self, routes: list[Route]) -> None:
        self.engine.routes = {info.name: info for info in route_infos(routes)}
        self.engine.entities = known_entities(routes)

    # -- rules ----------------------------------------------------------------------------------
    def reload(self) -> None:
        self.rules = {(rule.route, rule.entity): rule for rule in self.store.rules()}  # one swap
        self.reloads += 1

    def rule(self, route: Route, entity: str | None) -> Rule:
        rules = self.rules
        return rules.get((route.name, entity or "*")) or rules.get((route.name, "*")) or spec_rule(route, entity)

    # -- evidence -------------------------------------------------------------------------------
    def _counters(self, route: str, entity: str | None, rung: str) -> Counters:
        key = (route, entity or "*", rung)
        counters = self.pending.get(key)
        if counters is None:
            counters = self.pending[key] = Counters()
        return counters

    def called(self, route: str, entity: str | None, rung: str, side: Side, failed: bool) -> None:
        """Count one call to a side, made on `rung` (evidence belongs to the rung it was gathered on)."""
        counters = self._counters(route, entity, rung)
        if side is Side.cloud:
            counters.calls_cloud += 1
            counters.errors_cloud += failed
        else:
            counters.calls_legacy += 1
            counters.errors_legacy += failed

    def compared(self, route: str, entity: str | None, rung: str, differences: Sequence[Difference]) -> bool:
        """Count one comparison; a difference only on fields learnt to be noise is not a mismatch.
        Returns whether it counted as a mismatch. Every field is still counted, so learning goes on."""
        noisy = self.noise_paths.get(route, frozenset())
        mismatched = any(difference.path not in noisy for difference in differences)
        counters = self._counters(route, entity, rung)
        counters.comparisons += 1
        counters.mismatches += mismatched
        if differences:
            by_path = self.differences.setdefault((route, entity or "*"), ({}, []))
            for difference in differences:
                key = (difference.path, difference.kind.value)
                if key not in by_path[0] and len(by_path[1]) < SAMPLES_PER_FLUSH:
                    by_path[1].append((difference.path, difference.kind.value, difference.legacy, difference.cloud))
                by_path[0][key] = by_path[0].get(key, 0) + 1
        return mismatched

    def refresh_noise(self) -> None:
        """Learn again which fields are noise: legacy differs on them from itself as often as the cloud."""
        since = minute() - NOISE_WINDOW_MINUTES + 1
        learnt = {}
        for route in self.engine.routes:
            paths = {
                row["path"]
                for row in self.store.differences(route, None, since, limit=200)
                if row["verdict"] == "noise"
            }
            if paths:
                learnt[route] = frozenset(paths)
        self.noise_paths = learnt  # one swap

    def noised(self, route: str, entity: str | None, differences: Sequence[Difference]) -> None:
        """Count one comparison of legacy with itself, and the fields that differed on their own."""
        calls, paths = self.noise.setdefault((route, entity or "*"), (0, {}))
        for path in {difference.path for difference in differences}:
            paths[path] = paths.get(path, 0) + 1
        self.noise[(route, entity or "*")] = (calls + 1, paths)

    def take(self) -> Taken:
        """What was gathered since the last take; call it on the thread that counts."""
        taken = Taken(self.pending, self.differences, self.noise)
        self.pending, self.differences, self.noise = {}, {}, {}
        return taken

    def write(self, taken: Taken) -> None:
        now = minute()
        for (route, entity, rung), counters in taken.counters.items():
            self.store.add_evidence(route, entity, rung, now, counters)
        for (route, entity), (counts, samples) in taken.differences.items():
            self.store.add_differences(route, entity, now, counts, samples)
        for (route, entity), (calls, paths) in taken.noise.items():
            self.store.add_noise(route, entity, now, calls, paths)

    def flush(self) -> None:
        self.write(self.take())

    # -- background work ------------------------------------------------------------------------
    def _on_change(self) -> None:
        try:
            self.reload()
        except StoreError as exc:
            log.error("cutover rules not reloaded, the previous rules keep serving: %s", exc)

    def start_listening(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.store.listen(self._on_change, self._stop)
                except Exception as exc:  # the store went away: keep the rules, retry
                    log.error("cutover change listener lost the store, retrying: %s", exc)
                    self._stop.wait(1)
                    self._on_change()

        self._listener = threading.Thread(target=run, name="cutover-listener", daemon=True)
        self._listener.start()

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(2)
        self.commits.close()
        with contextlib.suppress(Exception):
            self.flush()
        self.store.close()


CUTOVER: web.AppKey[Cutover] = web.AppKey("cutover", Cutover)


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))


async def _background(app: web.Application) -> None:
    cutover = app[CUTOVER]
    ticks = 0
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        ticks += 1
        try:
            await in_thread(cutover.write, cutover.take())  # taken here, where calls are counted
            if ticks % round(TICK_SECONDS / FLUSH_SECONDS) == 0:
                for line in await in_thread(cutover.engine.tick):
                    log.warning("cutover: %s", line)
                await in_thread(cutover.refresh_noise)
                doubtful = await in_thread(cutover.outbox.recover, cutover.in_doubt_after)
                if doubtful:
                    log.warning("outbox: %d writes left without an outcome are now in doubt", doubtful)
                await in_thread(cutover.outbox.prune)
                if await in_thread(cutover.outbox.repair_heads):
                    log.warning("outbox: repaired the queue heads of some business keys")
        except Exception as exc:  # the store is down: keep serving on the rules in memory
            log.error("cutover evidence or tick failed: %s", exc)


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    cutover = app[CUTOVER]
    cutover.start_listening()
    task = asyncio.create_task(_background(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await in_thread(cutover.close)


# -- the admin API ---------------------------------------------------------------------------------
ADMIN_KEY: web.AppKey[str] = web.AppKey("admin_key", str)


def _admin(request: web.Request) -> str:
    """Check the admin key; return the actor the change is made by."""
    expected = request.app[ADMIN_KEY]
    given = request.headers.get("X-Admin-Key", "")
    if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
        raise Problem(401, "Admin key required", "send the admin key in the X-Admin-Key header")
    return request.headers.get("X-Actor", "").strip()


async def _body(request: web.Request) -> dict[str, Any]:
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise Problem(400, "Malformed request", "send a JSON object")
    return body


def _actor(request: web.Request, body: dict[str, Any]) -> str:
    actor = _admin(request) or str(body.get("actor", "")).strip()
    if not actor:
        raise Problem(400, "Actor required", 'every change names its actor: send X-Actor or "actor"')
    return actor


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
        rows = await in_thread(engine.status, request.query.get("route"), request.query.get("entity"))
    except CutoverError as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", str(exc)) from None
    return web.json_response([row.as_dict() for row in rows])


async def admin_mismatches(request: web.Request) -> web.Response:
    _admin(request)
    route = request.query.get("route", "")
    engine = request.app[CUTOVER].engine
    try:
        engine._route(route)
        minutes = int(request.query.get("minutes", 24 * 60))
    except (CutoverError, ValueError) as exc:
        raise Problem(422, "Bad query", str(exc)) from None
    found = await in_thread(engine.store.differences, route, request.query.get("entity"), minute() - minutes + 1)
    return web.json_response(found)


async def admin_history(request: web.Request) -> web.StreamResponse:
    _admin(request)
    events = await in_thread(
        request.app[CUTOVER].engine.history, request.query.get("route"), request.query.get("entity")
    )
    lines = "".join(json.dumps(asdict(event), sort_keys=True) + "\n" for event in reversed(events))
    return web.Response(text=lines, content_type="application/x-ndjson")


async def admin_set(request: web.Request) -> web.Response:
    body = await _body(request)
    actor = _actor(request, body)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    version = body.get("expected_version")
    if version is not None and not isinstance(version, int):
        raise Problem(400, "Malformed expected_version", "expected_version is an integer")
    return await _change(
        request, engine.set, route, entity, str(body.get("mode", "")), str(body.get("reason", "")), actor,
        percent=_percent(body.get("percent")), pins=_pins(body.get("pins")), force=bool(body.get("force")),
        expected_version=version,
    )  # fmt: skip


async def admin_step(request: web.Request) -> web.Response:
    body = await _body(request)
    actor = _actor(request, body)
    route, entity = request.match_info["route"], request.match_info["entity"]
    engine = request.app[CUTOVER].engine
    reason = str(body.get("reason", ""))
    if request.match_info["step"] == "promote":
        return await _change(request, engine.promote, route, entity, reason, actor, force=bool(body.get("force")))
    return await _change(request, engine.rollback, route, entity, reason, actor)


async def admin_schedule(request: web.Request) -> web.Response:
    body = await _body(request)
    actor = _actor(request, body)
    engine = request.app[CUTOVER].engine
    fields = [str(body.get(name, "")) for name in ("route", "entity", "mode", "at", "reason")]
    return await _change(request, engine.schedule, *fields, actor, percent=_percent(body.get("percent")))


async def admin_freeze(request: web.Request) -> web.Response:
    body = await _body(request)
    actor = _actor(request, body)
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
    body = await _body(request)
    actor = _actor(request, body)
    outbox = request.app[CUTOVER].outbox
    action = outbox.replay if request.match_info["action"] == "replay" else outbox.discard
    try:
        message = await in_thread(action, int(request.match_info["id"]), str(body.get("reason", "")), actor)
    except OutboxError as exc:
        raise Problem(422, "Refused", str(exc)) from None
    except StoreError as exc:
        raise Problem(503, "Cutover store unavailable", f"nothing was changed: {exc}") from None
    return web.json_response(message.as_dict())


CONSOLE = Path(__file__).parent / "console"
_ASSETS = {"console.css": "text/css", "console.js": "text/javascript"}


async def console_page(request: web.Request) -> web.Response:
    """The migration console: a static page that talks to the admin API with the key the user types."""
    name = request.match_info.get("asset", "")
    if name and name not in _ASSETS:
        raise Problem(404, "No such file", f"the console has no {name!r}")
    path = CONSOLE / (name or "index.html")
    kind = _ASSETS.get(name, "text/html")
    response = web.Response(body=path.read_bytes(), content_type=kind, charset="utf-8")
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/{asset}", console_page)
    app.router.add_get("/admin/outbox", admin_outbox)
    app.router.add_post(r"/admin/outbox/{id:\d+}/{action:replay|discard}", admin_outbox_action)
    app.router.add_get("/admin/cutover", admin_status)
    app.router.add_get("/admin/cutover/history", admin_history)
    app.router.add_get("/admin/cutover/mismatches", admin_mismatches)
    app.router.add_post("/admin/cutover/schedule", admin_schedule)
    app.router.add_post("/admin/cutover/freeze", admin_freeze)
    app.router.add_put("/admin/cutover/{route}/{entity}", admin_set)
    app.router.add_post("/admin/cutover/{route}/{entity}/{step:promote|rollback}", admin_step)
