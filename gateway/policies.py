"""The gateway's policies, each a small aiohttp middleware, in the order a request meets them:
correlation id → access log → problems → auth → rate limit → body size → idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.consumers import Consumer, Consumers
from gateway.problems import Problem, problem

# What the policies learn about a request, for the ones after them and for the handler.
CORRELATION_ID = web.RequestKey("correlation_id", str)
CONSUMER = web.RequestKey("consumer", Consumer)
ROUTE_NAME = web.RequestKey("route_name", str)
ENTITY = web.RequestKey("entity", str)
SOAP = web.RequestKey("soap", str)  # the SOAP version a passthrough consumer speaks: its problems are Faults
ACCESS = logging.getLogger("banyan.access")
log = logging.getLogger("banyan.gateway")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PUBLIC = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")


def is_service_path(path: str) -> bool:
    """The gateway's own endpoints: no route, no consumer key (the admin API checks its own key)."""
    return path in PUBLIC or path.startswith(("/docs", "/admin/", "/console")) or path == "/admin"


def correlation_id(request: web.Request) -> str:
    return str(request.get(CORRELATION_ID, ""))


@web.middleware
async def correlation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the consumer's X-Correlation-ID when it is a plain token, else make one; echo it back."""
    given = request.headers.get("X-Correlation-ID", "")
    request[CORRELATION_ID] = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    response = await handler(request)
    response.headers["X-Correlation-ID"] = request[CORRELATION_ID]
    response.headers["Server"] = "banyan"  # not the Python and aiohttp versions
    return response


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        if ACCESS.isEnabledFor(logging.INFO):
            consumer = request.get(CONSUMER)
            ACCESS.info(
                json.dumps(
                    {
                        "correlation_id": request.get(CORRELATION_ID),
                        "method": request.method,
                        "path": request.path,
                        "route": request.get(ROUTE_NAME),
                        "entity": request.get(ENTITY),
                        "consumer": consumer.name if consumer else None,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                )
            )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response(correlation_id(request), request.get(SOAP))
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413, "Request body too large", "the body is over the gateway's size limit", correlation_id(request)
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, "", correlation_id(request))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error (correlation id %s)", correlation_id(request))
        return problem(
            500,
            "Internal error",
            "the gateway failed; quote the correlation id to its operators",
            correlation_id(request),
        )


def auth(consumers: Consumers | None) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if consumers is None or is_service_path(request.path):
            return await handler(request)
        key = request.headers.get("X-API-Key", "")
        bearer = request.headers.get("Authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key:
            raise Problem(
                401, "API key required", "send your key in the X-API-Key header", {"WWW-Authenticate": "ApiKey"}
            )
        found = consumers.find(key)
        if found is None:
            raise Problem(
                401,
                "Unknown API key",
                "the key is not valid; ask for one with the routes you need",
                {"WWW-Authenticate": "ApiKey"},
            )
        request[CONSUMER] = found
        return await handler(request)

    return middleware


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float) -> None:
        self.tokens, self.stamp = tokens, time.monotonic()


class RateLimiter:
    """A token bucket per consumer and route."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def allow(self, consumer: Consumer, route: str) -> float:
        """0 when allowed, else the seconds to wait."""
        bucket = self._buckets.get((consumer.name, route))
        if bucket is None:
            bucket = self._buckets[(consumer.name, route)] = _Bucket(consumer.burst)
        now = time.monotonic()
        bucket.tokens = min(consumer.burst, bucket.tokens + (now - bucket.stamp) * consumer.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / consumer.rate


@dataclass
class Stored:
    digest: str
    status: int
    body: bytes
    content_type: str
    created: float


class IdempotencyStore:
    """Responses to writes by (consumer, route, Idempotency-Key), kept for `ttl` seconds, at most `size`."""

    def __init__(self, ttl: float = 24 * 3600, size: int = 100_000) -> None:
        self.ttl, self.size = ttl, size
        self._done: OrderedDict[tuple[str, str, str], Stored] = OrderedDict()
        self._running: set[tuple[str, str, str]] = set()

    def get(self, key: tuple[str, str, str]) -> Stored | None:
        found = self._done.get(key)
        if found and time.monotonic() - found.created > self.ttl:
            del self._done[key]
            return None
        return found

    def put(self, key: tuple[str, str, str], stored: Stored) -> None:
        self._done[key] = stored
        self._done.move_to_end(key)
        while len(self._done) > self.size:
            self._done.popitem(last=False)

    def begin(self, key: tuple[str, str, str]) -> bool:
        if key in self._running:
            return False
        self._running.add(key)
        return True

    def end(self, key: tuple[str, str, str]) -> None:
        self._running.discard(key)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
