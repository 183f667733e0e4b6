import random

import pytest

from inventory_scan.files.arrivals import MAX_BUCKETS, ArrivalSketch, human_interval, infer_cadence

BASE = 1767225600.0  # 2026-01-01 00:00 UTC, a Thursday
DAY = 86400
rng = random.Random(7)


def sketch(times: list[float], utc_offset: int = 0) -> ArrivalSketch:
    result = ArrivalSketch(utc_offset)
    for moment in times:
        result.add(moment)
    return result


def quarter_hours(n: int) -> list[float]:
    return [BASE + i * 900 + rng.uniform(-30, 30) for i in range(n)]


CASES = [
    ("no files", [], "unknown", "no arrivals"),
    ("one file", [BASE], "single", "one file"),
    ("two files", [BASE, BASE + 60], "unknown", "too few arrivals to tell (2)"),
    ("every 15 min", quarter_hours(500), "interval", "every ~15 min"),
    ("every 15 min, 200k files", quarter_hours(200_000), "interval", "every ~15 min"),
    ("every 5 min", [BASE + i * 300 for i in range(1000)], "interval", "every ~5 min"),
    ("a burst", [BASE + i * 0.5 for i in range(40)], "burst", "40 files within 20 s"),
    ("hourly", [BASE + i * 3600 + rng.uniform(0, 60) for i in range(200)], "interval", "every ~1 h"),
    (
        "business hours",
        [BASE + d * DAY + h for d in range(20) for h in range(8 * 3600, 18 * 3600, 900)],
        "interval",
        "every ~15 min, 08:00–17:50",
    ),
    ("nightly", [BASE + d * DAY + 2 * 3600 + (d % 9) * 60 for d in range(60)], "nightly", "nightly ~02:00"),
    (
        "nightly batches",
        [BASE + d * DAY + 23 * 3600 + k * 5 for d in range(30) for k in range(10)],
        "nightly",
        "nightly ~23:00 (~10 files each)",
    ),
    ("daily", [BASE + d * DAY + 14 * 3600 for d in range(30)], "daily", "daily ~14:00"),
    ("weekly", [BASE + w * 7 * DAY + 6 * 3600 for w in range(20)], "weekly", "weekly, Thu ~06:00"),
    ("nightly for 13 years", [BASE + d * DAY + 2 * 3600 for d in range(5000)], "nightly", "nightly ~02:00"),
    (
        "random arrivals",
        sorted(rng.uniform(BASE, BASE + 30 * DAY) for _ in range(300)),
        "irregular",
        "irregular, ~10/day",
    ),
]


@pytest.mark.parametrize(("case", "times", "kind", "label"), CASES, ids=[c[0] for c in CASES])
def test_infer_cadence(case: str, times: list[float], kind: str, label: str) -> None:
    cadence = infer_cadence(sketch(times))
    assert (cadence.kind, cadence.label) == (kind, label)


def test_cadence_is_read_on_the_configured_clock() -> None:
    # 01:00 UTC every night is 02:00 in UTC+1
    times = [BASE + d * DAY + 3600 for d in range(30)]
    assert infer_cadence(sketch(times, utc_offset=3600)).time_of_day == "02:00"


def test_memory_is_bounded_by_buckets_not_files() -> None:
    big = sketch([BASE + i * 7.3 for i in range(300_000)])
    assert big.count == 300_000
    assert len(big.buckets) <= MAX_BUCKETS
    assert sum(big.buckets.values()) == 300_000


def test_merging_sketches_equals_one_sketch_of_everything() -> None:
    times = quarter_hours(10_000)
    left, right = sketch(times[::2]), sketch(times[1::2])
    left.merge(right)
    whole = sketch(times)
    assert (left.count, left.first, left.last) == (whole.count, whole.first, whole.last)
    assert left.slots == whole.slots and left.weekdays == whole.weekdays
    assert sum(left.buckets.values()) == 10_000
    assert infer_cadence(left).label == infer_cadence(whole).label == "every ~15 min"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30 s"), (900, "15 min"), (3500, "1 h"), (5400, "1.5 h"), (7200, "2 h"), (3 * DAY, "3 days")],
)
def test_human_interval(seconds: float, text: str) -> None:
    assert human_interval(seconds) == text


def test_merged_monthly_archives_keep_a_sparse_cadence_exact() -> None:
    """Business-hours arrivals split over monthly archive folders, merged back into one drop."""
    times = [BASE + d * DAY + h for d in range(30) if d % 7 not in (2, 3) for h in range(8 * 3600, 18 * 3600, 900)]
    months = [sketch(times[i::3]) for i in range(3)]
    whole = ArrivalSketch()
    for month in months:
        whole.merge(month)
    assert whole.shift == 0  # 880 arrivals fit in exact buckets
    assert infer_cadence(whole).label == "every ~15 min, 08:00–17:50"
