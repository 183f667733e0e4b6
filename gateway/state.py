"""What the application holds, by key: its settings and the objects every request shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from cutover.runtime import Cutover
from gateway.consumers import Consumers
from gateway.metrics import Metrics
from gateway.policies import IdempotencyStore, RateLimiter
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


ROUTING = web.AppKey("routing", Routing)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS = web.AppKey("metrics", Metrics)
LIMITER = web.AppKey("limiter", RateLimiter)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
CUTOVER: web.AppKey[Cutover] = web.AppKey("cutover", Cutover)
ADMIN_KEY: web.AppKey[str] = web.AppKey("admin_key", str)
OUTBOX_READY = web.AppKey("outbox_ready", asyncio.Event)  # set when this gateway settles a write to deliver
