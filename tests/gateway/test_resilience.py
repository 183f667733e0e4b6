"""The circuit breaker and retries, on their own: a trial call that cannot be sent frees the breaker."""

from __future__ import annotations

import asyncio

import pytest

from gateway.resilience import Breaker, guarded
from legacy_adapters import BackendUnavailable


def _opened(breaker: Breaker) -> None:
    for _ in range(breaker.failures_to_open):
        breaker.before()
        breaker.failure()


async def _fails() -> str:
    raise BackendUnavailable("down")


@pytest.mark.parametrize(
    "trial_error",
    [UnicodeEncodeError("latin-1", "€", 0, 1, "not latin-1"), ValueError("malformed JSON"), OverflowError("2**64")],
)
def test_a_trial_that_raises_anything_else_lets_the_next_call_try(trial_error: Exception) -> None:
    breaker = Breaker(failures=2, reset=0.0)
    _opened(breaker)
    assert breaker.state == "half_open"

    async def broken() -> str:
        raise trial_error

    with pytest.raises(type(trial_error)):
        asyncio.run(guarded(broken, breaker, retries=0, backoff=0, retry_safe=False))

    async def healthy() -> str:
        return "ok"

    # Before the fix the trial flag stayed set: every later call got 503 "trying again in 0 s" for good.
    assert asyncio.run(guarded(healthy, breaker, retries=0, backoff=0, retry_safe=False)) == "ok"
    assert breaker.state == "closed"


def test_a_failed_trial_opens_the_breaker_again() -> None:
    breaker = Breaker(failures=2, reset=60.0)
    _opened(breaker)
    breaker.opened_at = (breaker.opened_at or 0) - 61  # the reset time has passed: half-open
    with pytest.raises(BackendUnavailable, match="down"):
        asyncio.run(guarded(_fails, breaker, retries=0, backoff=0, retry_safe=False))
    assert breaker.state == "open"
    with pytest.raises(BackendUnavailable, match="circuit breaker is open"):
        asyncio.run(guarded(_fails, breaker, retries=0, backoff=0, retry_safe=False))


def test_the_breaker_says_how_long_a_caller_waits() -> None:
    breaker = Breaker(failures=1, reset=60.0)
    assert breaker.wait() == 0.0
    _opened(breaker)
    assert 59 < breaker.wait() <= 60  # open: until the trial
    breaker.reset = 0.0
    breaker.before()  # this call is the half-open trial
    assert breaker.wait() == Breaker.TRIAL_WAIT  # others wait for its outcome
    breaker.success()
    assert breaker.wait() == 0.0
