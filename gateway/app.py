"""The aiohttp application: the gateway's own endpoints, the route reloader, and its resources'
lifecycles (set up in order, closed in reverse).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from cutover.runtime import Cutover
from events.log import EventLog, Recorded
from events.relay import relay
from flows.runner import FlowRunner
from gateway import access_log, policies, process_api
from gateway.accepted import STATUS_PATH
from gateway.accepted import status as accepted_status
from gateway.admin import add_admin_routes
from gateway.admin import lifecycle as cutover_lifecycle
from gateway.admin_changes import add_change_routes
from gateway.admin_inbox import add_inbox_routes
from gateway.flow_calls import RouteCalls
from gateway.guessing import GUESSES, Guesses, trusted_networks
from gateway.idempotency import LocalIdempotency, SharedIdempotency
from gateway.limits import LocalLimiter, RedisLimiter
from gateway.metrics import Metrics
from gateway.openapi import api_reference
from gateway.outbox_worker import outbox_worker
from gateway.request import handle
from gateway.service import docs, healthz, home, metrics_endpoint, openapi_endpoint, pool_gauges, readyz
from gateway.state import (
    ADMIN_KEY,
    CUTOVER,
    DECLARED,
    DEFAULT_MAX_BODY,
    EVENT_LOG,
    EVENTS_READY,
    FLOWS,
    IDEMPOTENCY,
    INBOX,
    KEY_TURNS,
    LIMITER,
    METRICS,
    OUTBOX_READY,
    RECONCILIATIONS,
    ROUTING,
    SETTINGS,
    Declared,
    Doorbell,
    KeyTurns,
    Settings,
)
from gateway.table import Routing, Table, compile_table
from gateway.tracing import tracer
from inbox.watch import Watch
from legacy_adapters.mapping import MappingError
from reconcile.schedule import Scheduler
from specs.files import RouteError, load_folder
from specs.flows import Flow, ladder

__all__ = ["DEFAULT_MAX_BODY", "Settings", "build_app", "compile_table"]
log = logging.getLogger("banyan.gateway")
RELOAD_SECONDS = 1.0


# -- lifecycle -------------------------------------------------------------------------------------
def _fingerprint(folder: Path) -> tuple[tuple[str, float, int], ...]:
    return tuple(sorted((p.name, p.stat().st_mtime, p.stat().st_size) for p in folder.glob("*.y*ml")))


async def _reloader(app: web.Application) -> None:
    settings = app[SETTINGS]
    seen = _fingerprint(settings.routes)
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        current = _fingerprint(settings.routes)
        if current == seen:
            continue
        seen = current
        try:
            table = compile_table(settings.routes, app[ROUTING].table.pools)
            _check_store(table, settings)
            declared = app[DECLARED].files = load_folder(settings.routes)
            if INBOX in app:
                app[INBOX].folder = declared  # owners and flows as the files say now
            flows, batches = declared.flows, declared.batches
            _check_flows(flows, settings)
        except (RouteError, MappingError) as exc:
            log.error("routes not reloaded, the previous routes keep serving: %s", exc)
            continue
        routing = app[ROUTING]
        old, routing.table = routing.table, table
        if CUTOVER in app:
            routes = [compiled.route for compiled in table.routes]
            app[CUTOVER].use_routes(*ladder(routes, flows, batches))
        if FLOWS in app:
            app[FLOWS].use(flows, batches)
        if process_api.PROCESSES in app:
            app[process_api.PROCESSES].use(declared.processes, [compiled.route for compiled in table.routes])
        log.info("routes reloaded: %d routes", len(table.routes))
        # requests in flight keep the old table; close its backends once they have had time to finish
        asyncio.get_running_loop().call_later(30, _close_later, old)


_CLOSING: set[asyncio.Task[None]] = set()


async def _tracing_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    await asyncio.to_thread(app[policies.TRACING].shutdown)  # exports the spans still batched


async def _limiter_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[LIMITER].close()
    await app[GUESSES].close()


async def _loop_watch_lifecycle(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]  # shared, the other processes' scrapes read this one's pools too
    gauges = (lambda: pool_gauges(app)) if metrics.shared else None
    serving = app[SETTINGS].deliveries != "only"
    watch = asyncio.ensure_future(metrics.watch_loop(gauges=gauges, lag=serving))
    yield
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch


def _close_later(table: Table) -> None:
    task = asyncio.ensure_future(table.close())
    _CLOSING.add(task)  # keep a reference until it is done
    task.add_done_callback(_CLOSING.discard)


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _routes_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The route table's backends, and the reloader that swaps the table when the folder changes."""
    reloader = asyncio.create_task(_reloader(app)) if app[SETTINGS].reload else None
    yield
    await _cancelled(reloader)
    await app[ROUTING].table.close()


async def _outbox_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The outbox worker; on the delivering process, the doorbell the serving workers ring too."""
    settings, doorbell = app[SETTINGS], app[OUTBOX_READY]
    deliverer = settings.deliveries == "only"
    app[CUTOVER].commits.background_on_loop = deliverer  # there, nobody's request waits on the loop
    pipe = settings.doorbell if deliverer else None
    if pipe is not None:
        doorbell.listen(pipe)
    worker = asyncio.create_task(outbox_worker(app))
    yield
    await _cancelled(worker)
    if pipe is not None:
        doorbell.stop_listening(pipe)


async def _flows_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The flows' runner, in the process that delivers the outbox (one per gateway: files are claimed
    in the store, so several gateways on one store share them)."""
    runner = app[FLOWS]
    if isinstance(runner.routes, RouteCalls):
        runner.routes.loop = asyncio.get_running_loop()
    task = asyncio.create_task(runner.run())
    yield
    await _cancelled(task)


async def _inbox_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The exception inbox synced with the store every few seconds, and owners told."""
    task = asyncio.create_task(app[INBOX].run())
    yield
    await _cancelled(task)


async def _reconcile_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Scheduled reconciliations, in the process that runs the flows (one gateway of the fleet
    claims each run in the store)."""
    task = asyncio.create_task(app[RECONCILIATIONS].run())
    yield
    await _cancelled(task)


def _check_flows(flows: list[Flow], settings: Settings) -> None:
    """A flow keeps every file's journey in the store: without one it does not run (the routes do)."""
    if settings.store is None:
        for flow in flows:
            log.warning("flow %s keeps its files' journeys in the store: without --store it does not run", flow.name)


def _check_store(table: Table, settings: Settings) -> None:
    """An async route keeps its accepted writes in the store: without one it cannot be served. A
    route's events are kept there too until a broker has them: without a store they are not made,
    and without a broker they wait; the log says so at the start."""
    if settings.store is None:
        needing = [c.route.name for c in table.routes if c.route.asynchronous]
        if needing:
            raise RouteError(
                [
                    f"route {name} is async: its accepted writes are kept in the store, so serve it with --store"
                    for name in needing
                ]
            )
    for compiled in table.routes:
        if compiled.route.events and settings.store is None:
            log.warning("route %s declares events: without --store they are not recorded", compiled.route.name)
        elif compiled.route.events and settings.events_broker is None:
            log.warning(
                "route %s declares events and no --events-broker is set: they wait in the store", compiled.route.name
            )


async def _events_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The relay that publishes the recorded events (one gateway of the fleet at a time)."""
    metrics, settings = app[METRICS], app[SETTINGS]
    assert settings.events_broker is not None
    owner = f"{socket.gethostname()}:{os.getpid()}"
    spans = app[policies.TRACING]

    def traced(event: Recorded) -> Callable[[str | None], None]:
        """A producer span in the trace of the call that made the event."""
        parent = json.loads(event.body).get("traceparent")
        return spans.start(
            f"publish {event.type}",
            parent,
            "producer",
            **{"messaging.message.id": event.event_id, "messaging.destination.name": event.type},
        ).end

    task = asyncio.create_task(
        relay(
            app[EVENT_LOG],
            settings.events_broker,
            owner,
            app[EVENTS_READY],
            lambda kind: metrics.events_published.labels(kind).inc(),
            lambda down: metrics.events_broker_down.set(1 if down else 0),
            traced if settings.otlp_endpoint else None,
        )
    )
    yield
    await _cancelled(task)


def build_app(settings: Settings) -> web.Application:
    """The gateway application; raises RouteError when the routes folder does not validate.

    Resources start in the order of `cleanup_ctx` and close in reverse: the ladder's runtime (store,
    listener, group commit) before the routes' backends, the outbox worker last — so the worker stops
    before the backends it delivers to close, and those before the store they record into.
    """
    table = compile_table(settings.routes)
    _check_store(table, settings)
    app = web.Application(client_max_size=settings.max_body, middlewares=[policies.edge])
    app[SETTINGS] = settings
    if (write := access_log.writer()) is not None:
        app[policies.ACCESS_LOG] = write
    app[policies.TRACING] = tracer(settings.otlp_endpoint)
    app.cleanup_ctx.append(_tracing_lifecycle)
    app[ROUTING] = Routing(table)
    app[METRICS] = Metrics(settings.metrics)
    metrics = app[METRICS]
    if settings.rate_store:  # every process shares the buckets: N workers let the rate through, not N times it
        app[LIMITER] = RedisLimiter(settings.rate_store, lambda down: metrics.rate_store_down.set(1 if down else 0))
    else:
        app[LIMITER] = LocalLimiter()
    app[GUESSES] = Guesses(
        settings.rate_store,
        trusted_networks(settings.trusted_proxies),
        lambda kind: metrics.wrong_keys.labels(kind).inc(),
    )
    app.cleanup_ctx.append(_limiter_lifecycle)
    app.cleanup_ctx.append(_loop_watch_lifecycle)
    routes = [compiled.route for compiled in table.routes]
    declared = load_folder(settings.routes)
    app[DECLARED] = Declared(declared)
    flows, batches = declared.flows, declared.batches
    _check_flows(flows, settings)
    if settings.store:
        infos, entities = ladder(routes, flows, batches)
        app[CUTOVER] = Cutover(settings.store, infos, entities, settings.webhook, settings.in_doubt_after)
        # every process on the store shares the claims: a retry on another worker replays, never rebooks
        app[IDEMPOTENCY] = SharedIdempotency(app[CUTOVER], lease=settings.in_doubt_after)
        if settings.consumers is not None:  # keys created or revoked in the store count within a second
            cutover, keys = app[CUTOVER], settings.consumers

            def take_keys() -> None:
                keys.use_stored(cutover.store.consumers())

            take_keys()
            cutover.listeners.append(take_keys)
        app[OUTBOX_READY] = Doorbell(settings.doorbell if settings.deliveries == "apart" else None)
        app[KEY_TURNS] = KeyTurns()
        app[EVENT_LOG] = EventLog(app[CUTOVER].store)
        app[EVENTS_READY] = asyncio.Event()
        app.cleanup_ctx.append(cutover_lifecycle)
    if IDEMPOTENCY not in app:
        app[IDEMPOTENCY] = LocalIdempotency()  # no store: one process, its own claims
    app.cleanup_ctx.append(_routes_lifecycle)
    if settings.store and settings.deliveries != "apart":
        app.cleanup_ctx.append(_outbox_lifecycle)
    if settings.store and settings.events_broker:
        app.cleanup_ctx.append(_events_lifecycle)
    if settings.store and settings.deliveries != "apart":  # the flows run where the outbox is delivered
        app[FLOWS] = FlowRunner(flows, app[CUTOVER], metrics.flows, batches, RouteCalls(app))
        app.cleanup_ctx.append(_flows_lifecycle)
        app[INBOX] = Watch(app[CUTOVER].store, declared)
        app.cleanup_ctx.append(_inbox_lifecycle)
        scheduled = [spec for spec in declared.reconciliations if spec.schedule is not None]
        if scheduled:
            app[RECONCILIATIONS] = Scheduler(
                scheduled, app[CUTOVER].store, settings.store, settings.routes, settings.webhook
            )
            app.cleanup_ctx.append(_reconcile_lifecycle)
    process_api.build(app, declared.processes, routes)  # none yet: a reload may declare the first
    if settings.store and settings.admin_key:
        app[ADMIN_KEY] = settings.admin_key
        add_admin_routes(app)
        add_inbox_routes(app)
        add_change_routes(app)
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/openapi.json", openapi_endpoint)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/api", api_reference)
    app.router.add_get("/docs/api/{asset}", api_reference)
    if settings.store:
        app.router.add_get(STATUS_PATH, accepted_status)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
