"""Evidence and the verdicts drawn from it: gates to move up a rung, guardrails to move down.

A gate's verdict is graded, not a boolean (Argo Rollouts' Successful / Failed / Inconclusive):
too few samples, or too little time at the current rung, is Inconclusive — never a pass, and never
a failure either: ten samples say little, whichever way they lean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Verdict(StrEnum):
    successful = "Successful"
    failed = "Failed"
    inconclusive = "Inconclusive"


class Reconciled(BaseModel):
    """Before the cloud serves every key (cloud_primary, cloud): a recent reconciliation of the
    entity's records that drifted little enough (reconcile/)."""

    model_config = ConfigDict(extra="forbid")

    reconciliation: str = Field(description="the reconciliation's name, e.g. us-orders")
    max_drift_rate: float = Field(default=0.0, ge=0, le=1, description="records differing or one-sided, of all")
    max_age_hours: float = Field(default=24, gt=0, description="the run is no older than this")


Rung = Literal["dual_write", "canary", "cloud_primary", "cloud"]


class Approval(BaseModel):
    """The steps up a second person must approve (cutover/changes.py): proposed by one, applied
    when another with the scope approves. Step-downs (rollbacks, the guardrail) never wait."""

    model_config = ConfigDict(extra="forbid")

    canary_above: float = Field(default=25, ge=0, le=100, description="into canary above this percent")
    into: list[Rung] = Field(
        default_factory=lambda: list[Rung](["cloud_primary", "cloud"]),
        description="into these rungs, whatever the percent",
    )
    forced: bool = Field(default=True, description="any step forced past a gate that does not say successful")
    expires_hours: float = Field(default=72, gt=0, description="a proposal nobody decided on expires after this")


class Gate(BaseModel):
    """What moving up a rung needs, judged on the evidence window."""

    model_config = ConfigDict(extra="forbid")

    min_samples: int = Field(default=100, ge=1)
    max_mismatch_rate: float = Field(default=0.01, ge=0, le=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    min_minutes: float = Field(default=30, ge=0, description="time at the current rung before moving up")
    window_minutes: int = Field(default=60, ge=1)
    reconciled: Reconciled | None = Field(
        default=None, description="into cloud_primary and cloud: a recent reconciliation within its drift"
    )
    approval: Approval | None = Field(
        default=None, description="the steps up a second person must approve (approval: {} for the usual ones)"
    )


class Guardrail(BaseModel):
    """When the guardrail acts: steps down where the cloud serves, alerts (and holds the cloud's
    copies on cloud write errors) where legacy does; see `Engine.tick`."""

    model_config = ConfigDict(extra="forbid")

    min_samples: int = Field(default=20, ge=1)
    max_mismatch_rate: float = Field(default=0.05, ge=0, le=1)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    window_minutes: int = Field(default=5, ge=1)


@dataclass
class Counters:
    calls_legacy: int = 0
    calls_cloud: int = 0
    errors_legacy: int = 0
    errors_cloud: int = 0
    comparisons: int = 0
    mismatches: int = 0
    unjudged: int = 0  # comparisons made while the route learnt its noise: they teach, they do not judge

    def add(self, other: Counters) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def cloud_error_rate(self) -> float:
        return self.errors_cloud / self.calls_cloud if self.calls_cloud else 0.0

    @property
    def judged(self) -> int:
        """Comparisons that count as evidence: those made once the noise was known."""
        return max(self.comparisons - self.unjudged, 0)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.judged if self.judged else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "judged": self.judged,
            "cloud_error_rate": round(self.cloud_error_rate, 4),
            "mismatch_rate": round(self.mismatch_rate, 4),
        }


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reasons: list[str]
    evidence: dict[str, Any]


def _samples(counters: Counters, compares: bool) -> int:
    # where answers are compared, comparisons are the evidence; else the cloud's own calls
    return counters.judged if compares else counters.calls_cloud


def judge(counters: Counters, gate: Gate, minutes_at_rung: float, compares: bool = True) -> Judgement:
    """May the route move up a rung?"""
    samples = _samples(counters, compares)
    evidence = counters.as_dict() | {"samples": samples, "minutes_at_rung": round(minutes_at_rung, 1)}
    failed = []
    if counters.calls_cloud and counters.cloud_error_rate > gate.max_error_rate:
        failed.append(f"cloud error rate {counters.cloud_error_rate:.2%} is over {gate.max_error_rate:.2%}")
    if compares and counters.judged and counters.mismatch_rate > gate.max_mismatch_rate:
        failed.append(f"mismatch rate {counters.mismatch_rate:.2%} is over {gate.max_mismatch_rate:.2%}")
    if samples < gate.min_samples:
        # too few to judge either way: a rate over the limit is said, as a warning, not a verdict
        waiting = [f"{samples} samples of the {gate.min_samples} needed"] + [f"so far {reason}" for reason in failed]
        if minutes_at_rung < gate.min_minutes:
            waiting.append(f"{minutes_at_rung:.0f} of the {gate.min_minutes:g} minutes at this rung")
        return Judgement(Verdict.inconclusive, waiting, evidence)
    if failed:
        return Judgement(Verdict.failed, failed, evidence)
    if minutes_at_rung < gate.min_minutes:
        reason = f"{minutes_at_rung:.0f} of the {gate.min_minutes:g} minutes at this rung"
        return Judgement(Verdict.inconclusive, [reason], evidence)
    return Judgement(Verdict.successful, [f"{samples} samples within the gate's limits"], evidence)


def crossed(counters: Counters, guardrail: Guardrail, compares: bool = True) -> list[str]:
    """The guardrail thresholds the window crosses; empty when the route may stay where it is."""
    reasons = []
    if counters.calls_cloud >= guardrail.min_samples and counters.cloud_error_rate > guardrail.max_error_rate:
        reasons.append(f"cloud error rate {counters.cloud_error_rate:.2%} over {guardrail.max_error_rate:.2%}")
    if compares and counters.judged >= guardrail.min_samples and counters.mismatch_rate > guardrail.max_mismatch_rate:
        reasons.append(f"mismatch rate {counters.mismatch_rate:.2%} over {guardrail.max_mismatch_rate:.2%}")
    return reasons
