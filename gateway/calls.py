"""One call on its way to the sides: what every step of its path reads, and the order of its steps.

    serve ─► the serving side's answer; on a 5xx, the fallback side's instead
      └─ mirror (when the rung asks for it), off the request path ─► compared with the served
         answer, when the serving side gave it

A managed route's call and a SOAP passthrough's envelope take the same steps (`serve`); each says
how one side is called and how two answers are compared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from cutover.decide import Plan, Side
from gateway.problems import Problem
from gateway.table import Compiled
from legacy_adapters import Call


@dataclass(slots=True)
class Context:
    """A call and where it stands: the app, the compiled route, the legal entity the evidence
    counts under, the call, the rung it is made on and the plan (who serves, mirrors, falls back;
    none for an outbox delivery, which has one side)."""

    app: web.Application
    compiled: Compiled
    entity: str | None
    call: Call
    rung: str
    plan: Plan | None = None


log = logging.getLogger("banyan.gateway")
A = TypeVar("A")
SideCall = Callable[[Context, Side, str], Coroutine[Any, Any, A]]  # a side and its role (serve, mirror, …) → its answer
Compare = Callable[[Context, A, "asyncio.Task[A]", Side], Coroutine[Any, Any, None]]  # served, the mirror's, who served


async def serve(context: Context, call: SideCall[A], compare: Compare[A], mirrored: bool = True) -> tuple[Side, A]:
    """The serving side's answer (the fallback's, after a 5xx), with the mirror sent beside it and
    compared off the request path; `mirrored` False sends no mirror (a write: the outbox copies it)."""
    plan = context.plan
    assert plan is not None
    mirror = later(call(context, plan.mirror, "mirror")) if plan.mirror is not None and mirrored else None
    side = plan.serve
    answer = await call(context, side, "serve")
    if isinstance(answer, Problem) and answer.status >= 500 and plan.fallback is not None:
        name = context.compiled.route.name
        log.warning("%s failed on %s, answered by %s: %s", name, side.value, plan.fallback.value, answer.detail)
        side = plan.fallback
        answer = await call(context, side, "fallback")
    if mirror is not None and plan.compare and side is plan.serve:  # after a fallback both answers are legacy's
        later(compare(context, answer, mirror, side))
    return side, answer


def later(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run it off the request path, held until done."""
    task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
    _BACKGROUND.add(task)  # keep a reference until it is done
    task.add_done_callback(_BACKGROUND.discard)
    return task


_BACKGROUND: set[asyncio.Task[Any]] = set()
