"""Every error a backend raises, and what each says about the call: was the write made?

A backend's answer is classified once, here, into one `Outcome`, and only `made` ever counts as a
success — for the consumer, the Idempotency-Key, the outbox and the evidence:

    Outcome          raised as                 the consumer gets       the key        an outbox copy
    made             (a Reply)                 2xx                     done           delivered
    not_made         BackendUnavailable (503)  503 (+ Retry-After)     released       retried later
                     └── BackendThrottled      503 + Retry-After       released       waits Retry-After
    refused          BackendRejected (422)     422                     released       dead
    not_found        └── BackendNotFound       404 read / 422 write    released       dead
    not_authorised   BackendUnauthorised       503                     released       held, alerted
    unknown          BackendError (502)        502                     in doubt       in doubt
                     ├── BackendTimeout (504)
                     └── BackendFault (502)

`outcome_of_status` says the same of an HTTP status, for every backend that speaks HTTP (the HTTP
and SOAP backends, the SOAP passthrough): 2xx made; 408, 425, 429 and 503 not made (retry
later); 401 and 403 not authorised; 404 not found; any other 4xx refused; 1xx, 3xx and the other
5xx unknown, since the request was sent and the answer does not say what became of it.

Messages are written for the API consumer: they name the backend kind, never a URL with credentials,
a connection string or a traceback.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Outcome(StrEnum):
    made = "made"
    not_made = "not_made"  # nothing was written: try again later
    refused = "refused"  # the side refused the values: the same request will be refused again
    not_found = "not_found"
    not_authorised = "not_authorised"  # the gateway's own credentials or grants: the operators' to fix
    unknown = "unknown"  # the request was sent and no answer says what became of it


class BackendError(Exception):
    status = 502
    title = "Backend error"
    outcome = Outcome.unknown


class BackendTimeout(BackendError):
    status = 504
    title = "Backend timed out"


class BackendUnavailable(BackendError):
    status = 503
    title = "Backend unavailable"
    outcome = Outcome.not_made


class BackendThrottled(BackendUnavailable):
    """The side said "not now" (429, or 503 with Retry-After): nothing was written, and it asked to be
    left alone for `retry_after` seconds."""

    title = "Backend throttled"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendFault(BackendError):
    status = 502
    title = "Backend fault"


class BackendRejected(BackendError):
    status = 422
    title = "Backend rejected the request"
    outcome = Outcome.refused


class BackendNotFound(BackendRejected):
    status = 404
    title = "Not found"
    outcome = Outcome.not_found


class BackendUnauthorised(BackendError):
    """The side refused the gateway's credentials or grants (401 after one token refresh, 403): the
    consumer's request may be fine; the operators must fix the gateway's access."""

    status = 503
    title = "Backend refused the gateway"
    outcome = Outcome.not_authorised


RETRY_STATUSES = frozenset({408, 425, 429, 503})
DEFAULT_RETRY_AFTER = 1.0  # seconds, when a 429 says nothing
MAX_RETRY_AFTER = 300.0  # a side asking for longer is asked again after this


def outcome_of_status(status: int) -> Outcome:
    """What an HTTP status says about the request (see the module's table)."""
    if 200 <= status < 300:
        return Outcome.made
    if status in RETRY_STATUSES:
        return Outcome.not_made
    if status in (401, 403):
        return Outcome.not_authorised
    if status == 404:
        return Outcome.not_found
    if 400 <= status < 500:
        return Outcome.refused
    return Outcome.unknown


def retry_after(value: str | None, default: float | None = DEFAULT_RETRY_AFTER) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), between 0 and
    MAX_RETRY_AFTER; `default` when the header is missing or cannot be read."""
    if not value:
        return default
    value = value.strip()
    try:
        seconds = float(value) if value.isdigit() else parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return default
    if math.isnan(seconds):
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def error_for_status(status: int, what: str, retry_after_header: str | None = None, reason: str = "") -> BackendError:
    """The error a non-2xx answer of `what` ("the HTTP backend") is raised as; a refusal says the
    backend's `reason` when it gave one."""
    outcome = outcome_of_status(status)
    because = f": {reason}" if reason else ""
    if outcome is Outcome.not_made:
        pause = retry_after(retry_after_header, DEFAULT_RETRY_AFTER if status == 429 else None)
        if pause is not None:
            return BackendThrottled(f"{what} is throttling calls ({status}): retry in {math.ceil(pause)} s", pause)
        return BackendUnavailable(f"{what} answered {status}: nothing was booked, retry later")
    if outcome is Outcome.not_authorised:
        return BackendUnauthorised(f"{what} refused the gateway's credentials ({status}): the operators must fix them")
    if outcome is Outcome.not_found:
        return BackendNotFound(f"{what} has no such record ({status}){because}")
    if outcome is Outcome.refused:
        return BackendRejected(f"{what} refused the request ({status}){because}")
    if 300 <= status < 400:  # a write sent on to another address could change method or be booked twice
        return BackendFault(f"{what} answered {status} (a redirect): point the route at where it leads")
    return BackendFault(f"{what} answered {status}")
