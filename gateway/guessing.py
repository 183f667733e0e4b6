"""Key guessing: wrong keys are counted and answered ever more slowly; a right key never waits.

A gateway behind a proxy sees every client at the proxy's address, so refusing an address after a
few wrong keys would let anyone lock the whole team out. Instead, each wrong API or admin key is
counted twice, against the client's address and against the key's first characters, over a
window, and its 401 is held back for a delay that doubles with the larger count after the first
few (`delay`). A right key is checked first and served at once, whatever the counts say.

The counts are shared by every process naming the same Redis (`--rate-store`), so N workers or
instances do not give a guesser N times the tries; without Redis, or while it is away, each process
counts alone. The client's address is the connection's, unless that is a proxy named with
`--trusted-proxy`: then it is the last address in X-Forwarded-For that no trusted proxy added.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from asyncio import sleep
from collections.abc import Callable, Sequence

from aiohttp import web

log = logging.getLogger("banyan.gateway")

WINDOW_SECONDS = 60.0  # wrong keys are counted over this long
FREE = 5  # wrong keys in the window answered at once (a person mistyping)
FIRST_DELAY = 0.25  # seconds, for the first wrong key after the free ones; doubled for each one more
MAX_DELAY = 5.0
PREFIX = 8  # characters of a wrong key it is counted by: one key tried from many addresses adds up
RETRY_SECONDS = 5.0  # after Redis failed, local counts serve this long before it is tried again

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# set on a request whose key was wrong: (kind, the key); the edge holds its answer back (`Guesses.wrong`)
WRONG_KEY: web.RequestKey[tuple[str, str]] = web.RequestKey("wrong_key")


def delay(count: int) -> float:
    """Seconds to hold back the answer to the `count`-th wrong key of a window."""
    if count <= FREE:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** (count - FREE - 1))


def trusted_networks(given: Sequence[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values (an address or a network, e.g. 10.0.0.0/8) as networks; ValueError
    naming the one that is neither."""
    networks = []
    for text in given:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            message = f"--trusted-proxy takes an address or a network such as 10.0.0.0/8, not {text!r}"
            raise ValueError(message) from None
    return tuple(networks)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request, proxies: tuple[Network, ...]) -> str:
    """Who sent the request: the connection's address, or, when that is a trusted proxy, the last
    address of X-Forwarded-For that is not one (a client can write the header too, so only what the
    trusted proxies appended counts)."""
    remote = request.remote or "?"
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    for hop in reversed(hops):
        if not hop:
            continue
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:  # not an address: the proxy passed on what the client wrote
                return remote
    return remote


def _names(kind: str, address: str, key: str) -> tuple[str, str]:
    """The two counters a wrong key adds to; the key's prefix only as a digest, never as it is."""
    prefix = hashlib.sha256(key[:PREFIX].encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"banyan:guess:{kind}:from:{address}", f"banyan:guess:{kind}:key:{prefix}"


class _Local:
    """Counts in this process: per name, the window's start and the count."""

    def __init__(self) -> None:
        self.counts: dict[str, tuple[float, int]] = {}

    def add(self, name: str) -> int:
        now = time.monotonic()
        start, count = self.counts.get(name, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, count = now, 0
        self.counts[name] = (start, count + 1)
        if len(self.counts) > 100_000:  # a flood of addresses: forget the windows that are over
            self.counts = {n: (s, c) for n, (s, c) in self.counts.items() if now - s < WINDOW_SECONDS}
        return count + 1


class Guesses:
    """Wrong keys, counted per address and per key prefix, in Redis when it is given. `counted` is
    called with the kind of each wrong key (for /metrics)."""

    def __init__(
        self,
        redis_url: str | None = None,
        proxies: tuple[Network, ...] = (),
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self.proxies = proxies
        self.counted = counted
        self.local = _Local()
        self.client = None
        if redis_url:
            import redis.asyncio as redis

            self.client = redis.Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self.down_since: float | None = None

    async def _add(self, names: tuple[str, str]) -> int:
        if self.client is not None and (self.down_since is None or time.monotonic() - self.down_since >= RETRY_SECONDS):
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    for name in names:  # a new counter starts its window; a running one keeps its own
                        pipe.set(name, 0, ex=int(WINDOW_SECONDS), nx=True)
                        pipe.incr(name)
                    counted = await pipe.execute()
                self.down_since = None
                return max(int(counted[1]), int(counted[3]))
            except Exception as exc:  # Redis away: count here meanwhile, and say so once
                if self.down_since is None:
                    log.error("rate store unreachable (%s): wrong keys counted per process", type(exc).__name__)
                self.down_since = time.monotonic()
        return max(self.local.add(name) for name in names)

    async def wrong(self, request: web.Request, kind: str, key: str) -> float:
        """Count a wrong `kind` key ("api" or "admin") from the request's client, and hold the answer
        back for as long as the counts say. Returns the seconds waited."""
        address = client_address(request, self.proxies)
        if self.counted is not None:
            self.counted(kind)
        count = await self._add(_names(kind, address, key))
        wait = delay(count)
        if count == FREE + 1:
            log.warning("wrong %s keys from %s: answers are slowed down", kind, address)  # never the key
        if wait:
            await sleep(wait)
        return wait

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


GUESSES = web.AppKey("guesses", Guesses)
