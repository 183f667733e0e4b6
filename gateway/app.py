"""The aiohttp gateway: managed routes and SOAP passthrough over legacy backends, with its policies.

Routes are matched here rather than by aiohttp's router, so a changed routes folder can be swapped
in while requests are in flight: each request keeps the table it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from lxml import etree

from cutover.compare import Comparator, Difference, Kind
from cutover.decide import Plan, Side, decide
from cutover.outbox import Message, idempotency_key
from cutover.store import StoreError
from gateway import policies
from gateway.consumers import Consumer, Consumers
from gateway.cutover import ADMIN_KEY, CUTOVER, Cutover, add_admin_routes, in_thread, rule_for
from gateway.cutover import lifecycle as cutover_lifecycle
from gateway.inputs import forwardable, parse_json, schema_validator
from gateway.metrics import Metrics
from gateway.openapi import docs_page, openapi
from gateway.policies import (
    CONSUMER,
    ENTITY,
    ROUTE_NAME,
    IdempotencyStore,
    RateLimiter,
    Stored,
    body_digest,
    correlation_id,
)
from gateway.problems import Problem
from gateway.resilience import Breaker, guarded
from gateway.spec import LegacySide, Route, RouteError, load_routes
from gateway.upstream import Answer as SoapReply
from gateway.upstream import Upstream, UpstreamError
from legacy_adapters import Backend, BackendError, Call, create, xmljson
from legacy_adapters.mapping import MappingError, pointer_get

log = logging.getLogger("banyan.gateway")
DEFAULT_MAX_BODY = 1024 * 1024
RELOAD_SECONDS = 1.0


@dataclass
class Bound:
    """One side of a route for one entity: its backend, breaker and compiled mappings."""

    backend: Backend
    breaker: Breaker
    request_map: Any
    response_map: Any


class Compiled:
    def __init__(self, route: Route, base: Path) -> None:
        self.route = route
        self.base = base
        if route.operation is not None:
            self.method = route.operation.method
            pattern = re.sub(
                r"{(\w+)}", r"(?P<\1>[^/]+)", re.escape(route.operation.path).replace(r"\{", "{").replace(r"\}", "}")
            )
            schema = route.operation.request
            self.validator = schema_validator(schema) if schema else None
        else:
            assert route.passthrough is not None
            self.method = "POST"
            pattern = re.escape(route.passthrough.path)
            self.validator = None
            self.entity_xpath = self._xpath("entity_xpath", route.passthrough.entity_xpath)
            self.key_xpath = self._xpath("key_xpath", route.passthrough.key_xpath)
            urls = {Side.legacy: route.passthrough.legacy, Side.cloud: route.passthrough.cloud}
            breaker = route.resilience.breaker
            self.soap_sides = {side: (Upstream(url), Breaker(breaker.failures, breaker.reset))
                               for side, url in urls.items() if url}  # fmt: skip
        self.regex = re.compile(f"^{pattern}$")
        self._bound: dict[tuple[str, str], Bound] = {}
        self.comparator = Comparator(route.compare)
        values = route.entity.values if route.entity is not None else None
        self.known_entities = frozenset([*(values or []), *route.entities])

    def label(self, entity: str | None) -> str:
        """The entity as a metric label: only entities the route lists (or, for a route that lists
        none, the deployment's routes do), so random names cannot grow /metrics; anything else is `other`."""
        if not entity:
            return ""
        return entity if entity in self.known_entities else "other"

    def _xpath(self, name: str, expression: str | None) -> etree.XPath | None:
        # `string(X)` reads the first match only; X itself gives every match, to check they agree.
        if expression and (wrapped := re.fullmatch(r"\s*string\((.*)\)\s*", expression, re.DOTALL)):
            expression = wrapped.group(1)
        try:
            return etree.XPath(expression) if expression else None
        except etree.XPathSyntaxError as exc:
            raise RouteError([f"route {self.route.name}: {name} is not valid XPath: {exc}"]) from None

    def bound(self, side: str, entity: str | None) -> Bound:
        spec = self.route.side(side, entity)
        if spec is None:
            raise Problem(501, "No backend", f"route {self.route.name} has no {side} side")
        # entities without an override share the route's backend (and its breaker)
        owner = entity if entity in self.route.entities and side in self.route.entities[entity] else ""
        found = self._bound.get((side, owner))
        if found is None:
            found = self._bound[(side, owner)] = self._bind(spec)
        return found

    def _bind(self, spec: LegacySide) -> Bound:
        breaker = self.route.resilience.breaker
        return Bound(
            backend=create(spec.backend),
            breaker=Breaker(breaker.failures, breaker.reset),
            request_map=spec.request.compile(self.base) if spec.request else None,
            response_map=spec.response.compile(self.base) if spec.response else None,
        )

    def breakers(self) -> list[tuple[str, str, Breaker]]:
        return [(side, owner or "*", bound.breaker) for (side, owner), bound in self._bound.items()]

    async def close(self) -> None:
        for bound in self._bound.values():
            await bound.backend.close()
        for upstream, _ in getattr(self, "soap_sides", {}).values():
            upstream.close()


@dataclass
class Table:
    routes: list[Compiled]
    loaded_at: float = field(default_factory=time.time)

    def match(self, method: str, path: str) -> tuple[Compiled, dict[str, str]]:
        allowed: list[str] = []
        for compiled in self.routes:
            found = compiled.regex.match(path)
            if found:
                # HEAD is GET without the body (aiohttp drops it): monitors and caches ask so
                if compiled.method == method or (method == "HEAD" and compiled.method == "GET"):
                    return compiled, found.groupdict()
                allowed += [compiled.method, "HEAD"] if compiled.method == "GET" else [compiled.method]
        if allowed:
            raise Problem(
                405,
                "Method not allowed",
                f"{path} answers {', '.join(sorted(set(allowed)))}",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise Problem(404, "No such route", f"no route serves {method} {path}; see /openapi.json")

    async def close(self) -> None:
        for compiled in self.routes:
            await compiled.close()


@dataclass
class Settings:
    routes: Path
    consumers: Consumers | None
    max_body: int = DEFAULT_MAX_BODY
    reload: bool = True
    store: str | None = None  # the cutover store: a SQLite file or postgresql://…
    admin_key: str | None = None  # enables the admin API
    webhook: str | None = None  # called when a guardrail steps a route down
    in_doubt_after: float = 60.0  # seconds before an outbox intent without an outcome is in doubt


ROUTE = web.RequestKey("route", Compiled)
PARAMS = web.RequestKey("params", dict)


@dataclass
class Routing:
    """The table in force; reloading swaps `table`, and each request keeps the one it matched in."""

    table: Table


ROUTING = web.AppKey("routing", Routing)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", RateLimiter)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
CLIENT = web.AppKey("client", aiohttp.ClientSession)


def compile_table(folder: Path) -> Table:
    compiled = [Compiled(route, folder) for route in load_routes(folder)]
    # A route that lists no entities (a passthrough reading its entity from the envelope) labels
    # the entities some route of the deployment names; anything else is still `other`.
    every = frozenset().union(*(c.known_entities for c in compiled))
    for route in compiled:
        route.known_entities = route.known_entities or every
    return Table(compiled)


# -- policies that need the matched route ----------------------------------------------------------
@web.middleware
async def match(request: web.Request, handler: Handler) -> web.StreamResponse:
    if policies.is_service_path(request.path):
        return await handler(request)
    table = request.app[ROUTING].table
    compiled, params = table.match(request.method, request.path)
    request[ROUTE], request[PARAMS], request[ROUTE_NAME] = compiled, params, compiled.route.name
    if compiled.route.passthrough is not None:  # a SOAP consumer: its problems are told as Faults
        request[policies.SOAP] = "1.2" if "application/soap+xml" in request.headers.get("Content-Type", "") else "1.1"
    return await handler(request)


@web.middleware
async def scope(request: web.Request, handler: Handler) -> web.StreamResponse:
    consumer: Consumer | None = request.get(CONSUMER)
    compiled: Compiled | None = request.get(ROUTE)
    if consumer is not None and compiled is not None and not consumer.may_call(compiled.route.name):
        raise Problem(403, "Route not allowed", f"your key is not scoped to route {compiled.route.name}")
    return await handler(request)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    consumer: Consumer | None = request.get(CONSUMER)
    compiled: Compiled | None = request.get(ROUTE)
    if consumer is not None and compiled is not None:
        wait = request.app[LIMITER].allow(consumer, compiled.route.name)
        if wait:
            raise Problem(
                429,
                "Too many requests",
                f"slow down: {consumer.rate:g} requests/s on this route",
                {"Retry-After": str(max(1, round(wait)))},
            )
    return await handler(request)


@web.middleware
async def body_size(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SETTINGS].max_body
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Request body too large", f"the limit is {limit:,} bytes")
    return await handler(request)


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    compiled: Compiled | None = request.get(ROUTE)
    given = request.headers.get("Idempotency-Key")
    if compiled is None or not compiled.route.writes or not given:
        return await handler(request)
    if len(given) > 255:
        raise Problem(400, "Idempotency-Key too long", "use at most 255 characters")
    consumer: Consumer | None = request.get(CONSUMER)
    key = (consumer.name if consumer else "-", compiled.route.name, given)
    digest = body_digest(await request.read())
    store = request.app[IDEMPOTENCY]
    stored = store.get(key)
    if stored is not None:
        if stored.digest != digest:
            raise Problem(
                422,
                "Idempotency-Key reused",
                "this key was used with a different body; use a new key for a new request",
            )
        replay = web.Response(status=stored.status, body=stored.body, content_type=stored.content_type)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    if not store.begin(key):
        raise Problem(409, "Request in progress", "a request with this Idempotency-Key is still being processed")
    try:
        response = await handler(request)
        if isinstance(response, web.Response) and response.status < 500 and response.body is not None:
            body = response.body if isinstance(response.body, bytes) else b""
            store.put(key, Stored(digest, response.status, body, response.content_type, time.monotonic()))
        return response
    finally:
        store.end(key)


# -- the handlers ----------------------------------------------------------------------------------
def _value(source: Any, request: web.Request, params: dict[str, str], body: Any, xml: Any = None) -> str | None:
    if source is None:
        return None
    kind = source.from_
    try:
        if kind == "path":
            return params.get(source.name)
        if kind == "header":
            return request.headers.get(source.name)
        if kind == "query":
            return request.query.get(source.name)
        if kind == "constant":
            return str(source.value)
        if kind == "json":
            return str(pointer_get(body, source.pointer))
        if kind == "xpath" and xml is not None:
            found = xml.xpath(source.xpath)
            return str(found[0] if isinstance(found, list) and found else found) or None
    except MappingError:
        return None
    return None


async def _json_body(request: web.Request, compiled: Compiled) -> Any:
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    raw = await request.read()
    if not raw:
        body: Any = {}
    else:
        if request.content_type not in ("application/json", "application/merge-patch+json"):
            raise Problem(415, "Unsupported media type", "send application/json")
        body = parse_json(raw)
    if compiled.validator is not None:
        try:
            errors = sorted(compiled.validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        except RecursionError:
            raise Problem(400, "Malformed JSON", "the document nests too deeply") from None
        if errors:
            listed = [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors[:20]]
            raise Problem(422, "Request does not match the schema", "see errors", errors=listed)
    return body


def _backend_problem(exc: BackendError) -> Problem:
    return Problem(exc.status, exc.title, str(exc))


@dataclass
class Answer:
    """One side's answer, mapped to the public shape."""

    status: int
    body: Any


async def _call_side(app: web.Application, compiled: Compiled, side: str, entity: str | None, call: Call) -> Answer:
    """Call one side through its breaker and retries; a failure is a Problem."""
    route = compiled.route
    bound = compiled.bound(side, entity)
    try:
        payload = bound.request_map(call.payload) if bound.request_map else call.payload
    except MappingError as exc:
        raise Problem(422, "Request cannot be mapped", f"the request lacks a field the backend needs: {exc}") from None
    metrics = app[METRICS]
    timeout = bound.backend.config.timeout
    resilience = route.resilience
    sided = replace(call, payload=payload)
    try:
        reply = await guarded(
            lambda: asyncio.wait_for(bound.backend.call(sided), timeout + 1),
            bound.breaker,
            resilience.retries,
            resilience.backoff,
            bound.backend.retry_safe and not route.writes,
        )
    except BackendError as exc:
        metrics.backend_errors.labels(route.name, side, type(exc).__name__).inc()
        raise _backend_problem(exc) from None
    except TimeoutError:
        bound.breaker.failure()
        raise Problem(504, "Backend timed out", f"no answer within {timeout:g} s") from None
    finally:
        metrics.breaker_open.labels(route.name, side, compiled.label(entity)).set(
            1 if bound.breaker.state != "closed" else 0
        )
    if reply.status == 404:
        raise Problem(404, "Not found", f"the {side} system has no such {call.key or 'resource'}")
    try:
        result = bound.response_map(reply.body) if bound.response_map else reply.body
    except MappingError as exc:
        raise Problem(502, "Backend answer did not fit", f"the {side} system's answer lacks a field: {exc}") from None
    return Answer(reply.status, result)


async def _counted(
    app: web.Application, compiled: Compiled, side: Side, entity: str | None, call: Call, rung: str, role: str
) -> Answer | Problem:
    """Call a side and count the call as evidence; a failure is returned, not raised."""
    cutover = app.get(CUTOVER)
    try:
        answer: Answer | Problem = await _call_side(app, compiled, side.value, entity, call)
    except Problem as exc:
        answer = exc
    failed = isinstance(answer, Problem) and answer.status >= 500
    outcome = "error" if failed else "ok"
    app[METRICS].side_calls.labels(compiled.route.name, compiled.label(entity), side.value, role, outcome).inc()
    if cutover is not None:
        cutover.called(compiled.route.name, entity, rung, side, failed)
    return answer


def _outcome(answer: Answer | Problem) -> tuple[int, Any]:
    return (answer.status, answer.detail) if isinstance(answer, Problem) else (200, answer.body)


def _judge(
    app: web.Application,
    compiled: Compiled,
    entity: str | None,
    rung: str,
    legacy: Answer | Problem,
    cloud: Answer | Problem,
) -> None:
    """Compare the two sides' answers to one call and count the result as evidence."""
    cutover = app.get(CUTOVER)
    if cutover is None or any(isinstance(a, Problem) and a.status >= 500 for a in (legacy, cloud)):
        return  # an error is counted as an error, not as a mismatch
    if isinstance(legacy, Answer) and isinstance(cloud, Answer):
        differences = compiled.comparator.compare(legacy.body, cloud.body)
    else:  # a 4xx on either side: the answers agree when the statuses do
        (legacy_status, _), (cloud_status, _) = _outcome(legacy), _outcome(cloud)
        differences = []
        if legacy_status != cloud_status:
            differences.append(Difference("/", Kind.value, legacy_status, cloud_status))
    route = compiled.route
    mismatched = cutover.compared(route.name, entity, rung, differences)
    result = "mismatch" if mismatched else "noise" if differences else "match"
    app[METRICS].comparisons.labels(route.name, compiled.label(entity), result).inc()
    if differences:
        where = ", ".join(f"{d.path} ({d.kind})" for d in differences[:5])
        log.info("cutover mismatch on %s/%s: %s", route.name, entity, where)


async def _compare(
    app: web.Application,
    compiled: Compiled,
    entity: str | None,
    served: Answer | Problem,
    mirror: asyncio.Task[Any],
    rung: str,
    served_by: Side,
    call: Call,
) -> None:
    """Compare the mirrored answer with the served one, off the request path."""
    other = await mirror
    legacy, cloud = (served, other) if served_by is Side.legacy else (other, served)
    _judge(app, compiled, entity, rung, legacy, cloud)
    sample = compiled.route.compare.noise_sample
    if sample and not compiled.route.writes and isinstance(legacy, Answer) and random.random() < sample:
        await _learn_noise(app, compiled, entity, legacy, call)


async def _learn_noise(app: web.Application, compiled: Compiled, entity: str | None, first: Answer, call: Call) -> None:
    """Ask legacy the same read again: the fields that differ now differ on their own."""
    cutover = app.get(CUTOVER)
    try:
        second = await _call_side(app, compiled, Side.legacy.value, entity, call)
    except Problem:
        return
    if cutover is not None:
        cutover.noised(compiled.route.name, entity, compiled.comparator.compare(first.body, second.body))


_BACKGROUND: set[asyncio.Task[Any]] = set()


def _later(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
    _BACKGROUND.add(task)  # keep a reference until it is done
    task.add_done_callback(_BACKGROUND.discard)
    return task


async def managed(request: web.Request) -> web.StreamResponse:
    compiled: Compiled = request[ROUTE]
    route = compiled.route
    params: dict[str, str] = request[PARAMS]
    body = await _json_body(request, compiled)
    entity = _value(route.entity, request, params, body)
    key = _value(route.key, request, params, body)
    request[ENTITY] = compiled.label(entity)
    if route.entity is not None and route.entity.values is not None and entity not in route.entity.values:
        raise Problem(404, "Unknown legal entity", f"{entity!r} is not one of {', '.join(route.entity.values)}")
    consumer: Consumer | None = request.get(CONSUMER)
    if consumer is not None and route.entity is not None and not consumer.may_serve(entity):
        raise Problem(403, "Entity not allowed", f"your key is not scoped to legal entity {entity}")
    cutover = request.app.get(CUTOVER)
    rule = rule_for(cutover, route, entity)
    plan = decide(rule, key, route.writes, route.name)
    source = {**(body if isinstance(body, dict) else {}), **params, **dict(request.query)}
    headers = forwardable(
        {k: v for k, v in request.headers.items() if k.lower() in ("traceparent", "tracestate", "idempotency-key")}
    )
    call = Call(route.name, source, entity, key, correlation_id(request), headers, route.writes, params)
    side = plan.serve
    if route.writes and plan.mirror is not None and cutover is not None:
        answer = await _write_through_outbox(request, compiled, plan.serve, plan.mirror, entity, call, rule.rung)
        return _respond(request, route, answer, side)
    mirror = (
        _later(_counted(request.app, compiled, plan.mirror, entity, call, rule.rung, "mirror")) if plan.mirror else None
    )
    answer = await _counted(request.app, compiled, side, entity, call, rule.rung, "serve")
    if isinstance(answer, Problem) and answer.status >= 500 and plan.fallback is not None:
        log.warning("%s failed on %s, answered by %s: %s", route.name, side.value, plan.fallback.value, answer.detail)
        side = plan.fallback
        answer = await _counted(request.app, compiled, side, entity, call, rule.rung, "fallback")
    if mirror is not None and plan.compare and side is plan.serve:  # after a fallback both answers are legacy's
        _later(_compare(request.app, compiled, entity, answer, mirror, rule.rung, side, call))
    return _respond(request, route, answer, side)


def _respond(request: web.Request, route: Route, answer: Answer | Problem, side: Side) -> web.Response:
    if isinstance(answer, Problem):
        raise answer
    status = 201 if route.writes and request.method == "POST" and answer.status in (200, 201) else 200
    if answer.status == 202:
        status = 202
    response = web.json_response(answer.body, status=status)
    response.headers["X-Served-By"] = side.value
    return response


# -- writes owed to the other side: the outbox ----------------------------------------------------
OUTBOX_POLL_SECONDS = 0.2


async def _write_through_outbox(
    request: web.Request, compiled: Compiled, serve: Side, other: Side, entity: str | None, call: Call, rung: str
) -> Answer | Problem:
    """Record the other side's copy, make the serving call, settle the copy — then answer. Both records
    go through the group commit: a surge of writes shares transactions instead of queueing for them."""
    app = request.app
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    route = compiled.route
    given = request.headers.get("Idempotency-Key")
    idempotency = idempotency_key(route.name, entity or "*", given, call.correlation_id)
    message = {"payload": call.payload, "params": call.params, "headers": call.headers,
               "correlation_id": call.correlation_id}  # fmt: skip
    try:
        message_id = await commits.run(
            outbox.intend_in, route.name, entity or "*", call.key, other.value, rung, message, idempotency
        )
    except StoreError as exc:
        detail = f"the copy for the {other.value} side cannot be recorded, so nothing was sent: {exc}"
        raise Problem(503, "Write not accepted", detail) from None
    answer = await _counted(app, compiled, serve, entity, call, rung, "serve")
    if isinstance(answer, Answer):
        outcome, served, error = "pending", answer.body, ""
    elif answer.status == 504:  # no answer in time: the serving side may or may not have written
        outcome, served, error = "in_doubt", None, answer.detail
    else:
        outcome, served, error = "cancelled", None, f"{answer.status} {answer.title}: {answer.detail}"
    try:
        await commits.run(outbox.settle_in, message_id, outcome, served, error)
    except StoreError:
        if isinstance(answer, Answer):
            detail = (f"the {serve.value} side took the write, but its copy for the {other.value} side could not be "
                      f"recorded; outbox message {message_id} will be listed as in doubt")  # fmt: skip
            raise Problem(503, "Write made but not recorded", detail) from None
    return answer


async def _deliver(app: web.Application, message: Message) -> None:
    """Deliver one outbox message to its side and compare the answer with the one served."""
    cutover = app[CUTOVER]
    outbox, commits = cutover.outbox, cutover.commits
    compiled = next((c for c in app[ROUTING].table.routes if c.route.name == message.route), None)
    if compiled is None:
        error = f"route {message.route} is no longer served"
        await commits.run(outbox.failed_in, message, error, message.attempts + 1)
        return
    entity = None if message.entity == "*" else message.entity
    body = message.call
    headers = {**body.get("headers", {}), "Idempotency-Key": message.idempotency_key}
    call = Call(message.route, body["payload"], entity, message.business_key, body.get("correlation_id", ""), headers,
                True, body.get("params", {}))  # fmt: skip
    side = Side(message.side)
    answer = await _counted(app, compiled, side, entity, call, message.rung, "outbox")
    if isinstance(answer, Answer):
        await commits.run(outbox.delivered_in, message.id)
        served = Answer(200, message.served)
        legacy, cloud = (answer, served) if side is Side.legacy else (served, answer)
        _judge(app, compiled, entity, message.rung, legacy, cloud)
    elif answer.status >= 500:
        await commits.run(outbox.failed_in, message, f"{answer.status} {answer.title}: {answer.detail}")
    else:  # the side refused the write: retrying the same write will not change that
        error = f"{answer.status} {answer.title}: {answer.detail}"
        await commits.run(outbox.failed_in, message, error, message.attempts + 1)


OUTBOX_BATCH = 32  # messages claimed at once; each is the head of its own key, so they go out together


async def _outbox_worker(app: web.Application) -> None:
    """Claim what is due (a read, then a lease through the group commit) and deliver it concurrently:
    the claimed messages are heads of different keys, so no key's order is at stake."""
    cutover = app[CUTOVER]
    owner = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        messages: list[Message] = []
        try:
            due = await in_thread(cutover.outbox.due, OUTBOX_BATCH)
            if due:
                messages = await cutover.commits.run(cutover.outbox.lease_in, owner, due)
            await asyncio.gather(*(_deliver(app, message) for message in messages))
        except Exception as exc:  # the store is down: keep serving, try again
            log.error("outbox delivery paused: %s", exc)
            await asyncio.sleep(1)
        if not messages:
            await asyncio.sleep(OUTBOX_POLL_SECONDS)


_FORWARDED = frozenset(("content-type", "soapaction", "traceparent", "tracestate"))


def _body_of(document: Any) -> Any:
    """The envelope reduced to its Body, so that every XPath — `//customer` or a computed `concat(…)`
    — reads the Body only: a decoy in the Header cannot choose the entity. The parsed envelope serves
    only these XPaths (the raw bytes are what is forwarded), so the Header is dropped in place."""
    for child in list(document):
        if not (isinstance(child.tag, str) and xmljson.local(child.tag) == "Body"):
            document.remove(child)
    return document


def _xpath_text(xpath: etree.XPath | None, scope: Any) -> str | None:
    """What `xpath` finds in the Body; matches that disagree (one customer of ours, one of another
    entity's) are refused rather than the first one taken."""
    if xpath is None:
        return None
    found = xpath(scope)
    if not isinstance(found, list):
        return str(found) or None
    values = {
        ("".join(str(text) for text in node.itertext()) if isinstance(node, etree._Element) else str(node)).strip()
        for node in found
    } - {""}
    if len(values) > 1:
        raise Problem(
            400, "Ambiguous envelope", f"the Body names {len(values)} different values where the route reads one"
        )
    return values.pop() if values else None


async def _soap_side(
    app: web.Application, compiled: Compiled, side: Side, entity: str | None, rung: str, raw: bytes,
    headers: dict[str, str], role: str,
) -> SoapReply | Problem:  # fmt: skip
    """Forward the envelope to one side's SOAP service through its breaker, and count the call as evidence.
    A SOAP Fault is the service's answer (the request was wrong), not its failure."""
    spec = compiled.route.passthrough
    assert spec is not None
    upstream, breaker = compiled.soap_sides[side]
    answer: SoapReply | Problem
    try:
        breaker.before()
        answer = await upstream.post(raw, headers, spec.timeout)
        failed = answer.status >= 500 and b"Fault" not in answer.body
        (breaker.failure if failed else breaker.success)()
        if failed:
            answer = Problem(502, "Backend failed", f"the {side.value} SOAP service answered {answer.status}")
    except BackendError as exc:  # the breaker is open
        answer = _backend_problem(exc)
    except TimeoutError:
        breaker.failure()
        answer = Problem(504, "Backend timed out", f"the SOAP service gave no answer within {spec.timeout:g} s")
    except UpstreamError as exc:
        breaker.failure()
        answer = Problem(503, "Backend unavailable", f"cannot reach the SOAP service: {exc}")
    except BaseException:
        breaker.abandon()
        raise
    failed = isinstance(answer, Problem)
    app[METRICS].side_calls.labels(
        compiled.route.name, compiled.label(entity), side.value, role, "error" if failed else "ok"
    ).inc()
    cutover = app.get(CUTOVER)
    if cutover is not None:
        cutover.called(compiled.route.name, entity, rung, side, failed)
    return answer


def _soap_answer(answer: SoapReply | Problem) -> Answer | Problem:
    """A SOAP answer in the shape the comparator reads: its envelope's body as JSON."""
    if isinstance(answer, Problem):
        return answer
    try:
        return Answer(answer.status, xmljson.to_json(xmljson.parse(answer.body)))
    except ValueError as exc:  # not well-formed, or hostile
        return Problem(502, "Backend answer is not XML", str(exc))


async def _compare_soap(
    app: web.Application, compiled: Compiled, entity: str | None, rung: str, served_by: Side,
    served: SoapReply | Problem, mirror: asyncio.Task[SoapReply | Problem],
) -> None:  # fmt: skip
    other = await mirror
    mine, theirs = _soap_answer(served), _soap_answer(other)
    legacy, cloud = (mine, theirs) if served_by is Side.legacy else (theirs, mine)
    _judge(app, compiled, entity, rung, legacy, cloud)


async def passthrough(request: web.Request) -> web.StreamResponse:
    """Forward a SOAP envelope as it is to the side the cutover rule picks; reads are mirrored and compared."""
    compiled: Compiled = request[ROUTE]
    spec = compiled.route.passthrough
    assert spec is not None
    raw = await request.read()
    try:
        document = xmljson.parse(raw)
    except xmljson.HostileXml as exc:
        raise Problem(400, "Unacceptable XML", str(exc)) from None
    scope = _body_of(document)
    entity = _xpath_text(compiled.entity_xpath, scope)
    request[ENTITY] = compiled.label(entity)
    consumer: Consumer | None = request.get(CONSUMER)
    if consumer is not None and spec.entity_xpath and not consumer.may_serve(entity):
        raise Problem(403, "Entity not allowed", f"your key is not scoped to legal entity {entity}")
    route = compiled.route
    rule = rule_for(request.app.get(CUTOVER), route, entity)
    plan = decide(rule, _xpath_text(compiled.key_xpath, scope), route.writes, route.name)
    if Side.cloud not in compiled.soap_sides:
        plan = Plan(Side.legacy)  # nothing to move to
    forward = forwardable({k: v for k, v in request.headers.items() if k.lower() in _FORWARDED})
    forward["X-Correlation-ID"] = correlation_id(request)
    app, side = request.app, plan.serve
    # a write is never mirrored here: the envelope is opaque, so the cloud could only be sent it blind
    mirror = None
    if plan.mirror is not None and not route.writes:
        mirror = _later(_soap_side(app, compiled, plan.mirror, entity, rule.rung, raw, forward, "mirror"))
    answer = await _soap_side(app, compiled, side, entity, rule.rung, raw, forward, "serve")
    if isinstance(answer, Problem) and plan.fallback is not None:
        log.warning("%s failed on %s, answered by %s: %s", route.name, side.value, plan.fallback.value, answer.detail)
        side = plan.fallback
        answer = await _soap_side(app, compiled, side, entity, rule.rung, raw, forward, "fallback")
    if mirror is not None and plan.compare and side is plan.serve:
        _later(_compare_soap(app, compiled, entity, rule.rung, side, answer, mirror))
    if isinstance(answer, Problem):
        raise answer
    response = web.Response(status=answer.status, body=answer.body)
    response.headers["Content-Type"] = answer.headers.get("content-type", "text/xml")
    response.headers["X-Served-By"] = side.value
    return response


async def dispatch(request: web.Request) -> web.StreamResponse:
    if ROUTE not in request:  # a service path with no handler, e.g. the admin API when it is off
        raise Problem(
            404, "No such endpoint", f"{request.path} is not served; the admin API needs --admin-key and --store"
        )
    compiled: Compiled = request[ROUTE]
    started = time.perf_counter()
    status = 500
    try:
        response = await (passthrough(request) if compiled.route.passthrough else managed(request))
        status = response.status
        return response
    except Problem as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(compiled.route.name, request.get(ENTITY) or "", str(status)).inc()
        metrics.latency.labels(compiled.route.name).observe(time.perf_counter() - started)


# -- service endpoints -----------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    table = request.app[ROUTING].table
    return web.json_response({"status": "ready", "routes": len(table.routes), "loaded_at": table.loaded_at})


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")


async def openapi_endpoint(request: web.Request) -> web.Response:
    return web.json_response(openapi([c.route for c in request.app[ROUTING].table.routes]))


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=docs_page([c.route for c in request.app[ROUTING].table.routes]), content_type="text/html")


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
            table = compile_table(settings.routes)
        except (RouteError, MappingError) as exc:
            log.error("routes not reloaded, the previous routes keep serving: %s", exc)
            continue
        routing = app[ROUTING]
        old, routing.table = routing.table, table
        if CUTOVER in app:
            app[CUTOVER].use_routes([compiled.route for compiled in table.routes])
        log.info("routes reloaded: %d routes", len(table.routes))
        # requests in flight keep the old table; close its backends once they have had time to finish
        asyncio.get_running_loop().call_later(30, _close_later, old)


_CLOSING: set[asyncio.Task[None]] = set()


def _close_later(table: Table) -> None:
    task = asyncio.ensure_future(table.close())
    _CLOSING.add(task)  # keep a reference until it is done
    task.add_done_callback(_CLOSING.discard)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    app[CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    reloader = asyncio.create_task(_reloader(app)) if app[SETTINGS].reload else None
    worker = asyncio.create_task(_outbox_worker(app)) if CUTOVER in app else None
    yield
    if worker is not None:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    if reloader is not None:
        reloader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloader
    await app[ROUTING].table.close()
    await app[CLIENT].close()


def build_app(settings: Settings) -> web.Application:
    """The gateway application; raises RouteError when the routes folder does not validate."""
    table = compile_table(settings.routes)
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[
            policies.correlation,
            policies.access_log,
            policies.problems,
            match,
            policies.auth(settings.consumers),
            scope,
            rate_limit,
            body_size,
            idempotency,
        ],
    )
    app[SETTINGS] = settings
    app[ROUTING] = Routing(table)
    app[METRICS] = Metrics()
    app[LIMITER] = RateLimiter()
    app[IDEMPOTENCY] = IdempotencyStore()
    if settings.store:  # set up before the outbox worker starts, closed after it stops
        routes = [compiled.route for compiled in table.routes]
        app[CUTOVER] = Cutover(settings.store, routes, settings.webhook, settings.in_doubt_after)
        app.cleanup_ctx.append(cutover_lifecycle)
    app.cleanup_ctx.append(_lifecycle)
    if settings.store and settings.admin_key:
        app[ADMIN_KEY] = settings.admin_key
        add_admin_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/openapi.json", openapi_endpoint)
    app.router.add_get("/docs", docs)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
