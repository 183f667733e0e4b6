"""What the application holds, by key: its settings and the objects every request shares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from cutover.runtime import Cutover
from events.log import EventLog
from gateway.consumers import Consumers
from gateway.idempotency import Idempotency
from gateway.limits import Limiter
from gateway.metrics import Metrics
from gateway.table import Routing

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
    rate_store: str | None = None  # redis://… to share rate limits across processes
    events_broker: str | None = None  # nats://… or amqp://…: where the routes' events are published
    otlp_endpoint: str | None = None  # an OTLP/HTTP collector's base URL: spans are exported there


ROUTING = web.AppKey("routing", Routing)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", Limiter)
IDEMPOTENCY = web.AppKey("idempotency", Idempotency)
CUTOVER: web.AppKey[Cutover] = web.AppKey("cutover", Cutover)
ADMIN_KEY: web.AppKey[str] = web.AppKey("admin_key", str)
ADMIN_FAILURES: web.AppKey[dict[str, tuple[int, float]]] = web.AppKey("admin_failures")  # address → count, since


class KeyTurns:
    """One asyncio lock per business key in use, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: tuple[str, str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            users = self._locks[key][1]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


KEY_TURNS = web.AppKey("key_turns", KeyTurns)
OUTBOX_READY = web.AppKey("outbox_ready", asyncio.Event)  # set when this gateway settles a write to deliver
EVENT_LOG = web.AppKey("event_log", EventLog)  # the events routes declare, in the store
EVENTS_READY = web.AppKey("events_ready", asyncio.Event)  # set when this gateway records events to publish
