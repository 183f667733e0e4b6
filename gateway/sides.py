"""Calling one side of a route — legacy or cloud — as a managed call or a SOAP envelope.

Every call goes through its side's breaker (and retries, where safe), is counted as evidence for
the rung it was made on, and comes back as an Answer or a Problem. Two sides' answers are judged
in judging.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aiohttp import web

from cutover.decide import Side
from gateway.calls import Context
from gateway.policies import TRACING
from gateway.problems import BUSY, THROTTLED, Problem
from gateway.resilience import Breaker, Busy, Pause, guarded
from gateway.state import CUTOVER, METRICS
from gateway.table import Bound, Compiled
from legacy_adapters import (
    BackendError,
    BackendNotFound,
    BackendThrottled,
    BackendUnauthorised,
    Call,
    Outcome,
)
from legacy_adapters.errors import DEFAULT_RETRY_AFTER, retry_after
from legacy_adapters.mapping import MappingError
from legacy_adapters.raw_http import RawReply, UpstreamError
from legacy_adapters.soap import envelope_fault, envelope_outcome

log = logging.getLogger("banyan.gateway")


def not_found_problem(writes: bool, side: str, call: Call) -> Problem:
    """One answer whatever the transport (HTTP 404, an ODBC query without a row, a SOAP fault the route
    names as not found): a read of an unknown record is 404; a write that names one is refused, 422."""
    what = call.key or "resource"
    if writes:
        detail = f"the {side} system did not take it: it has no such {what}"
        return Problem(422, "Backend rejected the request", detail, outcome=Outcome.not_found)
    return Problem(404, "Not found", f"the {side} system has no such {what}", outcome=Outcome.not_found)


def backend_problem(exc: BackendError) -> Problem:
    """A side's error for the consumer; one that was not made says when to ask again."""
    headers = {"Retry-After": "1"} if exc.outcome is Outcome.not_made else None
    return Problem(exc.status, exc.title, str(exc), headers, outcome=exc.outcome)


def paused_problem(side: str, seconds: float, why: str) -> Problem:
    """A 503 with Retry-After for a side that asked for a pause: nothing was booked."""
    wait = max(math.ceil(seconds), 1)
    return Problem(
        503,
        THROTTLED,
        f"{why}; nothing was booked: retry in {wait} s",
        {"Retry-After": str(wait)},
        outcome=Outcome.not_made,
    )


@dataclass
class Answer:
    """One side's answer, mapped to the public shape."""

    status: int
    body: Any


async def call_side(
    app: web.Application, compiled: Compiled, side: str, entity: str | None, call: Call, patient: bool = False
) -> Answer:
    """Call one side through its bulkhead, breaker and retries; a failure is a Problem. A `patient`
    call waits for a slot however long the line (the outbox worker's: no consumer is waiting)."""
    route = compiled.route
    bound = compiled.bound(side, entity)
    try:
        payload = bound.request_map(call.payload) if bound.request_map else call.payload
    except MappingError as exc:
        detail = f"the request lacks a field the backend needs: {exc}"
        raise Problem(422, "Request cannot be mapped", detail, outcome=Outcome.refused) from None
    tracer = app[TRACING]
    if not tracer.exporting:  # no span to record: the backend's parent is the gateway's span of the call
        return await _called(app, compiled, side, entity, call, replace(call, payload=payload), bound, patient)
    attributes = {
        "banyan.side": side,
        "banyan.route": route.name,
        "banyan.entity": entity,
        "banyan.backend": bound.backend.config.backend,
    }
    span = tracer.start(f"{side} {route.name}", call.headers.get("traceparent"), "client", **attributes)
    sided = replace(call, payload=payload, headers={**call.headers, "traceparent": span.traceparent})
    error: str | None = "cancelled"
    try:
        answer = await _called(app, compiled, side, entity, call, sided, bound, patient)
        error = None
        return answer
    except Problem as exc:
        error = f"{exc.status} {exc.title}"
        raise
    finally:
        span.end(error)


async def _called(
    app: web.Application,
    compiled: Compiled,
    side: str,
    entity: str | None,
    call: Call,
    sided: Call,
    bound: Bound,
    patient: bool,
) -> Answer:
    route, metrics = compiled.route, app[METRICS]
    timeout, resilience = bound.backend.config.timeout, route.resilience
    bulkhead = bound.bulkhead
    paused = bound.pause.wait()
    if paused:  # the side asked every caller for a pause: this one is not sent either
        metrics.shed.labels(route.name, side).inc()
        raise paused_problem(side, paused, f"the {side} system asked for a pause")
    try:
        async with bulkhead.slot(patient) if bulkhead is not None else contextlib.nullcontext():
            reply = await guarded(
                lambda: asyncio.wait_for(bound.backend.call(sided), timeout + 1),
                bound.breaker,
                resilience.retries,
                resilience.backoff,
                bound.backend.retry_safe and not route.writes,
            )
    except Busy as exc:
        assert bulkhead is not None
        metrics.shed.labels(route.name, side).inc()
        detail = (
            f"the {side} system is at its limit ({bulkhead.limit} at once from this gateway, "
            f"{bulkhead.queue} waiting); nothing was sent: retry in {exc.retry_after} s"
        )
        raise Problem(503, BUSY, detail, {"Retry-After": str(exc.retry_after)}, outcome=Outcome.not_made) from None
    except BackendNotFound:
        raise not_found_problem(route.writes, side, call) from None
    except BackendThrottled as exc:
        bound.pause.hold(exc.retry_after)
        metrics.throttled.labels(bound.pause.name).inc()
        raise paused_problem(side, exc.retry_after, f"the {side} system is throttling calls") from None
    except BackendUnauthorised as exc:  # the operators' problem: said loudly, every time
        log.error("%s: the %s system refused the gateway's credentials: %s", route.name, side, exc)
        metrics.backend_errors.labels(route.name, side, type(exc).__name__).inc()
        raise backend_problem(exc) from None
    except BackendError as exc:
        metrics.backend_errors.labels(route.name, side, type(exc).__name__).inc()
        raise backend_problem(exc) from None
    except TimeoutError:
        bound.breaker.failure()
        raise Problem(504, "Backend timed out", f"no answer within {timeout:g} s", outcome=Outcome.unknown) from None
    finally:
        metrics.breaker_open.labels(route.name, side, compiled.label(entity)).set(
            1 if bound.breaker.state != "closed" else 0
        )
    if reply.status == 404:
        raise not_found_problem(route.writes, side, call)
    try:
        result = bound.response_map(reply.body) if bound.response_map else reply.body
    except MappingError as exc:
        raise Problem(502, "Backend answer did not fit", f"the {side} system's answer lacks a field: {exc}") from None
    contract = compiled.contract
    if contract is not None:  # one shape whichever entity answers: filled from the path, scalars typed
        path = {name: value for name, value in call.params.items() if name in compiled.path_parameters}
        result = contract.lift(result, entity, path)
        if route.operation is not None and route.operation.validate_response:
            broken = contract.violations(result, entity)
            if broken:
                where = "; ".join(f"{pointer}: {message}" for pointer, message in broken[:3])
                raise Problem(
                    502,
                    "Backend answer did not fit",
                    f"the {side} system's answer breaks canonical:{contract.name}: {where}",
                )
    return Answer(reply.status, result)


_HELD = {BUSY: "shed", THROTTLED: "throttled"}  # a call not made because the gateway or the side held it back


async def counted(context: Context, side: Side, role: str) -> Answer | Problem:
    """Call a side and count the call as evidence; a failure is returned, not raised."""
    try:
        patient = role == "outbox"
        answer: Answer | Problem = await call_side(
            context.app, context.compiled, side.value, context.entity, context.call, patient
        )
    except Problem as exc:
        answer = exc
    return _count(context, side, role, answer)


async def soap_side(context: Context, side: Side, role: str) -> RawReply | Problem:
    """Forward the envelope to one side's SOAP service, and count the call as evidence the way a
    managed call is counted."""
    return _count(context, side, role, await _envelope(context, side))


Counted = TypeVar("Counted", Answer, RawReply)


def _count(context: Context, side: Side, role: str, answer: Counted | Problem) -> Counted | Problem:
    """A side's answer counted: in the metrics, and as evidence for the rung. A call held back (by
    the gateway, or a side's pause) says nothing about the side's health or answers."""
    compiled, entity = context.compiled, context.entity
    failed = isinstance(answer, Problem) and answer.status >= 500
    title = answer.title if isinstance(answer, Problem) else ""
    held = failed and title in _HELD
    outcome = _HELD.get(title, "error") if failed else "ok"
    metrics = context.app[METRICS]
    metrics.child(metrics.side_calls, compiled.route.name, compiled.label(entity), side.value, role, outcome).inc()
    cutover = context.app.get(CUTOVER)
    if cutover is not None and not held:
        cutover.called(compiled.route.name, entity, context.rung, side, failed)
    return answer


async def _envelope(context: Context, side: Side) -> RawReply | Problem:
    """The envelope (the call's payload) forwarded to one side's SOAP service through its breaker.
    A SOAP Fault is the service's answer (the request was wrong), not its failure."""
    app, compiled, entity = context.app, context.compiled, context.entity
    raw, headers = context.call.payload, context.call.headers
    spec = compiled.route.passthrough
    assert spec is not None
    upstream, breaker = compiled.soap_sides[side]
    name, tracer, span = compiled.route.name, app[TRACING], None
    if tracer.exporting:  # else the backend's parent is the gateway's span of the call
        span = tracer.start(
            f"{side.value} {name}",
            headers.get("traceparent"),
            "client",
            **{"banyan.side": side.value, "banyan.route": name, "banyan.entity": entity, "banyan.backend": "soap"},
        )
        headers = {**headers, "traceparent": span.traceparent}
    answer: RawReply | Problem
    pause = compiled.soap_pauses[side]
    try:
        if pause.wait():
            raise paused_problem(side.value, pause.wait(), f"the {side.value} SOAP service asked for a pause")
        breaker.before()
        answer = await upstream.post(raw, headers, spec.timeout)
        answer = _judged(side, answer, envelope_outcome(answer.status, answer.body), breaker, pause)
        if isinstance(answer, Problem) and answer.title == THROTTLED:
            app[METRICS].throttled.labels(pause.name).inc()
    except Problem as exc:  # paused: nothing was sent
        answer = exc
    except BackendError as exc:  # the breaker is open
        answer = backend_problem(exc)
    except TimeoutError:
        breaker.failure()
        detail = f"the SOAP service gave no answer within {spec.timeout:g} s"
        answer = Problem(504, "Backend timed out", detail, outcome=Outcome.unknown)
    except UpstreamError as exc:
        breaker.failure()
        if exc.sent:  # it went out: the service may have acted on it
            answer = Problem(
                502, "Backend failed", f"the SOAP service's answer was lost: {exc}", outcome=Outcome.unknown
            )
        else:
            detail = f"cannot reach the SOAP service: {exc}"
            answer = Problem(503, "Backend unavailable", detail, outcome=Outcome.not_made)
    except BaseException:
        breaker.abandon()
        if span is not None:
            span.end("cancelled")
        raise
    if span is not None:
        span.end(f"{answer.status} {answer.title}" if isinstance(answer, Problem) else None)
    return answer


def _judged(side: Side, answer: RawReply, outcome: Outcome, breaker: Breaker, pause: Pause) -> RawReply | Problem:
    """A SOAP service's answer told to the breaker, and turned into a Problem where the consumer
    should not get it as it is: a pause asked for, the gateway's access refused, a server error that
    is no Fault. A Fault is the service's own answer and is passed on (the request's fault: refused;
    the service's: unknown, but said in its own words)."""
    what = f"the {side.value} SOAP service"
    if outcome is Outcome.not_made:
        waited = retry_after(answer.headers.get("retry-after"), DEFAULT_RETRY_AFTER if answer.status == 429 else None)
        if waited is not None:
            breaker.abandon()
            pause.hold(waited)
            return paused_problem(side.value, waited, f"{what} is throttling calls ({answer.status})")
        breaker.failure()
        return Problem(
            503,
            "Backend unavailable",
            f"{what} answered {answer.status}: nothing was booked, retry later",
            outcome=Outcome.not_made,
        )
    if outcome is Outcome.not_authorised:
        breaker.abandon()
        log.error("the %s refused the gateway's credentials (%s)", what, answer.status)
        return Problem(
            503,
            "Backend refused the gateway",
            f"{what} refused the gateway's credentials ({answer.status}): the operators must fix them",
            outcome=outcome,
        )
    if outcome is Outcome.unknown:
        breaker.failure()
        if envelope_fault(answer.body):
            return answer
        return Problem(502, "Backend failed", f"{what} answered {answer.status}", outcome=outcome)
    breaker.success()
    return answer
