"""Circuit breakers per backend, retries with backoff and jitter for calls safe to repeat, and
bulkheads: a limit on the calls one backend is sent at once, with a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from legacy_adapters import BackendError, BackendRejected, BackendThrottled, BackendUnauthorised, BackendUnavailable

T = TypeVar("T")


class Breaker:
    """Closed → open after `failures` consecutive failures → half-open after `reset` s: one trial call."""

    def __init__(self, failures: int, reset: float) -> None:
        self.failures_to_open = failures
        self.reset = reset
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.reset else "open"

    TRIAL_WAIT = 0.5  # seconds a caller is told to wait while another call is the half-open trial

    def wait(self) -> float:
        """Seconds before this breaker lets a call through; 0 when one may go now."""
        state = self.state
        if state == "open":
            return max(self.reset - (time.monotonic() - (self.opened_at or 0)), 0.1)
        if state == "half_open" and self.trial_running:
            return self.TRIAL_WAIT  # the trial's outcome decides
        return 0.0

    def before(self) -> None:
        wait = self.wait()
        if wait:
            raise BackendUnavailable(f"the backend's circuit breaker is open; trying again in {wait:.0f} s")
        if self.state == "half_open":
            self.trial_running = True

    def abandon(self) -> None:
        """The trial call ended without telling whether the backend is healthy (the request could not
        even be sent): let the next call try, instead of holding the breaker open for good."""
        self.trial_running = False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial_running = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial_running = False
        if self.failures >= self.failures_to_open or self.opened_at is not None:
            self.opened_at = time.monotonic()


async def guarded(
    attempt: Callable[[], Awaitable[T]], breaker: Breaker, retries: int, backoff: float, retry_safe: bool
) -> T:
    """Call through the breaker; retry failures that are not the caller's fault, if safe to repeat."""
    tries = retries + 1 if retry_safe else 1
    for number in range(1, tries + 1):
        breaker.before()
        try:
            result = await attempt()
        except BackendRejected:
            breaker.success()  # the backend is healthy; the request was wrong
            raise
        except (BackendThrottled, BackendUnauthorised):
            breaker.abandon()  # it answered, so it is up; trying again at once would be refused the same
            raise
        except BackendError:
            breaker.failure()
            if number == tries:
                raise
            await asyncio.sleep(backoff * 2 ** (number - 1) * (0.5 + random.random()))
            continue
        except BaseException:  # a timeout, a cancel, a request the backend library refused to send
            breaker.abandon()
            raise
        breaker.success()
        return result
    raise AssertionError("unreachable")


class Busy(Exception):
    """The backend already has as many calls as it may take, and its queue is full: shed this one."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


class Bulkhead:
    """At most `limit` calls to one backend in flight from this process, `queue` more waiting their
    turn in order; a caller beyond that is refused at once (`Busy`) instead of joining a pile of
    calls that would time out. A patient caller (the outbox worker, which has no consumer waiting)
    always waits, and does not count against `queue`."""

    SMOOTHING = 0.2  # weight of the newest call in the moving average of call time

    def __init__(self, limit: int, queue: int, wait: float) -> None:
        self.limit, self.queue, self.wait = limit, queue, wait
        self.in_flight = 0
        self.waiting = 0  # impatient callers in line
        self.seconds = 0.0  # how long a call takes, on average
        self._line: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return max(self.limit - self.in_flight - len(self._line), 0)

    def retry_after(self) -> int:
        """Whole seconds until a caller refused now would likely find a free slot."""
        return max(1, math.ceil(self.seconds * (self.waiting + 1) / self.limit))

    @contextlib.asynccontextmanager
    async def slot(self, patient: bool = False) -> AsyncIterator[None]:
        if self.in_flight < self.limit and not self._line:
            self.in_flight += 1
        else:
            await self._queue(patient)
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds += (time.monotonic() - started - self.seconds) * self.SMOOTHING
            self._release()

    async def _queue(self, patient: bool) -> None:
        if not patient and self.waiting >= self.queue:
            raise Busy(self.retry_after())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        self.waiting += not patient
        try:
            if patient:
                await turn
            else:
                async with asyncio.timeout(self.wait):
                    await turn
        except (TimeoutError, asyncio.CancelledError) as exc:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over as the wait ended: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._line.remove(turn)
            if isinstance(exc, TimeoutError):
                raise Busy(self.retry_after()) from None
            raise
        finally:
            self.waiting -= not patient

    def _release(self) -> None:
        """Hand the slot to the first caller still waiting, or free it."""
        while self._line:
            turn = self._line.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_flight -= 1


class Pause:
    """A side that said Retry-After is left alone until then, by every caller in this process that
    shares its pool (the serving calls, the outbox, accepted writes): one message backing off while
    the next thousand run into the same wall would keep the side throttled."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # the pool, or the origin, it holds back: for /metrics
        self.until = 0.0  # time.monotonic()

    def wait(self) -> float:
        """Seconds left of the pause; 0 when calls may go."""
        return max(self.until - time.monotonic(), 0.0)

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)


class Pauses:
    """This process's pauses by pool, kept across a reload of the routes like the bulkheads."""

    def __init__(self) -> None:
        self._by_name: dict[str, Pause] = {}

    def get(self, name: str) -> Pause:
        found = self._by_name.get(name)
        if found is None:
            found = self._by_name[name] = Pause(name)
        return found

    def items(self) -> list[tuple[str, Pause]]:
        return sorted(self._by_name.items())
