"""Judging two sides' answers to one call, off the request path: compared with the route's rules
(and its canonical contract), counted as evidence for the rung, and on a sample of reads legacy
asked twice, so that what differs on its own is learnt as noise.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aiohttp import web

from cutover.compare import Difference, Kind
from cutover.decide import Side
from gateway.calls import Context
from gateway.problems import Problem
from gateway.sides import Answer, call_side
from gateway.state import CUTOVER, METRICS
from gateway.table import Compiled
from legacy_adapters import Call, xmljson
from legacy_adapters.raw_http import RawReply

log = logging.getLogger("banyan.gateway")


def _outcome(answer: Answer | Problem) -> tuple[int, Any]:
    return (answer.status, answer.detail) if isinstance(answer, Problem) else (200, answer.body)


def judge(
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
        if compiled.contract is not None:
            differences += contract_differences(app, compiled, entity, legacy.body, cloud.body)
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


def contract_differences(
    app: web.Application, compiled: Compiled, entity: str | None, legacy: Any, cloud: Any
) -> list[Difference]:
    """Where the answers break the route's canonical contract. The cloud's breaks count as
    mismatches (it is not ready to serve); legacy's are counted and logged, for the route's owners."""
    assert compiled.contract is not None
    found = []
    for side, answer in (("legacy", legacy), ("cloud", cloud)):
        broken = compiled.contract.violations(answer, entity)
        if broken:
            app[METRICS].contract_violations.labels(compiled.route.name, compiled.label(entity), side).inc()
            log.info(
                "%s answer of %s/%s breaks canonical:%s at %s",
                side,
                compiled.route.name,
                entity,
                compiled.contract.name,
                ", ".join(pointer for pointer, _ in broken[:5]),
            )
        if side == "cloud":
            found += [Difference(pointer, Kind.contract, None, message) for pointer, message in broken]
    return found


async def compare_answers(
    context: Context, served: Answer | Problem, mirror: asyncio.Task[Answer | Problem], served_by: Side
) -> None:
    """A managed call's two answers compared (and, on a sample of reads, legacy asked twice)."""
    other = await mirror
    legacy, cloud = (served, other) if served_by is Side.legacy else (other, served)
    judge(context.app, context.compiled, context.entity, context.rung, legacy, cloud)
    sample = context.compiled.route.compare.noise_sample
    if sample and not context.compiled.route.writes and isinstance(legacy, Answer) and random.random() < sample:
        await learn_noise(context.app, context.compiled, context.entity, legacy, context.call)


async def learn_noise(app: web.Application, compiled: Compiled, entity: str | None, first: Answer, call: Call) -> None:
    """Ask legacy the same read again: the fields that differ now differ on their own."""
    cutover = app.get(CUTOVER)
    try:
        second = await call_side(app, compiled, Side.legacy.value, entity, call)
    except Problem:
        return
    if cutover is not None:
        cutover.noised(compiled.route.name, entity, compiled.comparator.compare(first.body, second.body))


def soap_answer(answer: RawReply | Problem) -> Answer | Problem:
    """A SOAP answer in the shape the comparator reads: its envelope's body as JSON."""
    if isinstance(answer, Problem):
        return answer
    try:
        return Answer(answer.status, xmljson.to_json(xmljson.parse(answer.body)))
    except ValueError as exc:  # not well-formed, or hostile
        return Problem(502, "Backend answer is not XML", str(exc))


async def compare_envelopes(
    context: Context, served: RawReply | Problem, mirror: asyncio.Task[RawReply | Problem], served_by: Side
) -> None:
    """A passthrough's two envelopes compared: their bodies as JSON."""
    other = await mirror
    mine, theirs = soap_answer(served), soap_answer(other)
    legacy, cloud = (mine, theirs) if served_by is Side.legacy else (theirs, mine)
    judge(context.app, context.compiled, context.entity, context.rung, legacy, cloud)
