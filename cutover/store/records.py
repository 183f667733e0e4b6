"""What the store keeps and says: its records, its errors, and the clock it stamps them with."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from cutover.gates import Counters

CHANNEL = "banyan_cutover"
COUNTERS = [field.name for field in fields(Counters)]
IN_DOUBT_KEPT = 7 * 24 * 3600  # seconds an Idempotency-Key in doubt outlives its expiry


class StoreError(Exception):
    """The store cannot be reached or refused an operation."""


class Busy(StoreError):
    """Another connection holds the store's write lock at this instant (`transaction_now`)."""


class Conflict(StoreError):
    """Someone changed the rule since it was read: read it again and decide again."""


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: str
    actor: str
    kind: str  # set, promote, rollback, guardrail, acknowledge, schedule, freeze, guardrail_alert,
    # guardrail_clear, pause_copies, resume_copies
    route: str
    entity: str
    from_mode: str | None
    to_mode: str | None
    from_percent: float | None
    to_percent: float | None
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """What the store holds for a write's Idempotency-Key."""

    digest: str
    state: str  # running, done, in_doubt
    status: int | None
    content_type: str | None
    body: bytes
    correlation_id: str = ""  # of the call that claimed it: where the operators look
    created: float = 0.0
    location: str | None = None  # the Location header of the answer (a 202's status URL)


@dataclass(frozen=True)
class Scheduled:
    id: int
    route: str
    entity: str
    mode: str
    percent: float
    at: str
    reason: str
    actor: str
    state: str
    note: str
    change_id: int | None = None  # the approved change request it applies


@dataclass(frozen=True)
class Change:
    """A step one person proposed for a second person to approve (cutover/changes.py)."""

    id: int
    route: str
    entity: str
    mode: str
    percent: float
    force: bool
    at: str | None  # applied when due (a schedule) rather than when approved
    rule_version: int  # the rule's version it was proposed on: applied only on that one
    reason: str
    evidence: dict[str, Any]
    needs: str  # why it needs an approval, in words
    proposed_by: str
    proposed_at: str
    expires: float
    state: str  # proposed, applied, scheduled, rejected, withdrawn, expired, refused
    decided_by: str
    decided_at: str | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Freeze:
    id: int
    entity: str
    starts: str
    ends: str
    reason: str
    actor: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def minute(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // 60)
