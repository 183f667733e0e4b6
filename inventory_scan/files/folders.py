"""What one folder holds, summarised per naming pattern in memory bounded by the pattern count."""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory_scan.files.arrivals import ArrivalSketch
from inventory_scan.files.patterns import fallback_pattern, name_pattern, shape

MAX_PATTERNS_PER_FOLDER = 200
MAX_SHAPES_PER_FOLDER = 4096
SAMPLES_PER_PATTERN = 2


def display(path: str) -> str:
    """A path as text: bytes that are not UTF-8 (kept by os.fsdecode as surrogates) shown as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class PatternStats:
    pattern: str
    sketch: ArrivalSketch
    count: int = 0
    bytes: int = 0
    zero_bytes: int = 0
    samples: list[str] = field(default_factory=list)  # the first files seen, to sniff
    newest: str = ""  # the most recent file, sniffed too so a change of format shows
    undecodable_name: str = ""  # a file whose name is not valid UTF-8, to warn about

    def add(self, path: str, size: int, mtime: float) -> None:
        if mtime >= self.sketch.last:
            self.newest = path
        self.count += 1
        self.bytes += size
        if size == 0:
            self.zero_bytes += 1
        if len(self.samples) < SAMPLES_PER_PATTERN:
            self.samples.append(path)
        self.sketch.add(mtime)

    def merge(self, other: PatternStats) -> None:
        if other.sketch.last >= self.sketch.last:
            self.newest = other.newest
        self.count += other.count
        self.bytes += other.bytes
        self.zero_bytes += other.zero_bytes
        self.samples = (self.samples + other.samples)[:SAMPLES_PER_PATTERN]
        self.undecodable_name = self.undecodable_name or other.undecodable_name
        self.sketch.merge(other.sketch)

    def sample_paths(self) -> list[str]:
        paths = list(self.samples)
        if self.newest and self.newest not in paths:
            paths.append(self.newest)
        return paths


@dataclass
class FolderResult:
    """One folder, read once. `path` is local or the remote path on an SFTP server."""

    path: str
    patterns: dict[str, PatternStats] = field(default_factory=dict)
    files: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)


class FolderAccumulator:
    """Groups the files of one folder by naming pattern as they are listed."""

    def __init__(self, path: str, utc_offset: int) -> None:
        self.result = FolderResult(path)
        self._utc_offset = utc_offset
        # shape → stats; many shapes (IN1.dat, IN10.dat) can share one pattern's stats.
        self._shapes: dict[bytes, PatternStats] = {}

    def stats_for(self, name: str, path: str) -> PatternStats:
        key = shape(name)
        stats = self._shapes.get(key)
        if stats is None:
            stats = self._new_shape(key, name, path)
        return stats

    def _new_shape(self, key: bytes, name: str, path: str) -> PatternStats:
        patterns = self.result.patterns
        shown = display(name)
        pattern = name_pattern(shown)
        if pattern not in patterns and len(patterns) >= MAX_PATTERNS_PER_FOLDER:
            pattern = fallback_pattern(name)
        stats = patterns.get(pattern)
        if stats is None:
            stats = patterns[pattern] = PatternStats(pattern, ArrivalSketch(self._utc_offset))
        if len(self._shapes) >= MAX_SHAPES_PER_FOLDER:
            self._shapes.clear()  # names that never repeat a shape (uuids): keep memory bounded
        self._shapes[key] = stats
        if shown != name:
            stats.undecodable_name = stats.undecodable_name or path
        return stats

    def add(self, name: str, path: str, size: int, mtime: float) -> None:
        self.stats_for(name, path).add(path, size, mtime)
        self.result.files += 1

    def warn(self, path: str, message: str) -> None:
        self.result.warnings.append((path, message))
