"""The gateway's own endpoints: health and readiness, the Prometheus metrics (with the gauges read
when scraped), the OpenAPI contract, the docs page and the home page."""

from __future__ import annotations

import contextlib
import time

from aiohttp import web

from cutover.runtime import in_thread
from gateway.metrics import OPENMETRICS
from gateway.openapi import docs_page, home_page, openapi
from gateway.state import ADMIN_KEY, CUTOVER, EVENT_LOG, INBOX, METRICS, ROUTING


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    table = request.app[ROUTING].table
    return web.json_response({"status": "ready", "routes": len(table.routes), "loaded_at": table.loaded_at})


def pool_gauges(app: web.Application) -> None:
    """Calls in flight and waiting per backend pool, and the pauses sides asked for, read when asked:
    no cost per call."""
    metrics = app[METRICS]
    for pool, bulkhead in app[ROUTING].table.pools.items():
        metrics.in_flight.labels(pool).set(bulkhead.in_flight)
        metrics.waiting.labels(pool).set(bulkhead.waiting)
    for pool, pause in app[ROUTING].table.pools.pauses.items():
        metrics.paused.labels(pool).set(round(pause.wait(), 1))
    if CUTOVER in app:  # how far each side is behind, as the runtime last read it (every second)
        now, behind = time.time(), app[CUTOVER].behind
        for key in metrics.owed_shown - behind.keys():  # caught up since the last scrape
            metrics.owed.labels(*key).set(0)
            metrics.owed_age.labels(*key).set(0)
        for key, (count, oldest) in behind.items():
            metrics.owed.labels(*key).set(count)
            metrics.owed_age.labels(*key).set(round(max(now - oldest, 0.0), 1))
        metrics.owed_shown = set(behind)
    if INBOX in app:  # the exceptions waiting, as the inbox's last sync counted them
        watch = app[INBOX]
        counts = {(kind, entity, owner or "unowned"): (n, oldest) for kind, entity, owner, n, oldest in watch.counts}
        for key in watch.shown - counts.keys():
            metrics.exceptions.labels(*key).set(0)
            metrics.exceptions_age.labels(*key).set(0)
        for key, (count, oldest) in counts.items():
            metrics.exceptions.labels(*key).set(count)
            metrics.exceptions_age.labels(*key).set(round(max(time.time() - oldest, 0.0), 1))
        watch.shown = set(counts)


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    pool_gauges(request.app)
    if EVENT_LOG in request.app:
        with contextlib.suppress(Exception):  # the store is down: the gauge keeps its last value
            metrics.events_backlog.set(await in_thread(request.app[EVENT_LOG].backlog))
    if "application/openmetrics-text" in request.headers.get("Accept", ""):  # with exemplars: trace ids
        return web.Response(body=metrics.render(openmetrics=True), headers={"Content-Type": OPENMETRICS})
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")


async def openapi_endpoint(request: web.Request) -> web.Response:
    table = request.app[ROUTING].table
    return web.json_response(openapi([c.route for c in table.routes], table.canonical))


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=docs_page([c.route for c in request.app[ROUTING].table.routes]), content_type="text/html")


async def home(request: web.Request) -> web.Response:
    return web.Response(text=home_page(ADMIN_KEY in request.app), content_type="text/html")
