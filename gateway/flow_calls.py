"""A flow's runner calling the gateway's routes: a file's document sent through a route's side, or
the record a side booked read back through a read route.

The runner works in a thread; each call is made on the gateway's loop, through `call_side`, so it
takes the side's bulkhead (patiently, as the outbox does), breaker, retries where safe, and its
request and response maps. A Problem becomes the outcome it names (see legacy_adapters.errors).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from aiohttp import web

from flows.uploads import Sent
from gateway.problems import Problem
from gateway.sides import call_side
from gateway.state import ROUTING
from legacy_adapters import Call
from legacy_adapters.errors import Outcome

WAIT_SECONDS = 120.0  # the longest a runner waits for one call: the side's timeout and retries are shorter


class RouteCalls:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None  # the gateway's, set when the flows start

    def call(
        self, route: str, side: str, entity: str, payload: Any, params: dict[str, str], key: str | None, writes: bool
    ) -> Sent:
        if self.loop is None:
            return Sent(Outcome.not_made, None, None, "the gateway is not serving yet")
        future = asyncio.run_coroutine_threadsafe(
            self._call(route, side, entity, payload, params, key, writes), self.loop
        )
        try:
            return future.result(WAIT_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return Sent(Outcome.unknown, None, None, f"route {route}: no answer from {side} in {WAIT_SECONDS:.0f} s")

    async def _call(
        self, route: str, side: str, entity: str, payload: Any, params: dict[str, str], key: str | None, writes: bool
    ) -> Sent:
        compiled = next((c for c in self.app[ROUTING].table.routes if c.route.name == route), None)
        if compiled is None:
            return Sent(Outcome.not_made, None, None, f"route {route} is not served here")
        headers = {"Idempotency-Key": key} if key else {}
        call = Call(
            route,
            payload,
            entity,
            next(iter(params.values()), None),
            f"flow-{key or route}",
            headers,
            writes,
            {"entity": entity, **params},
        )
        try:
            answer = await call_side(self.app, compiled, side, entity, call, patient=True)
        except Problem as exc:
            return Sent(
                exc.outcome or Outcome.refused, exc.status, None, f"{route}: {exc.status} {exc.title}: {exc.detail}"
            )
        body = answer.body if isinstance(answer.body, dict) else {"answer": answer.body}
        return Sent(Outcome.made, answer.status, body, f"{route}: {answer.status} from {side}")
