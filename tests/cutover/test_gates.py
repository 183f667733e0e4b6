"""Gate verdicts and guardrail thresholds on the evidence window."""

from __future__ import annotations

import pytest

from cutover.gates import Counters, Gate, Guardrail, Verdict, crossed, judge

GATE = Gate(min_samples=100, max_mismatch_rate=0.01, max_error_rate=0.02, min_minutes=30)


def window(comparisons: int = 0, mismatches: int = 0, calls_cloud: int = 0, errors_cloud: int = 0) -> Counters:
    return Counters(
        calls_legacy=comparisons,
        calls_cloud=calls_cloud or comparisons,
        errors_cloud=errors_cloud,
        comparisons=comparisons,
        mismatches=mismatches,
    )


@pytest.mark.parametrize(
    ("counters", "minutes", "verdict", "says"),
    [
        (window(500, 2), 45, Verdict.successful, "500 samples"),
        (window(99, 0), 45, Verdict.inconclusive, "99 samples of the 100 needed"),
        (window(0), 45, Verdict.inconclusive, "0 samples"),
        (window(500, 0), 10, Verdict.inconclusive, "10 of the 30 minutes"),
        (window(500, 10), 45, Verdict.failed, "mismatch rate 2.00% is over 1.00%"),
        (window(500, 0, errors_cloud=20), 45, Verdict.failed, "cloud error rate 4.00%"),
        # before the samples are in, a rate over the limit is a warning, not a verdict
        (window(10, 4), 5, Verdict.inconclusive, "10 samples of the 100 needed; so far mismatch rate 40.00%"),
        (window(500, 0, errors_cloud=20), 5, Verdict.failed, "cloud error rate 4.00%"),
    ],
)
def test_gate_verdicts(counters: Counters, minutes: float, verdict: Verdict, says: str) -> None:
    judgement = judge(counters, GATE, minutes)
    assert judgement.verdict is verdict
    assert says in "; ".join(judgement.reasons)
    assert judgement.evidence["comparisons"] == counters.comparisons


def test_without_comparisons_the_cloud_calls_are_the_samples() -> None:
    judgement = judge(Counters(calls_cloud=150), GATE, 60, compares=False)
    assert judgement.verdict is Verdict.successful


def test_guardrail_waits_for_enough_samples_then_trips() -> None:
    guardrail = Guardrail(min_samples=20, max_error_rate=0.05)
    assert crossed(Counters(calls_cloud=10, errors_cloud=10), guardrail) == []
    reasons = crossed(Counters(calls_cloud=40, errors_cloud=10), guardrail)
    assert reasons == ["cloud error rate 25.00% over 5.00%"]
    assert crossed(Counters(calls_cloud=40, errors_cloud=1), guardrail) == []


def test_counters_add_up() -> None:
    total = Counters()
    total.add(Counters(calls_cloud=2, errors_cloud=1))
    total.add(Counters(calls_cloud=2, comparisons=4, mismatches=1))
    assert total.as_dict()["cloud_error_rate"] == 0.25 and total.mismatch_rate == 0.25


def test_gate_rejects_impossible_limits() -> None:
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Gate(max_mismatch_rate=5)
