"""Writes accepted now and made later: an `async` route's 202 Accepted, and its status URL.

A surge of writes beyond what the legacy system takes (a promotion, the end of the month) is not
met with timeouts. On a route with `async: true` the gateway records each write in the store —
durably, for every gateway on it — and answers at once:

    202 Accepted   Location: /accepted/<token>   Retry-After: <seconds>

The outbox worker makes the write at the pace the side's concurrency limit allows, with the
consumer's Idempotency-Key derived into the key the side sees (a retried delivery is booked once).
The status URL answers `pending`, then `done` with the side's answer, or `failed` with the
problem (`in_doubt` when no one knows whether the side made it: no answer in time, a 5xx, a
lost answer). A side that asked for a pause, or refused the gateway's credentials, keeps it
`pending`, with the reason in `lastError`. Only the consumer that sent the write may read it.
A retry of the POST with the same Idempotency-Key replays the same 202 and Location.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from cutover.decide import Plan
from cutover.outbox import Message, idempotency_key
from cutover.runtime import in_thread
from cutover.store import StoreError
from gateway import policies
from gateway.calls import Context
from gateway.policies import CONSUMER
from gateway.problems import Problem
from gateway.state import CUTOVER, OUTBOX_READY, SETTINGS
from gateway.table import Compiled

STATUS_PATH = "/accepted/{token}"


def retry_after(compiled: Compiled, plan: Plan, entity: str | None) -> str:
    """Seconds until the write is likely made: what the serving side's line says, at least 1."""
    bulkhead = compiled.bound(plan.serve.value, entity).bulkhead
    return str(bulkhead.retry_after() if bulkhead is not None else 1)


async def accept(request: web.Request, context: Context) -> web.Response:
    """Record the write for the worker and answer 202 with its status URL."""
    compiled, entity, call, rung, plan = context.compiled, context.entity, context.call, context.rung, context.plan
    assert plan is not None
    app, route = request.app, compiled.route
    cutover = app[CUTOVER]
    consumer = request.get(CONSUMER)
    token = secrets.token_urlsafe(18)
    given = request.headers.get("Idempotency-Key")
    message = {
        "payload": call.payload,
        "params": call.params,
        "headers": call.headers,
        "correlation_id": call.correlation_id,
        "consumer": consumer.name if consumer is not None else None,
        "then": plan.mirror.value if plan.mirror is not None else None,  # the other side, on a rung writing both
        "status": 201 if request.method == "POST" else 200,  # what the consumer would have been answered
    }
    idempotency = idempotency_key(route.name, entity or "*", given, call.correlation_id)
    try:
        await cutover.commits.run(
            cutover.outbox.accept_in,
            route.name,
            entity or "*",
            call.key,
            plan.serve.value,
            rung,
            message,
            idempotency,
            token,
        )
    except StoreError as exc:
        raise Problem(
            503, "Write not accepted", f"the write cannot be recorded, so it was not accepted: {exc}"
        ) from None
    app[OUTBOX_READY].set()
    location = STATUS_PATH.format(token=token)
    body = {"status": "pending", "statusUrl": location, "route": route.name, "entity": entity}
    response = web.json_response(body, status=202)
    response.headers.update({"Location": location, "Retry-After": retry_after(compiled, plan, entity)})
    response.headers["X-Served-By"] = plan.serve.value
    return response


def progress(message: Message) -> tuple[dict[str, Any], dict[str, str]]:
    """What the status URL tells of an accepted write, and its headers."""
    told: dict[str, Any] = {
        "route": message.route,
        "entity": None if message.entity == "*" else message.entity,
        "accepted": message.at,
        "attempts": message.attempts,
    }
    if message.state == "pending":
        if message.last_error:
            told["lastError"] = message.last_error
        return {"status": "pending", **told}, {"Retry-After": "1"}
    if message.state == "delivered":
        return {
            "status": "done",
            **told,
            "answer": {"status": message.call.get("status", 200), "body": message.served},
        }, {}
    if message.state == "in_doubt":
        detail = (
            f"{message.last_error}; whether it was booked is unknown, so it is not sent again until the "
            "operators have looked (banyan outbox list --state in_doubt)"
        )
        return {"status": "in_doubt", **told, "detail": detail}, {}
    if message.state == "cancelled" and isinstance(message.served, dict) and "problem" in message.served:
        return {"status": "failed", **told, "problem": message.served["problem"]}, {}
    why = {
        "dead": "every delivery attempt failed; the operators may replay it",
        "discarded": "the operators discarded it",
    }.get(message.state, message.state)
    problem = {"status": 502, "title": "Write not made", "detail": f"{why}: {message.last_error}".rstrip(": ")}
    return {"status": "failed", **told, "problem": problem}, {}


async def status(request: web.Request) -> web.Response:
    """GET /accepted/{token}: where an accepted write stands, for the consumer that sent it."""
    consumer = policies.authenticate(request.app[SETTINGS].consumers, request)
    message = await in_thread(request.app[CUTOVER].outbox.accepted, request.match_info["token"])
    owner = message.call.get("consumer") if message is not None else None
    if message is None or owner != (consumer.name if consumer is not None else None):
        raise Problem(404, "No such accepted write", "no write accepted for your key has this status URL")
    told, headers = progress(message)
    return web.json_response(told, headers=headers)
