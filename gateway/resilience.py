"""Circuit breakers per backend, and retries with backoff and jitter for calls safe to repeat."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from legacy_adapters import BackendError, BackendRejected, BackendUnavailable

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
