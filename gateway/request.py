"""The path of a call through the gateway, top to bottom (DESIGN.md, "The request path")."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cutover.decide import LEGACY, Side, decide
from cutover.outbox import idempotency_key
from cutover.store import StoreError
from gateway import policies
from gateway.accepted import accept
from gateway.calls import Context, serve
from gateway.consumers import Consumer
from gateway.idempotency import OUTCOME, idempotent
from gateway.inputs import forwardable, json_body
from gateway.judging import compare_answers, compare_envelopes
from gateway.ownership import owned
from gateway.policies import CONSUMER, ENTITY, RETIRING, ROUTE_NAME, SOAP, SPAN, STEP, correlation_id
from gateway.problems import WRITE_MADE, Problem
from gateway.process_api import PROCESSES, Served
from gateway.process_api import start as start_process
from gateway.route_events import declared, record, recorded, settle_and_record
from gateway.sides import Answer, counted, soap_side
from gateway.slo import measure
from gateway.state import (
    CUTOVER,
    EVENT_LOG,
    IDEMPOTENCY,
    KEY_TURNS,
    LIMITER,
    METRICS,
    OUTBOX_READY,
    ROUTING,
    SETTINGS,
)
from gateway.table import PARAMS, ROUTE, Compiled
from legacy_adapters import Call, xmljson
from legacy_adapters.mapping import MappingError, pointer_get
from legacy_adapters.soap import envelope_outcome
from specs.routes import Route


async def handle(request: web.Request) -> web.StreamResponse:
    """Every call to a route, top to bottom. `policies.edge` has already given it a correlation id
    and will turn any Problem raised here into the consumer's answer and one access-log line."""
    app = request.app
    if policies.is_service_path(request.path):  # e.g. the admin API when it is off
        raise Problem(
            404, "No such endpoint", f"{request.path} is not served; the admin API needs --admin-key and --store"
        )
    try:
        compiled, params = app[ROUTING].table.match(request.method, request.path)  # 404 or 405
    except Problem:
        found = app[PROCESSES].match(request.method, request.path) if PROCESSES in app else None
        if found is None:
            raise
        return await process(request, *found)
    route = compiled.route
    request[ROUTE], request[PARAMS], request[ROUTE_NAME] = compiled, params, route.name
    if route.passthrough is not None:  # a SOAP consumer: its problems are told as Faults
        request[SOAP] = "1.2" if "application/soap+xml" in request.headers.get("Content-Type", "") else "1.1"
    if compiled.retiring is not None:  # a deprecated version says so on every answer, refusals too
        request[RETIRING] = compiled.retiring.headers(params)
    settings = app[SETTINGS]
    consumer = policies.authenticate(settings.consumers, request, settings.step_token)
    if compiled.retiring is not None:
        retired(request, compiled, consumer, params)
    handler = passthrough if route.passthrough is not None else managed
    return await _admitted(request, consumer, route.name, route.writes, lambda: handler(request))


async def process(request: web.Request, served: Served, params: dict[str, str]) -> web.StreamResponse:
    """A call to a process route: the consumer's key, scope and limits as for any route, then an
    instance started once per Idempotency-Key (gateway/process_api.py)."""
    settings, name = request.app[SETTINGS], served.process.name
    request[ROUTE_NAME] = name
    consumer = policies.authenticate(settings.consumers, request, settings.step_token)
    return await _admitted(request, consumer, name, True, lambda: start_process(request, served, params))


async def _admitted(
    request: web.Request,
    consumer: Consumer | None,
    name: str,
    writes: bool,
    handler: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """The consumer's scope, rate limit and body size for route (or process) `name`, then the
    handler — a write once per Idempotency-Key — counted with its status and time."""
    app, settings = request.app, request.app[SETTINGS]
    policies.scope(consumer, name, request.get(STEP, False))
    await policies.rate_limit(request, app[LIMITER], consumer, name)
    policies.body_size(request, settings.max_body)
    started, status = time.perf_counter(), 500
    try:
        response = await (idempotent(request, app[IDEMPOTENCY], consumer, handler) if writes else handler())
        status = response.status
        return response
    except Problem as exc:
        status = exc.status
        raise
    finally:
        app[METRICS].answered(name, request.get(ENTITY) or "", status, time.perf_counter() - started)


def retired(request: web.Request, compiled: Compiled, consumer: Consumer | None, params: dict[str, str]) -> None:
    """Count who still calls a deprecated version (on this gateway and, with a store, in it for the
    fleet); after its sunset, answer 410 Gone naming the successor."""
    assert compiled.retiring is not None
    name = consumer.name if consumer is not None else "(anonymous)"
    request.app[METRICS].deprecated_calls.labels(compiled.route.name, name).inc()
    if CUTOVER in request.app:
        request.app[CUTOVER].used_deprecated(compiled.route.name, name)
    if time.time() >= compiled.retiring.sunset:
        raise compiled.retiring.gone(params)


def _value(source: Any, request: web.Request, params: dict[str, str], body: Any) -> str | None:
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
    except MappingError:
        return None
    return None


async def managed(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    compiled: Compiled = request[ROUTE]
    route = compiled.route
    params: dict[str, str] = request[PARAMS]
    body = await json_body(request, compiled.validator)
    entity = _value(route.entity, request, params, body)
    key = _value(route.key, request, params, body)
    request[ENTITY] = compiled.label(entity)
    if route.entity is not None and route.entity.values is not None and entity not in route.entity.values:
        raise Problem(404, "Unknown legal entity", f"{entity!r} is not one of {', '.join(route.entity.values)}")
    consumer: Consumer | None = request.get(CONSUMER)
    if consumer is not None and route.entity is not None and not consumer.may_serve(entity):
        raise Problem(403, "Entity not allowed", f"your key is not scoped to legal entity {entity}")
    cutover = request.app.get(CUTOVER)
    rule = compiled.rule(cutover, entity)
    plan = await owned(request.app, compiled, entity, key, decide(rule, key, route.writes, route.name))
    source = {**(body if isinstance(body, dict) else {}), **params, **dict(request.query)}
    headers = forwardable(request.headers, ("tracestate", "Idempotency-Key"))
    headers["traceparent"] = request[SPAN].traceparent  # the sides' work hangs off the gateway's span
    if entity is not None and route.entity is not None and route.entity.from_ != "path":
        params = {**params, "entity": entity}  # a backend URL's {entity}, wherever the route reads it from
    call = Call(route.name, source, entity, key, correlation_id(request), headers, route.writes, params)
    context = Context(request.app, compiled, entity, call, rule.rung, plan)
    if route.asynchronous and cutover is not None:  # made later, at the pace the side takes: 202 now
        return await accept(request, context)
    if route.writes and plan.mirror is not None and cutover is not None:
        answer = await _write_through_outbox(request, context)
        measure(request.app, compiled, entity, answer, time.perf_counter() - started, request[SPAN].trace_id)
        return _respond(request, route, answer, plan.serve)
    side, answer = await serve(context, counted, compare_answers)
    if route.events and isinstance(answer, Answer) and cutover is not None:
        await record(request.app, compiled, declared(compiled, entity, call, answer.body))
    measure(request.app, compiled, entity, answer, time.perf_counter() - started, request[SPAN].trace_id)
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


async def _write_through_outbox(request: web.Request, context: Context) -> Answer | Problem:
    """Record the other side's copy, make the serving call, settle the copy — then answer. Both records
    go through the group commit: a surge of writes shares transactions instead of queueing for them.

    Writes on one business key take their places in the key's line as they arrive, record their
    copies (the group commit keeps their order, and commits the copies of a line's writes together),
    and make their serving calls one at a time in that order: the serving side takes them in the
    order their copies were recorded, and the other side is sent them in that same order, so both
    end on the same last write. Only the serving call waits for the writes ahead; the next write need
    not wait for this one's settlement either, since the outbox delivers a key's copies in the order
    of their intents, and an unsettled intent holds the later ones back. (Across gateway processes,
    concurrent writes to one key have no order to keep.)"""
    call, plan = context.call, context.plan
    assert plan is not None and plan.mirror is not None
    turns = request.app[KEY_TURNS]
    place = None if call.key is None else turns.place((context.compiled.route.name, context.entity or "*", call.key))
    try:
        message_id = await _owe(request, context, plan.mirror)
        if place is not None:
            await place.turn()
        answer = await counted(context, plan.serve, "serve")
    finally:
        if place is not None:
            place.leave()
    return await _settle(request, context, message_id, answer)


async def _owe(request: web.Request, context: Context, other: Side) -> int:
    """The copy's intent recorded (durably, before the serving call): its outbox message."""
    cutover = request.app[CUTOVER]
    route, entity, call, rung = context.compiled.route, context.entity, context.call, context.rung
    given = request.headers.get("Idempotency-Key")
    idempotency = idempotency_key(route.name, entity or "*", given, call.correlation_id)
    message = {
        "payload": call.payload,
        "params": call.params,
        "headers": call.headers,
        "correlation_id": call.correlation_id,
    }
    try:
        return await cutover.commits.run(
            cutover.outbox.intend_in, route.name, entity or "*", call.key, other.value, rung, message, idempotency
        )
    except StoreError as exc:
        detail = f"the copy for the {other.value} side cannot be recorded, so nothing was sent: {exc}"
        raise Problem(503, "Write not accepted", detail) from None


async def _settle(
    request: web.Request, context: Context, message_id: int, answer: Answer | Problem
) -> Answer | Problem:
    """The copy's outcome (and the write's events) recorded, before the consumer is answered."""
    app, compiled, entity, call, plan = request.app, context.compiled, context.entity, context.call, context.plan
    assert plan is not None and plan.mirror is not None
    route, serve, other = compiled.route, plan.serve, plan.mirror
    cutover = app[CUTOVER]
    if isinstance(answer, Answer):
        outcome, served, error = "pending", answer.body, ""
    elif answer.status == 504:  # no answer in time: the serving side may or may not have written
        outcome, served, error = "in_doubt", None, answer.detail
    else:
        outcome, served, error = "cancelled", None, f"{answer.status} {answer.title}: {answer.detail}"
    events = declared(compiled, entity, call, answer.body) if isinstance(answer, Answer) and route.events else []
    try:  # the write's outcome and its events, in one transaction
        await cutover.commits.run(
            settle_and_record, cutover.outbox, app[EVENT_LOG], message_id, outcome, served, error, events
        )
        if outcome == "pending":
            app[OUTBOX_READY].set()
            recorded(app, compiled, events)
    except StoreError:
        if isinstance(answer, Answer):
            detail = (
                f"the {serve.value} side took the write, but its copy for the {other.value} side could not be "
                f"recorded; outbox message {message_id} will be listed as in doubt"
            )
            raise Problem(503, WRITE_MADE, detail) from None
    return answer


_FORWARDED = ("Content-Type", "SOAPAction", "tracestate")  # what a SOAP service is sent of the consumer's headers


def body_of(document: Any) -> Any:
    """The envelope reduced to its Body, so that every XPath — `//customer` or a computed `concat(…)`
    — reads the Body only: a decoy in the Header cannot choose the entity. The parsed envelope serves
    only these XPaths (the raw bytes are what is forwarded), so the Header is dropped in place."""
    for child in list(document):
        if not (isinstance(child.tag, str) and xmljson.local(child.tag) == "Body"):
            document.remove(child)
    return document


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
    scope = body_of(document)
    entity = compiled.entity_xpath.text(scope) if compiled.entity_xpath else None
    request[ENTITY] = compiled.label(entity)
    consumer: Consumer | None = request.get(CONSUMER)
    if consumer is not None and spec.entity_xpath and not consumer.may_serve(entity):
        raise Problem(403, "Entity not allowed", f"your key is not scoped to legal entity {entity}")
    route = compiled.route
    rule = compiled.rule(request.app.get(CUTOVER), entity)
    key = compiled.key_xpath.text(scope) if compiled.key_xpath else None
    plan = decide(rule, key, route.writes, route.name)
    if Side.cloud not in compiled.soap_sides:
        plan = LEGACY  # nothing to move to
    forward = forwardable(request.headers, _FORWARDED)
    forward["X-Correlation-ID"] = correlation_id(request)
    forward["traceparent"] = request[SPAN].traceparent
    # the envelope names any customer it likes: evidence, like metric labels, is kept for the entities
    # the deployment knows, and every other one counts under one row, `other` (a deployment that names
    # no entities at all has nothing to bound them by)
    counted_as = (compiled.label(entity) or None) if compiled.known_entities else entity
    call = Call(route.name, raw, counted_as, key, forward["X-Correlation-ID"], forward, route.writes, {})
    context = Context(request.app, compiled, counted_as, call, rule.rung, plan)
    # a write is never mirrored here: the envelope is opaque, so the cloud could only be sent it blind
    side, answer = await serve(context, soap_side, compare_envelopes, not route.writes)
    if isinstance(answer, Problem):
        raise answer
    content_type = answer.headers.get("content-type", "text/xml")
    if any(char in content_type for char in "\r\n\x00"):  # it cannot be sent on as one header line
        raise Problem(
            502,
            "Backend fault",
            f"the {side.value} SOAP service answered a Content-Type that cannot be "
            "passed on (a control character in it)",
        )
    response = web.Response(status=answer.status, body=answer.body)
    response.headers["Content-Type"] = content_type
    response.headers["X-Served-By"] = side.value
    response[OUTCOME] = envelope_outcome(answer.status, answer.body)  # a Fault's code says if it was made
    return response
