"""Watch local drop folders live with watchdog and record arrivals per pattern."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from inventory_scan.catalog import Observation
from inventory_scan.files.arrivals import ArrivalSketch
from inventory_scan.files.patterns import name_pattern


@dataclass
class Arrivals:
    sketch: ArrivalSketch
    times: list[float] = field(default_factory=list)  # bounded: see MAX_TIMES

    MAX_TIMES = 10_000


class _Recorder(FileSystemEventHandler):
    def __init__(self, folders: set[str], utc_offset: int) -> None:
        self._folders = folders
        self._utc_offset = utc_offset
        self._lock = threading.Lock()
        self._largest_gap: dict[tuple[str, str], float] = {}
        self.arrivals: dict[tuple[str, str], Arrivals] = {}

    def _record(self, path: str) -> None:
        folder, name = os.path.split(path)
        if folder not in self._folders or name.startswith("."):
            return
        key = (folder, name_pattern(name))
        now = time.time()
        with self._lock:
            seen = self.arrivals.get(key)
            if seen is None:
                seen = self.arrivals[key] = Arrivals(ArrivalSketch(self._utc_offset))
            seen.sketch.add(now)
            if len(seen.times) < Arrivals.MAX_TIMES:
                seen.times.append(now)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._record(os.fsdecode(event.src_path))

    def on_moved(self, event: FileSystemEvent) -> None:
        # Uploaders that write a temporary name and rename it on completion arrive here.
        if not event.is_directory:
            self._record(os.fsdecode(event.dest_path))


def watch(folders: set[str], seconds: float, utc_offset: int) -> tuple[datetime, dict[tuple[str, str], Arrivals]]:
    """Watch `folders` (not their subfolders) for `seconds`; arrivals keyed by (folder, pattern)."""
    recorder = _Recorder(folders, utc_offset)
    observer = Observer()
    for folder in sorted(folders):
        observer.schedule(recorder, folder, recursive=False)
    started = datetime.now(UTC)
    observer.start()
    try:
        time.sleep(seconds)
    finally:
        observer.stop()
        observer.join()
    return started, recorder.arrivals


def observation(started: datetime, seconds: float, arrivals: Arrivals | None) -> Observation:
    count = arrivals.sketch.count if arrivals else 0
    # The quiet stretches before the first and after the last arrival count as gaps too.
    begin = started.timestamp()
    times = [begin, *sorted(arrivals.times if arrivals else []), begin + seconds]
    largest = round(max(b - a for a, b in itertools.pairwise(times)), 3)
    return Observation(
        started=started,
        seconds=seconds,
        arrivals=count,
        rate_per_hour=round(count * 3600 / seconds, 2) if seconds > 0 else 0.0,
        largest_gap_seconds=largest,
    )
