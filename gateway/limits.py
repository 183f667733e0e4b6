"""Rate limits: a token bucket per consumer and route, in this process or shared in Redis.

A consumer gets `rate` calls a second on each route, with bursts up to `burst`. With one process
the buckets live here (`LocalLimiter`). With several workers or instances they must be shared, or
N processes let N times the contracted rate through to the legacy system the limit protects:
`--rate-store redis://…` keeps them in Redis (`RedisLimiter`), one atomic script per call, on Redis's
clock. If Redis cannot be reached the gateway goes on with local buckets and says so in the log
and in `banyan_rate_store_down`: it fails open on the limiter, never on authentication.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import MutableMapping
from typing import Any, NamedTuple, Protocol

from gateway.consumers import Consumer

log = logging.getLogger("banyan.gateway")


class Verdict(NamedTuple):  # made on every call: a tuple is the cheapest immutable record
    allowed: bool
    limit: int  # the burst: what a full bucket holds
    remaining: int  # whole calls left in the bucket
    reset: float  # seconds until the bucket is full again
    retry_after: float  # seconds until the next call would be allowed (0 when allowed)

    def tell(self, headers: MutableMapping[str, str]) -> None:
        """Set an answer's RateLimit-Limit, -Remaining and -Reset (IETF httpapi draft), and
        Retry-After on a refusal."""
        headers["RateLimit-Limit"] = str(self.limit)
        headers["RateLimit-Remaining"] = str(self.remaining)
        headers["RateLimit-Reset"] = str(math.ceil(self.reset))
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))


def _verdict(consumer: Consumer, tokens: float, allowed: bool) -> Verdict:
    missing = consumer.burst - tokens
    wait = 0.0 if allowed else (1 - tokens) / consumer.rate
    return Verdict(allowed, consumer.burst, int(tokens), max(0.0, missing / consumer.rate), wait)


class Limiter(Protocol):
    def now(self, consumer: Consumer, route: str) -> Verdict | None:
        """The verdict without waiting, or None when only `allow` can give it (a shared store)."""

    async def allow(self, consumer: Consumer, route: str) -> Verdict: ...

    async def close(self) -> None: ...


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float) -> None:
        self.tokens, self.stamp = tokens, time.monotonic()


class LocalLimiter:
    """Buckets in this process."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, consumer: Consumer, route: str) -> Verdict:
        bucket = self._buckets.get((consumer.name, route))
        if bucket is None:
            bucket = self._buckets[(consumer.name, route)] = _Bucket(consumer.burst)
        now = time.monotonic()
        bucket.tokens = min(consumer.burst, bucket.tokens + (now - bucket.stamp) * consumer.rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        return _verdict(consumer, bucket.tokens, allowed)

    def now(self, consumer: Consumer, route: str) -> Verdict:
        return self.take(consumer, route)

    async def allow(self, consumer: Consumer, route: str) -> Verdict:
        return self.take(consumer, route)

    async def close(self) -> None:
        pass


# One call: refill the bucket for the time since its last call (on Redis's clock, the same for every
# gateway), take a token if there is one, and let an idle bucket expire once it would be full.
TOKEN_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""
RETRY_SECONDS = 5.0  # after a failure, local buckets serve this long before Redis is tried again


class RedisLimiter:
    """Buckets in Redis, shared by every process that names the same Redis."""

    def __init__(self, url: str, on_down: Any = None) -> None:
        import redis.asyncio as redis  # only a gateway started with --rate-store needs it

        self.client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self.script = self.client.register_script(TOKEN_BUCKET)
        self.local = LocalLimiter()
        self.down_since: float | None = None
        self.on_down = on_down  # called with True/False when Redis goes away or comes back

    def now(self, consumer: Consumer, route: str) -> Verdict | None:
        if self.down_since is not None and time.monotonic() - self.down_since < RETRY_SECONDS:
            return self.local.take(consumer, route)  # Redis is away: local buckets meanwhile
        return None

    async def allow(self, consumer: Consumer, route: str) -> Verdict:
        if (meanwhile := self.now(consumer, route)) is not None:
            return meanwhile
        try:
            allowed, tokens = await self.script(
                keys=[f"banyan:rate:{consumer.name}:{route}"], args=[consumer.rate, consumer.burst]
            )
        except Exception as exc:  # any failure of the limiter's store: serve on, locally
            if self.down_since is None:
                log.error("rate store unreachable (%s): limiting per process until it is back", type(exc).__name__)
                if self.on_down:
                    self.on_down(True)
            self.down_since = time.monotonic()
            return self.local.take(consumer, route)
        if self.down_since is not None:
            log.info("rate store back: limits are shared again")
            self.down_since = None
            if self.on_down:
                self.on_down(False)
        return _verdict(consumer, float(tokens), bool(allowed))

    async def close(self) -> None:
        await self.client.aclose()
