"""A bounded summary of arrival times, and the cadence it suggests.

A drop folder may hold millions of files, so the scanner never keeps every timestamp. An
`ArrivalSketch` keeps: exact count, first and last; a histogram of arrival times whose bucket width
doubles whenever it would exceed `MAX_BUCKETS` (so it holds exact seconds for small drops and
coarser buckets for huge ones); and arrivals per 5 minutes of the day and per weekday, which is
what tells "nightly ~02:00" from "every ~15 min".
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

from inventory_scan.catalog import Cadence

MAX_BUCKETS = 2048
DAY = 86_400
_SLOTS = 288  # five-minute slots in a day
BURST_SECONDS = 300  # every arrival within five minutes: one batch, whatever the count
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass
class ArrivalSketch:
    utc_offset: int = 0  # seconds east of UTC of the timezone whose clock the cadence is read on
    count: int = 0
    first: float = float("inf")
    last: float = float("-inf")
    shift: int = 0  # bucket width is 2**shift seconds
    buckets: dict[int, int] = field(default_factory=dict)
    slots: list[int] = field(default_factory=lambda: [0] * _SLOTS)
    weekdays: list[int] = field(default_factory=lambda: [0] * 7)

    def add(self, moment: float) -> None:
        self.count += 1
        if moment < self.first:
            self.first = moment
        if moment > self.last:
            self.last = moment
        seconds = int(moment)
        key = seconds >> self.shift
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + 1
        local = seconds + self.utc_offset
        self.slots[local % DAY // 300] += 1
        # 1970-01-01 was a Thursday (index 3).
        self.weekdays[(local // DAY + 3) % 7] += 1
        if len(buckets) > MAX_BUCKETS:
            self._coarsen()

    def _coarsen(self, to_shift: int | None = None) -> None:
        if to_shift is None:
            # Find the width at which the buckets would be half full, then re-bucket once: a drop
            # keeps being re-bucketed a few times in all, not once per file past the limit.
            keys = self.buckets.keys()
            step = 1
            while len({key >> step for key in keys}) > MAX_BUCKETS // 2:
                step += 1
            to_shift = self.shift + step
        step = to_shift - self.shift
        merged: dict[int, int] = {}
        for key, hits in self.buckets.items():
            key >>= step
            merged[key] = merged.get(key, 0) + hits
        self.buckets = merged
        self.shift = to_shift

    def merge(self, other: ArrivalSketch) -> None:
        """Fold another sketch (of another folder or worker) into this one."""
        if other.count == 0:
            return
        self.count += other.count
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        shift = max(self.shift, other.shift)
        if shift > self.shift:
            self._coarsen(shift)
        step = shift - other.shift
        buckets = self.buckets
        for key, hits in other.buckets.items():
            key >>= step
            buckets[key] = buckets.get(key, 0) + hits
        self.slots = [a + b for a, b in zip(self.slots, other.slots, strict=True)]
        self.weekdays = [a + b for a, b in zip(self.weekdays, other.weekdays, strict=True)]
        if len(buckets) > MAX_BUCKETS:
            self._coarsen()


def human_interval(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 55 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 1800) / 2:g} h"
    return f"{round(seconds / DAY)} days"


def _best_window(slots: list[int], width: int) -> tuple[int, int]:
    """(start slot, arrivals) of the busiest run of `width` consecutive slots, wrapping at midnight."""
    doubled = slots + slots[: width - 1]
    running = sum(doubled[:width])
    best = (0, running)
    for start in range(1, _SLOTS):
        running += doubled[start + width - 1] - doubled[start - 1]
        if running > best[1]:
            best = (start, running)
    return best


def _slot_time(slot: float) -> str:
    minutes = round(slot * 5) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _typical_time(slots: list[int], start: int, width: int) -> str:
    """The arrival-weighted median time inside the window."""
    window = [(start + i, slots[(start + i) % _SLOTS]) for i in range(width)]
    total = sum(hits for _, hits in window)
    seen = 0
    for slot, hits in window:
        seen += hits
        if seen * 2 >= total:
            return _slot_time(slot % _SLOTS)
    return _slot_time(start)


def _active_hours(slots: list[int], count: int) -> str | None:
    """'08:00–18:00' when arrivals keep to part of the day, else None."""
    quiet = [hits <= count * 0.001 for hits in slots]
    if not any(quiet):
        return None
    # The longest quiet stretch, wrapping at midnight; the active window is the rest of the day.
    best_len, best_start, run, run_start = 0, 0, 0, 0
    for index in range(2 * _SLOTS):
        if quiet[index % _SLOTS]:
            if run == 0:
                run_start = index
            run += 1
            if run > best_len and run <= _SLOTS:
                best_len, best_start = run, run_start
        else:
            run = 0
    if best_len < 4 * 12:  # quiet for under 4 hours: arrivals keep to no particular window
        return None
    start = (best_start + best_len) % _SLOTS
    end = best_start % _SLOTS
    return f"{_slot_time(start)}–{_slot_time(end)}"


def _gaps(sketch: ArrivalSketch) -> list[float]:
    width = 1 << sketch.shift
    keys = sorted(sketch.buckets)
    return [(b - a) * width for a, b in itertools.pairwise(keys)]


def infer_cadence(sketch: ArrivalSketch, measured: bool = False) -> Cadence:
    """Interval, daily/nightly, weekly or irregular, with a label a person can read."""
    count = sketch.count
    if count == 0:
        return Cadence(kind="unknown", label="no arrivals", measured=measured)
    if count == 1:
        return Cadence(kind="single", label="one file", measured=measured)
    span = sketch.last - sketch.first
    if count < 3 or span <= 0:
        return Cadence(kind="unknown", label=f"too few arrivals to tell ({count})", measured=measured)
    mean = span / (count - 1)
    if span < BURST_SECONDS:
        return Cadence(kind="burst", label=f"{count} files within {human_interval(span)}", measured=measured)

    start, in_hour = _best_window(sketch.slots, 12)
    if count >= 4 and in_hour >= 0.8 * count and span >= 1.5 * DAY:
        time_of_day = _typical_time(sketch.slots, start, 12)
        per_day = count / (span / DAY + 1)
        batch = f" (~{round(per_day)} files each)" if per_day >= 1.5 else ""
        weekday = max(range(7), key=lambda day: sketch.weekdays[day])
        if sketch.weekdays[weekday] >= 0.8 * count and span >= 13 * DAY:
            return Cadence(
                kind="weekly",
                label=f"weekly, {_WEEKDAYS[weekday]} ~{time_of_day}{batch}",
                interval_seconds=7 * DAY,
                time_of_day=time_of_day,
                measured=measured,
            )
        hour = int(time_of_day[:2])
        kind = "nightly" if hour >= 20 or hour < 5 else "daily"
        return Cadence(
            kind=kind,
            label=f"{kind} ~{time_of_day}{batch}",
            interval_seconds=DAY,
            time_of_day=time_of_day,
            measured=measured,
        )

    # Keeping to part of the day means something only once several days have been seen.
    window = _active_hours(sketch.slots, count) if span >= 2 * DAY else None
    suffix = f", {window}" if window else ""
    width = 1 << sketch.shift
    if width * 4 <= mean:
        # Buckets are fine enough to see single arrivals: judge the gaps between them.
        gaps = _gaps(sketch)
        typical = statistics.median(gaps)
        steady = sum(0.5 * typical <= gap <= 1.5 * typical for gap in gaps) / len(gaps)
        if steady >= 0.6:
            return Cadence(
                kind="interval",
                label=f"every ~{human_interval(typical)}{suffix}",
                interval_seconds=typical,
                measured=measured,
            )
    else:
        # Coarse buckets hold many arrivals each: a steady stream fills them evenly (variance far
        # below the mean), a random one like a Poisson process (variance about the mean).
        first_key = min(sketch.buckets)
        counts = [sketch.buckets.get(first_key + i, 0) for i in range(max(sketch.buckets) - first_key + 1)]
        if window is None and len(counts) >= 8:
            inner = counts[1:-1]
            average = statistics.fmean(inner)
            if average > 0 and statistics.pvariance(inner) < 0.3 * average:
                return Cadence(
                    kind="interval",
                    label=f"every ~{human_interval(mean)}",
                    interval_seconds=mean,
                    measured=measured,
                )
    per_day = count / max(span / DAY, 1.0)
    rate = f"~{per_day:.0f}/day" if per_day >= 1 else f"~{per_day * 7:.1f}/week"
    return Cadence(kind="irregular", label=f"irregular, {rate}{suffix}", interval_seconds=mean, measured=measured)
