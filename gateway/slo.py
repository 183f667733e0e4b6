"""A route's business SLOs, measured on each call it answers: one good or bad event per SLO, counted
on /metrics per route × entity (with the trace id as exemplar) and in the store for the fleet's
error-budget burn (cutover/slos.py)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.problems import REJECTED, Problem
from gateway.sides import Answer
from gateway.state import CUTOVER, METRICS
from gateway.table import Compiled
from legacy_adapters.mapping import MappingError, pointer_get
from specs.routes import SloSpec


def _instant(value: Any) -> float | None:
    """Epoch seconds of an ISO time or a number; None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment.timestamp() if moment.tzinfo else None  # a time without its zone cannot be judged
    return None


def judged(slo: SloSpec, answer: Answer | Problem, seconds: float) -> bool | None:
    """Whether the call was good for `slo`; None when it says nothing about it (the consumer's own
    request was refused, or a failed read has no figure whose age to judge)."""
    if slo.kind == "exceptions":  # the business refusals: an intercompany invoice the other ledger would not take
        if isinstance(answer, Problem):
            return False if answer.title == REJECTED else None
        return True
    if isinstance(answer, Problem) and answer.status < 500:
        return None
    if slo.kind == "success":
        return isinstance(answer, Answer)
    if slo.kind == "latency":
        return isinstance(answer, Answer) and seconds <= (slo.threshold or 0)
    if not isinstance(answer, Answer):
        return None
    try:
        changed = _instant(pointer_get(answer.body, slo.field or ""))
    except (MappingError, TypeError):
        changed = None
    return changed is not None and time.time() - changed <= (slo.threshold or 0)


def measure(
    app: web.Application,
    compiled: Compiled,
    entity: str | None,
    answer: Answer | Problem,
    seconds: float,
    trace_id: str,
) -> None:
    route = compiled.route
    metrics, cutover, label = app[METRICS], app.get(CUTOVER), compiled.label(entity)
    for slo in route.slo:
        good = judged(slo, answer, seconds)
        if good is None:
            continue
        timed = seconds if slo.kind == "latency" and isinstance(answer, Answer) else None
        metrics.slo_measured(route.name, label, slo.name, good, timed, trace_id)
        if cutover is not None:
            cutover.measured(route.name, entity, slo.name, good)
