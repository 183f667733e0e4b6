"""An in-memory system of record: a backend with no transport, for tests and for trying a route
before the system behind it is reachable.

    legacy: {backend: {backend: memory, system: erp-de}}
    cloud:  {backend: {backend: memory, system: cloud-erp, latency: 0.002, jitter: 0.01}}

A write keeps the payload under the call's entity and business key (the last one wins, and every
write is kept in order in `writes`); a read answers what was kept, or 404. Writes carrying an
Idempotency-Key are booked once per key, as a real ERP with an idempotent API books them. Tests
reach a system by name (`system("erp-de")`) to look at what it holds or to make it fail.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import BackendRejected, BackendUnavailable


class MemoryConfig(BackendConfig):
    backend: Literal["memory"] = "memory"
    system: str = Field(min_length=1, description="name of the system of record; sides naming one share it")
    latency: float = Field(default=0.0, ge=0, le=60, description="seconds each call takes")
    jitter: float = Field(default=0.0, ge=0, le=60, description="up to this many seconds more, at random")


@dataclass
class System:
    """What one in-memory system holds, and how it behaves."""

    records: dict[tuple[str, str], Any] = field(default_factory=dict)
    writes: list[tuple[str, str, Any]] = field(default_factory=list)  # (entity, key, payload), in booking order
    booked: dict[str, Any] = field(default_factory=dict)  # Idempotency-Key → the answer given
    down: bool = False  # answers as an unreachable system
    refuse: str | None = None  # answers every write with this refusal (a 4xx)

    def writes_of(self, key: str) -> list[Any]:
        return [payload for _, k, payload in self.writes if k == key]


_SYSTEMS: dict[str, System] = {}


def system(name: str) -> System:
    """The system of that name (made empty on first use)."""
    return _SYSTEMS.setdefault(name, System())


def forget() -> None:
    """Forget every system: each test starts with empty ones."""
    _SYSTEMS.clear()


class MemoryBackend(Registered):
    name = "memory"
    Config = MemoryConfig
    retry_safe = True  # a repeated write with its Idempotency-Key is booked once

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config

    async def call(self, request: Call) -> Reply:
        if self.config.latency or self.config.jitter:
            await asyncio.sleep(self.config.latency + random.uniform(0, self.config.jitter))
        held = system(self.config.system)
        if held.down:
            raise BackendUnavailable(f"the {self.config.system} system is down")
        record = (request.entity or "*", request.key or "")
        if not request.writes:
            if record not in held.records:
                return Reply(404, {"error": "not found"})
            return Reply(200, held.records[record])
        if held.refuse:
            raise BackendRejected(held.refuse)
        idempotency = request.headers.get("Idempotency-Key")
        if idempotency and idempotency in held.booked:
            return Reply(200, held.booked[idempotency])
        held.records[record] = request.payload
        held.writes.append((*record, request.payload))
        answer = {"key": request.key, "booked": len(held.writes)}
        if idempotency:
            held.booked[idempotency] = answer
        return Reply(200, answer)

    async def close(self) -> None:
        pass
