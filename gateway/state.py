"""What the application holds, by key: its settings and the objects every request shares."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web

from cutover.runtime import Cutover
from events.log import EventLog
from flows.runner import FlowRunner
from gateway.consumers import Consumers
from gateway.idempotency import Idempotency
from gateway.limits import Limiter
from gateway.metrics import Metrics
from gateway.table import Routing
from inbox.watch import Watch
from reconcile.schedule import Scheduler
from specs.files import RouteFile

DEFAULT_MAX_BODY = 1024 * 1024


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
    rate_store: str | None = None  # redis://… to share rate limits (and wrong-key counts) across processes
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For names the client
    events_broker: str | None = None  # nats://… or amqp://…: where the routes' events are published
    otlp_endpoint: str | None = None  # an OTLP/HTTP collector's base URL: spans are exported there
    # Who delivers the outbox's copies and accepted writes: "here" (this process's own worker, on its
    # event loop), "apart" (a process of their own: this one rings `doorbell`, the write end of a pipe
    # to it) or "only" (this is that process: it serves no requests and listens on `doorbell`).
    deliveries: Literal["here", "apart", "only"] = "here"
    doorbell: int | None = None
    metrics: str | None = None  # the folder the processes of one gateway share their metrics in
    # Where a process's steps call this gateway (its own port on loopback), and the token that tells
    # those calls from a consumer's: made once per gateway, so every worker of it knows it.
    listen: str | None = None
    step_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


ROUTING = web.AppKey("routing", Routing)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", Limiter)
IDEMPOTENCY = web.AppKey("idempotency", Idempotency)
CUTOVER: web.AppKey[Cutover] = web.AppKey("cutover", Cutover)
ADMIN_KEY: web.AppKey[str] = web.AppKey("admin_key", str)


class KeyTurns:
    """A line per business key in use: a write takes its place on arrival (synchronously, so the
    places follow the order the writes' copies are recorded in), waits until the writes ahead of it
    have made their serving calls, and leaves the line when its own is made. A line goes when empty."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str, str], deque[asyncio.Future[None]]] = {}

    def place(self, key: tuple[str, str, str]) -> Place:
        line = self._lines.setdefault(key, deque())
        turn = asyncio.get_running_loop().create_future()
        if not line:
            turn.set_result(None)  # nobody ahead
        line.append(turn)
        return Place(self, key, turn)

    def _leave(self, key: tuple[str, str, str], turn: asyncio.Future[None]) -> None:
        line = self._lines[key]
        first = line[0] is turn
        line.remove(turn)
        if not line:
            del self._lines[key]
        elif first:
            line[0].set_result(None)  # the next write's turn

    def __len__(self) -> int:
        return len(self._lines)


@dataclass
class Place:
    """One write's place in its key's line: `await place.turn()`, then `place.leave()` (always)."""

    turns: KeyTurns
    key: tuple[str, str, str]
    _turn: asyncio.Future[None]

    async def turn(self) -> None:
        await asyncio.shield(self._turn)  # a cancelled waiter must not cancel the line's future

    def leave(self) -> None:
        self.turns._leave(self.key, self._turn)


class Doorbell:
    """Rung when this process settles a write to deliver: wakes the process that delivers it at once,
    its own outbox worker or, through a pipe, the delivering process beside the workers. Messages
    from other gateways, retries and backoffs are found by polling either way."""

    def __init__(self, pipe: int | None = None) -> None:
        self._pipe = pipe  # the write end; None when this process delivers its own writes
        self._rung = asyncio.Event()

    def set(self) -> None:
        self._rung.set()
        if self._pipe is not None:
            with contextlib.suppress(BlockingIOError, OSError):  # full (it has been rung) or gone (restarting)
                os.write(self._pipe, b"!")

    def clear(self) -> None:
        self._rung.clear()

    async def wait(self) -> bool:
        return await self._rung.wait()

    def listen(self, pipe: int) -> None:
        """On the delivering process: the workers' rings, read from the pipe's read end, ring here."""

        def heard() -> None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                os.read(pipe, 4096)
            self._rung.set()

        asyncio.get_running_loop().add_reader(pipe, heard)

    def stop_listening(self, pipe: int) -> None:
        asyncio.get_running_loop().remove_reader(pipe)


KEY_TURNS = web.AppKey("key_turns", KeyTurns)
OUTBOX_READY = web.AppKey("outbox_ready", Doorbell)  # rung when this gateway settles a write to deliver
EVENT_LOG = web.AppKey("event_log", EventLog)  # the events routes declare, in the store
FLOWS = web.AppKey("flows", FlowRunner)  # moves the flows' files, in the process that delivers the outbox
RECONCILIATIONS = web.AppKey("reconciliations", Scheduler)  # scheduled reconciliations, when any runs by itself


@dataclass
class Declared:
    """The route files as last loaded (a reload replaces `files`; the app's state stays the same object)."""

    files: RouteFile


INBOX = web.AppKey("inbox", Watch)  # the exception inbox kept current, in the process that runs the flows
DECLARED = web.AppKey("declared", Declared)  # the route files as last loaded: owners, flows, reconciliations
EVENTS_READY = web.AppKey("events_ready", asyncio.Event)  # set when this gateway records events to publish
