"""The one small interface every backend implements, and the registry backends add themselves to.

A backend takes a `Call` (the canonical JSON payload after the route's request mapping, plus the
entity, business key and correlation headers) and returns a `Reply` (canonical JSON before the
response mapping). Transports differ; this contract does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from legacy_adapters.registry import Registry


@dataclass
class Call:
    route: str
    payload: Any
    entity: str | None = None
    key: str | None = None
    correlation_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # traceparent, Idempotency-Key …
    writes: bool = False
    params: dict[str, str] = field(default_factory=dict)  # path and query parameters


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class BackendConfig(BaseModel):
    """Settings every backend shares; each backend module adds its own fields."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    timeout: float = Field(default=10.0, gt=0, description="seconds for one attempt")


class Backend(Protocol):
    config: BackendConfig
    retry_safe: bool  # may a failed call be sent again without risk of doing it twice?

    async def call(self, request: Call) -> Reply: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Registration:
    name: str
    config: type[BackendConfig]
    factory: Callable[[Any], Backend]


BACKENDS: Registry[Registration] = Registry("backend")


class Registered:
    """Mixin: a backend class with `name` and `Config` registers itself when defined."""

    name: ClassVar[str]
    Config: ClassVar[type[BackendConfig]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BACKENDS.add(cls.name, Registration(cls.name, cls.Config, cls))  # type: ignore[arg-type]


def create(config: BackendConfig) -> Backend:
    return BACKENDS[config.backend].factory(config)
