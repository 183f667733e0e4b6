"""The gateway's policies, in the order a request meets them.

`edge` is the one aiohttp middleware: correlation id, problems and the access log, for every path.
A route call then goes through the steps below, which gateway/request.py runs top to bottom:
match → key → scope → rate limit → body size → idempotency → the call.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps's own, in C

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.consumers import Consumer, Consumers
from gateway.guessing import GUESSES, WRONG_KEY
from gateway.limits import Limiter, Verdict
from gateway.problems import Problem, problem
from gateway.tracing import CURRENT, Span, Tracer

# What the policies learn about a request, for the ones after them and for the handler.
CORRELATION_ID = web.RequestKey("correlation_id", str)
CONSUMER = web.RequestKey("consumer", Consumer)
ROUTE_NAME = web.RequestKey("route_name", str)
ENTITY = web.RequestKey("entity", str)
SOAP = web.RequestKey("soap", str)  # the SOAP version a passthrough consumer speaks: its problems are Faults
RETIRING = web.RequestKey("retiring", dict)  # a deprecated version's headers, on every answer it gives
LIMITS = web.RequestKey("limits", Verdict)  # the consumer's bucket: its RateLimit headers go on every answer
SPAN = web.RequestKey("span", Span)  # the gateway's span of this call: backends are sent its traceparent
STEP = web.RequestKey("step", bool)  # a process's step, made on behalf of the consumer that started it
STEP_HEADER, ON_BEHALF_HEADER = "X-Banyan-Step", "X-Banyan-On-Behalf"
TRACING = web.AppKey("tracing", Tracer)  # spans: exported over OTLP, or ids only
ACCESS_LOG: web.AppKey[Callable[[str], None]] = web.AppKey("access_log")  # absent: the access log is off
log = logging.getLogger("banyan.gateway")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PUBLIC = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")


def is_service_path(path: str) -> bool:
    """The gateway's own endpoints: no route, no consumer key (the admin API checks its own key)."""
    return path in PUBLIC or path.startswith(("/docs", "/admin/", "/console")) or path == "/admin"


def correlation_id(request: web.Request) -> str:
    return str(request.get(CORRELATION_ID, ""))


def _text(value: str | None) -> str:
    return "null" if value is None else _quoted(value)


def access_line(request: web.Request, status: int, started: float) -> str:
    """The request's access-log line: the JSON object `json.dumps` would write for these fields,
    put together from quoted strings (a dict and the encoder cost more than the rest of the line)."""
    consumer, span = request.get(CONSUMER), request.get(SPAN)
    return (
        f'{{"correlation_id": {_text(request.get(CORRELATION_ID))}, "method": {_quoted(request.method)}, '
        f'"path": {_quoted(request.path)}, "route": {_text(request.get(ROUTE_NAME))}, '
        f'"entity": {_text(request.get(ENTITY))}, "consumer": {_text(consumer.name if consumer else None)}, '
        f'"status": {int(status)}, "ms": {round((time.perf_counter() - started) * 1000, 2)!r}, '
        f'"trace_id": {_text(span.trace_id if span is not None else None)}}}'
    )


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every request meets, the gateway's own endpoints included: a correlation id (the
    consumer's when it is a plain token, else a new one, echoed back), problems told as RFC 9457
    JSON (or SOAP Faults to a SOAP consumer) instead of tracebacks, and one JSON access-log line."""
    started = time.perf_counter()
    given = request.headers.get("X-Correlation-ID", "")
    # a fresh id only has to be unique, not secret: 128 random bits without a system call per request
    request[CORRELATION_ID] = cid = given if _SAFE_ID.match(given) else f"{random.getrandbits(128):032x}"
    # a span in the consumer's trace, or the first of a new one; every log line of the call names both ids
    tracer, parent = request.app[TRACING], request.headers.get("traceparent")
    if tracer.exporting:
        span = tracer.start(
            f"{request.method} {request.path}",
            parent,
            "server",
            **{"http.request.method": request.method, "url.path": request.path},
        )
    else:
        span = tracer.ids(parent)
    request[SPAN] = span
    CURRENT.set((span.trace_id, cid))
    status = 500
    try:
        try:
            response = await handler(request)
        except Problem as exc:
            if (wrong := request.get(WRONG_KEY)) is not None and (guesses := request.app.get(GUESSES)) is not None:
                await guesses.wrong(request, *wrong)  # a wrong key's answer waits; a right one never does
            response = exc.response(cid, request.get(SOAP))
        except web.HTTPRequestEntityTooLarge:
            response = problem(413, "Request body too large", "the body is over the gateway's size limit", cid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem(exc.status, exc.reason, "", cid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error (correlation id %s)", cid)
            response = problem(
                500, "Internal error", "the gateway failed; quote the correlation id to its operators", cid
            )
        status = response.status
        if (retiring := request.get(RETIRING)) is not None:
            response.headers.update(retiring)
        if (limits := request.get(LIMITS)) is not None:
            limits.tell(response.headers)
        response.headers["X-Correlation-ID"] = cid
        response.headers["Server"] = "banyan"  # not the Python and aiohttp versions
        return response
    finally:
        if span.otel is not None:
            span.set(
                **{
                    "http.response.status_code": status,
                    "http.route": request.get(ROUTE_NAME),
                    "banyan.entity": request.get(ENTITY),
                    "banyan.correlation_id": cid,
                }
            )
            span.end(f"answered {status}" if status >= 500 else None)
        if (write := request.app.get(ACCESS_LOG)) is not None:
            write(access_line(request, status, started))


# -- the steps of a route call, in order (gateway/request.py runs them) -----------------------------
def authenticate(consumers: Consumers | None, request: web.Request, step_token: str = "") -> Consumer | None:
    """The consumer whose key the request carries; None when the gateway runs without keys. A
    process's step (its gateway's own token in X-Banyan-Step) is made on behalf of the consumer that
    started the instance, with that consumer's entities and limits."""
    step = request.headers.get(STEP_HEADER)
    if step is not None:
        if not step_token or not hmac.compare_digest(step.encode("utf-8", "surrogateescape"), step_token.encode()):
            raise Problem(401, "Unknown API key", "the step token is not this gateway's")
        request[STEP] = True
        if consumers is None:
            return None
        on_behalf = consumers.named(urllib.parse.unquote(request.headers.get(ON_BEHALF_HEADER, "")))
        if on_behalf is None:
            raise Problem(401, "Unknown API key", "the consumer that started the process has no valid key now")
        request[CONSUMER] = on_behalf
        return on_behalf
    if consumers is None:
        return None
    key = request.headers.get("X-API-Key", "")
    bearer = request.headers.get("Authorization", "")
    if not key and bearer.lower().startswith("bearer "):
        key = bearer[7:].strip()
    if not key:
        raise Problem(401, "API key required", "send your key in the X-API-Key header", {"WWW-Authenticate": "ApiKey"})
    found = consumers.find(key)
    if found is None:
        request[WRONG_KEY] = ("api", key)
        raise Problem(
            401,
            "Unknown API key",
            "the key is not valid; ask for one with the routes you need",
            {"WWW-Authenticate": "ApiKey"},
        )
    request[CONSUMER] = found
    return found


def scope(consumer: Consumer | None, route: str, step: bool = False) -> None:
    """A consumer calls the routes its key names; a process's step calls what the process declares."""
    if consumer is not None and not step and not consumer.may_call(route):
        raise Problem(403, "Route not allowed", f"your key is not scoped to route {route}")


async def rate_limit(request: web.Request, limiter: Limiter, consumer: Consumer | None, route: str) -> None:
    """Take a token from the consumer's bucket for this route; every answer says what is left."""
    if consumer is None:
        return
    verdict = limiter.now(consumer, route)
    if verdict is None:  # a shared bucket: ask the rate store
        verdict = await limiter.allow(consumer, route)
    request[LIMITS] = verdict
    if not verdict.allowed:
        raise Problem(429, "Too many requests", f"slow down: {consumer.rate:g} requests/s on this route")


def body_size(request: web.Request, limit: int) -> None:
    """Refuse a declared oversized body before reading it (aiohttp's own limit catches the rest)."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Request body too large", f"the limit is {limit:,} bytes")
