"""A write with an Idempotency-Key is made once, whichever gateway process the retry reaches.

The key belongs to the consumer, the method and the resource: the path and query, and the headers
a route reads the legal entity or the business key from, so the same key for another entity or
another resource is another write. The first call claims it; a retry with the same
body replays the first answer (`Idempotent-Replayed: true`), one with another body is refused, one
while the first still runs is a 409. A write whose outcome is unknown — the gateway timed out, lost
the backend mid-call, or stopped — stays *in doubt*: a retry is told so and is never sent again,
until an operator has looked. Only a write the backend made is replayed; when it was not made (the
side was unavailable or throttled, refused the values, or refused the gateway's credentials) the
key is freed for a retry.

With a cutover store the claims live in it (`SharedIdempotency`), for every process and instance on
that store; without one, in this process (`LocalIdempotency`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from cutover.runtime import Cutover
from gateway.consumers import Consumer
from gateway.inputs import forwardable
from gateway.policies import correlation_id
from gateway.problems import WRITE_MADE, Problem
from gateway.table import ROUTE
from legacy_adapters import Outcome, outcome_of_status

# What a passthrough's answer said of the write, set on the response by the handler that forwards it.
OUTCOME = web.ResponseKey("outcome", Outcome)

TTL = 24 * 3600  # seconds a key's answer is kept for replays
MAX_KEY = 255


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    location: str | None = None  # a 202's status URL, replayed with it


@dataclass(frozen=True)
class First:
    """The call that claimed a key, as a retry is told of it."""

    correlation_id: str
    at: float


class Idempotency(Protocol):
    async def claim(
        self, scope: str, consumer: str, digest: str, correlation_id: str
    ) -> tuple[str, Answer | None, First | None]:
        """("claimed", None, None) when the call may go ahead; else "mismatch", "done" (with the
        answer to replay), "running" or "in_doubt", and the call that claimed the key first."""

    async def finish(self, scope: str, state: str, answer: Answer | None) -> None:
        """Settle a claim: "done" (keep `answer`), "in_doubt" or "released"."""


class LocalIdempotency:
    """Claims in this process: for a gateway without a store (one process)."""

    def __init__(self, ttl: float = TTL, size: int = 100_000) -> None:
        self.ttl, self.size = ttl, size
        self._keys: OrderedDict[str, tuple[str, str, Answer | None, First]] = OrderedDict()

    async def claim(
        self, scope: str, consumer: str, digest: str, correlation_id: str
    ) -> tuple[str, Answer | None, First | None]:
        found = self._keys.get(scope)
        if found is not None and time.time() - found[3].at > self.ttl and found[1] != "in_doubt":
            del self._keys[scope]
            found = None
        if found is None:
            self._keys[scope] = (digest, "running", None, First(correlation_id, time.time()))
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)
            return "claimed", None, None
        if found[0] != digest:
            return "mismatch", found[2], found[3]
        return found[1], found[2], found[3]

    async def finish(self, scope: str, state: str, answer: Answer | None) -> None:
        found = self._keys.get(scope)
        if found is None:
            return
        if state == "released":
            del self._keys[scope]
        else:
            self._keys[scope] = (found[0], state, answer, found[3])
            self._keys.move_to_end(scope)


class SharedIdempotency:
    """Claims in the cutover store, through its group commit: every process on the store sees them."""

    def __init__(self, cutover: Cutover, lease: float, ttl: float = TTL) -> None:
        self.cutover, self.lease, self.ttl = cutover, lease, ttl

    async def claim(
        self, scope: str, consumer: str, digest: str, correlation_id: str
    ) -> tuple[str, Answer | None, First | None]:
        store = self.cutover.store
        outcome, found = await self.cutover.commits.run(
            store.claim_in, scope, consumer, digest, self.lease, self.ttl, time.time(), correlation_id
        )
        if found is None:
            return outcome, None, None
        first = First(found.correlation_id, found.created)
        if found.status is None:
            return outcome, None, first
        return (
            outcome,
            Answer(found.status, found.content_type or "application/json", found.body, found.location),
            first,
        )

    async def finish(self, scope: str, state: str, answer: Answer | None) -> None:
        status, content_type, body = (answer.status, answer.content_type, answer.body) if answer else (0, "", b"")
        location = answer.location if answer else None
        await self.cutover.commits.run(self.cutover.store.finish_in, scope, state, status, content_type, body, location)


def scope_of(consumer: str, method: str, target: str, key: str, *named: str) -> str:
    """What a key belongs to: the consumer's call of one method on one resource — the path and query
    (`target`) and whatever else names the legal entity or the business key (a header's value); a
    body that names them is the request's digest, checked on every reuse."""
    parts = (consumer, method, target, key, *named)
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def settled(status: int, title: str = "", outcome: Outcome | None = None) -> str:
    """What an answer says about the write: made (done), unknown (in_doubt), or anything else —
    not made, refused, not authorised, not found — released, so a retry may ask again. A backend's
    outcome decides where there is one (errors.py); else the status says it, as of any HTTP answer."""
    if title == WRITE_MADE:
        return "in_doubt"
    if outcome is None:
        outcome = outcome_of_status(status)
    if outcome is Outcome.made:
        return "done"
    return "in_doubt" if outcome is Outcome.unknown else "released"


async def idempotent(
    request: web.Request,
    ledger: Idempotency,
    consumer: Consumer | None,
    call: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Make the write once per Idempotency-Key; see the module's docstring."""
    given = request.headers.get("Idempotency-Key")
    compiled = request.get(ROUTE)
    if not given:
        operation = compiled.route.operation if compiled is not None else None
        if operation is not None and operation.idempotency_key == "required":
            raise Problem(
                400, "Idempotency-Key required", "this operation is made once per Idempotency-Key: send one (a UUID)"
            )
        return await call()
    if len(given) > MAX_KEY:
        raise Problem(400, "Idempotency-Key too long", f"use at most {MAX_KEY} characters")
    forwardable(request.headers, ("Idempotency-Key",))  # Latin-1 and one line, or a 400 naming it
    name = consumer.name if consumer else "-"
    named = (
        []
        if compiled is None
        else [
            request.headers.get(source.name, "")
            for source in (compiled.route.entity, compiled.route.key)
            if source is not None and source.from_ == "header"
        ]
    )
    scope = scope_of(name, request.method, request.path_qs, given, *named)
    digest = hashlib.sha256(await request.read()).hexdigest()
    outcome, stored, first = await ledger.claim(scope, name, digest, correlation_id(request))
    if outcome == "mismatch":
        raise Problem(422, "Idempotency-Key reused", "this key was used with a different body; use a new key")
    if outcome == "done" and stored is not None:
        replay = web.Response(status=stored.status, body=stored.body, content_type=stored.content_type)
        replay.headers["Idempotent-Replayed"] = "true"
        if stored.location:
            replay.headers["Location"] = stored.location
        return replay
    if outcome == "running":
        raise Problem(409, "Request in progress", "a request with this Idempotency-Key is still being processed")
    if outcome == "in_doubt":
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first.at)) if first else "earlier"
        raise Problem(
            409,
            "Write in doubt",
            f"the first request with this Idempotency-Key (correlation id {first.correlation_id if first else '?'}, "
            f"{when}) reached the backend and its outcome is unknown; it is not sent again: ask the operators to "
            "check the legacy system for it, then resend with a new key only if it was not booked",
        )
    state, answer = "in_doubt", None
    try:
        response = await call()
        state = settled(response.status, outcome=response.get(OUTCOME))
        if state == "done" and isinstance(response, web.Response) and isinstance(response.body, bytes):
            answer = Answer(response.status, response.content_type, response.body, response.headers.get("Location"))
        elif state == "done":
            state = "in_doubt"  # a streamed answer cannot be replayed: better unknown than sent twice
        return response
    except Problem as exc:
        state = settled(exc.status, exc.title, exc.outcome)
        if state == "done":  # a problem with a 2xx status is no answer to replay
            state = "in_doubt"
        raise
    finally:
        # shielded: a consumer that hangs up must not leave the key claimed for ever
        await asyncio.shield(ledger.finish(scope, state, answer))
