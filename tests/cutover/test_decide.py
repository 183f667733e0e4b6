"""Decision tables: who serves, who else gets the call, stickiness, pins, ramp up and down."""

from __future__ import annotations

import pytest

from cutover.decide import BUCKETS, Mode, Plan, Rule, Side, bucket, decide, in_canary

KEYS = [f"SO-{n:05d}" for n in range(5000)]


def rule(mode: Mode, percent: float = 0.0, pins: dict[str, Side] | None = None) -> Rule:
    return Rule("orders.get", "acme-us", mode, percent, pins or {})


@pytest.mark.parametrize(
    ("mode", "writes", "plan"),
    [
        (Mode.legacy, False, Plan(Side.legacy)),
        (Mode.legacy, True, Plan(Side.legacy)),
        (Mode.shadow, False, Plan(Side.legacy, mirror=Side.cloud, compare=True)),
        (Mode.shadow, True, Plan(Side.legacy)),  # the cloud must not see a write it does not own
        (Mode.dual_write, False, Plan(Side.legacy, mirror=Side.cloud, compare=True)),
        (Mode.dual_write, True, Plan(Side.legacy, mirror=Side.cloud, compare=True)),
        (Mode.cloud_primary, False, Plan(Side.cloud, mirror=Side.legacy, compare=True, fallback=Side.legacy)),
        (Mode.cloud_primary, True, Plan(Side.cloud, mirror=Side.legacy, compare=True)),
        (Mode.cloud, False, Plan(Side.cloud)),
        (Mode.cloud, True, Plan(Side.cloud)),
    ],
)
def test_plan_per_mode(mode: Mode, writes: bool, plan: Plan) -> None:
    assert decide(rule(mode), "SO-1", writes) == plan


def test_buckets_spread_evenly() -> None:
    counts = [0] * 10
    for key in KEYS:
        counts[bucket("salt", key) * 10 // BUCKETS] += 1
    assert min(counts) > 400 and max(counts) < 600


def test_canary_share_follows_percent() -> None:
    moved = sum(in_canary(rule(Mode.canary, 25), key, "s") for key in KEYS)
    assert 0.22 < moved / len(KEYS) < 0.28


def test_a_moved_key_stays_moved_at_every_higher_percent() -> None:
    ramp = [0.5, 1, 5, 10, 25, 50, 75, 100]
    previous: set[str] = set()
    for percent in ramp:
        moved = {key for key in KEYS if in_canary(rule(Mode.canary, percent), key, "s")}
        assert previous <= moved
        previous = moved
    assert previous == set(KEYS)


def test_lowering_the_percent_moves_keys_back_in_reverse_order() -> None:
    at = {p: {k for k in KEYS if in_canary(rule(Mode.canary, p), k, "s")} for p in (5, 25, 50)}
    # going 50 → 25 returns exactly the keys that moved between 25 and 50, the last to move first
    assert at[50] - at[25] == {k for k in KEYS if 2500 <= bucket("s", k) < 5000}
    assert at[5] <= at[25] <= at[50]


def test_salt_changes_which_keys_move() -> None:
    a = {k for k in KEYS if in_canary(rule(Mode.canary, 10), k, "orders")}
    b = {k for k in KEYS if in_canary(rule(Mode.canary, 10), k, "invoices")}
    assert a != b


def test_pins_hold_whatever_the_percent() -> None:
    pins = {"SO-00001": Side.legacy, "SO-00002": Side.cloud}
    for percent in (0.01, 1, 50, 100):
        r = rule(Mode.canary, percent, pins)
        assert decide(r, "SO-00001", False, "s").serve is Side.legacy
        assert decide(r, "SO-00002", False, "s").serve is Side.cloud


def test_canary_mirrors_to_the_other_side_and_compares() -> None:
    r = rule(Mode.canary, 100)
    assert decide(r, "SO-1", True, "s") == Plan(Side.cloud, mirror=Side.legacy, compare=True)
    assert decide(r, "SO-1", False, "s") == Plan(Side.cloud, mirror=Side.legacy, compare=True, fallback=Side.legacy)


def test_a_call_without_a_business_key_stays_on_legacy_until_everything_moved() -> None:
    assert decide(rule(Mode.canary, 99), None, False).serve is Side.legacy
    assert decide(rule(Mode.canary, 100), None, False).serve is Side.cloud
