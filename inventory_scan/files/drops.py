"""Folders and patterns → drops: one `file_drop` interface per pattern in a drop folder.

A drop lives in its inbound or outbound folder (`in`, `outbound`, `export` …). Lifecycle folders
next to it or under it (`archive`, `processed`, `error` …, also with dated subfolders such as
`archive/2026/01`) are where its files go afterwards: their counts join the drop's activity, and
each becomes an edge `lifecycle:<stage>`. A drop whose inbound folder is empty right now is still
found through its archive.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from inventory_scan.catalog import Activity, Direction, Edge, Evidence, Interface, Kind
from inventory_scan.entities import EntityRule, Subject, resolve
from inventory_scan.files.arrivals import ArrivalSketch, infer_cadence
from inventory_scan.files.folders import FolderResult, PatternStats, display
from inventory_scan.formats import Detected

# Folder names, lower-cased, by role. A table, so a site's own words are one line to add.
ROLES: dict[str, Direction] = {
    **dict.fromkeys(
        ("in", "inbound", "incoming", "inbox", "input", "import", "imports", "upload", "uploads", "receive", "recv"),
        Direction.into,
    ),
    **dict.fromkeys(
        (
            "out",
            "outbound",
            "outgoing",
            "outbox",
            "output",
            "export",
            "exports",
            "download",
            "downloads",
            "send",
            "tosend",
            "pickup",
            "ack",
            "acks",
            "reply",
            "replies",
            "response",
            "responses",
        ),
        Direction.out_of,
    ),
}
STAGES: dict[str, str] = {
    **dict.fromkeys(("archive", "archived", "archives", "history", "backup", "bak", "old"), "archive"),
    **dict.fromkeys(
        ("processed", "done", "sent", "complete", "completed", "success", "imported", "exported"), "processed"
    ),
    **dict.fromkeys(
        (
            "error",
            "errors",
            "err",
            "failed",
            "failure",
            "failures",
            "rejected",
            "reject",
            "rejects",
            "bad",
            "quarantine",
            "dead",
            "deadletter",
        ),
        "error",
    ),
    **dict.fromkeys(("tmp", "temp", "work", "working", "processing", "inprogress", "in_progress", "pending"), "work"),
}
_DATED = re.compile(r"^[\d_.-]+$")  # archive/2026/01, archive/2026-01-05
_DATED_DEPTH = 3


def _word(path: str) -> str:
    return posixpath.basename(path.rstrip("/")).lower().strip("_-. 0123456789") or posixpath.basename(path)


# A drop in a folder whose name says nothing is read into the ERP when its reader files what it took
# as imported or failed, and written out of it when its writer files what it sent.
STAGE_DIRECTIONS: dict[str, Direction] = {
    **dict.fromkeys(("processed", "done", "imported", "success"), Direction.into),
    **dict.fromkeys(("sent", "exported"), Direction.out_of),
    **{word: Direction.into for word, stage in STAGES.items() if stage == "error"},
}


def _direction_from_stages(drop: Drop) -> Direction:
    seen = {found for stage in drop.stages.values() if (found := STAGE_DIRECTIONS.get(_word(stage.folder)))}
    return seen.pop() if len(seen) == 1 else Direction.unknown


def stage_of(path: str) -> tuple[str, str] | None:
    """(stage, stage folder) when `path` is a lifecycle folder or a dated folder under one."""
    current = path.rstrip("/")
    for _ in range(_DATED_DEPTH + 1):
        stage = STAGES.get(_word(current))
        if stage:
            return stage, current
        if not _DATED.match(posixpath.basename(current)):
            return None
        current = posixpath.dirname(current)
    return None


@dataclass
class Stage:
    folder: str
    stats: PatternStats


@dataclass
class Drop:
    folder: str
    pattern: str
    direction: Direction
    primary: PatternStats | None = None
    stages: dict[str, Stage] = field(default_factory=dict)
    _total: PatternStats | None = field(default=None, repr=False)

    def add_stage(self, stage: str, folder: str, stats: PatternStats) -> None:
        self._total = None
        existing = self.stages.get(stage)
        if existing is None:
            copy = PatternStats(stats.pattern, ArrivalSketch(stats.sketch.utc_offset))
            copy.merge(stats)
            self.stages[stage] = Stage(folder, copy)
        else:
            existing.stats.merge(stats)

    def merged(self) -> PatternStats:
        """The drop's files in every stage together (computed once: stages are complete by now)."""
        if self._total is None:
            parts = ([self.primary] if self.primary else []) + [stage.stats for stage in self.stages.values()]
            self._total = PatternStats(self.pattern, ArrivalSketch(parts[0].sketch.utc_offset))
            for part in parts:
                self._total.merge(part)
        return self._total


def group_drops(folders: Iterable[FolderResult]) -> list[Drop]:
    """Assemble drops from the folders of one source."""
    drops: dict[tuple[str, str], Drop] = {}
    lifecycle: list[tuple[str, str, FolderResult]] = []
    children: dict[str, list[str]] = defaultdict(list)
    has_files: set[str] = set()
    for folder in folders:
        path = folder.path.rstrip("/") or "/"
        children[posixpath.dirname(path)].append(path)
        if folder.patterns:
            has_files.add(path)
        staged = stage_of(path)
        if staged:
            lifecycle.append((staged[0], staged[1], folder))
            continue
        direction = ROLES.get(_word(path), Direction.unknown)
        for pattern, stats in folder.patterns.items():
            drops[(path, pattern)] = Drop(path, pattern, direction, primary=stats)

    for stage, stage_folder, folder in lifecycle:
        parent = posixpath.dirname(stage_folder)
        candidates = [
            path
            for path in [parent, *sorted(children.get(parent, []))]
            if path != stage_folder
            and stage_of(path) is None
            and (_word(path) in ROLES or (path == parent and path in has_files))
        ]
        for pattern, stats in folder.patterns.items():
            matching = [path for path in candidates if (path, pattern) in drops]
            empty = [path for path in candidates if path != parent and path not in has_files]
            if matching:
                home = matching[0]
            elif len(empty) == 1:
                # The drop folder is empty right now: its files have all moved on to this stage.
                home = empty[0]
            else:
                # No drop folder to be seen: the drop is the parent that holds the stage folders.
                home = parent
            if (home, pattern) not in drops:
                drops[(home, pattern)] = Drop(home, pattern, ROLES.get(_word(home), Direction.unknown))
            drops[(home, pattern)].add_stage(stage, stage_folder, stats)
    for drop in drops.values():
        if drop.direction is Direction.unknown:
            drop.direction = _direction_from_stages(drop)
    return sorted(drops.values(), key=lambda drop: (drop.folder, drop.pattern))


@dataclass(frozen=True)
class Place:
    """Where a source's folders live: builds locators and feeds entity rules."""

    scheme: str  # file or sftp
    host: str | None = None
    port: int = 22
    system: str = "local"

    def locator(self, path: str, pattern: str | None = None) -> str:
        netloc = "" if self.host is None else (self.host if self.port == 22 else f"{self.host}:{self.port}")
        tail = display(f"{path.rstrip('/')}/{pattern}" if pattern else path)
        return f"{self.scheme}://{netloc}{tail}"


def _when(moment: float) -> datetime | None:
    return datetime.fromtimestamp(moment, UTC) if moment not in (float("inf"), float("-inf")) else None


def to_interface(
    drop: Drop,
    place: Place,
    rules: list[EntityRule],
    detected: list[Detected],
    measured_cadence: bool = False,
) -> tuple[Interface, list[Edge]]:
    total = drop.merged()
    senders = frozenset(s for d in detected for s in d.details.get("senders", []) if s)
    receivers = frozenset(r for d in detected for r in d.details.get("receivers", []) if r)
    rule = resolve(rules, Subject(display(drop.folder), place.host, senders, receivers))
    formats = sorted({fmt for d in detected for fmt in d.formats})
    here = place.locator(drop.folder)
    stages = {
        name: {
            "folder": display(stage.folder),
            "files": stage.stats.count,
            "bytes": stage.stats.bytes,
            "last_seen": _when(stage.stats.sketch.last),
        }
        for name, stage in sorted(drop.stages.items())
    }
    attributes: dict[str, object] = {
        "pattern": drop.pattern,
        "folder": display(drop.folder),
        "waiting": drop.primary.count if drop.primary else 0,
        "stages": stages,
        "samples": [display(path) for path in total.sample_paths()],
        "format_details": [{"family": d.family, **d.details} for d in detected],
    }
    if total.zero_bytes:
        attributes["zero_byte_files"] = total.zero_bytes
    if drop.primary is None:
        attributes["inferred_from"] = sorted(stages)
    evidence = (
        [Evidence(source=here, detail=f"{drop.primary.count} files match {drop.pattern}")] if drop.primary else []
    )
    evidence += [
        Evidence(
            source=place.locator(stage.folder),
            detail=f"{stage.stats.count} files match {drop.pattern} ({name})",
        )
        for name, stage in sorted(drop.stages.items())
    ]
    interface = Interface.build(
        kind=Kind.file_drop,
        system=(rule.system if rule and rule.system else place.system),
        locator=place.locator(drop.folder, drop.pattern),
        entity=rule.entity if rule else None,
        name=drop.pattern,
        protocol=place.scheme,
        direction=drop.direction,
        formats=formats,
        reads=[here] if drop.direction is Direction.into else [],
        writes=[here] if drop.direction is Direction.out_of else [],
        activity=Activity(
            count=total.count,
            bytes=total.bytes,
            first_seen=_when(total.sketch.first),
            last_seen=_when(total.sketch.last),
            cadence=infer_cadence(total.sketch, measured_cadence),
        ),
        evidence=evidence,
        attributes=attributes,
    )
    edges = [
        Edge(
            source=interface.id,
            target=place.locator(stage.folder),
            relation=f"lifecycle:{name}",
            evidence=[Evidence(source=place.locator(stage.folder), detail=f"{stage.stats.count} files")],
        )
        for name, stage in sorted(drop.stages.items())
    ]
    return interface, edges


def sniff_drop(drop: Drop, read: Callable[[str], Detected | None]) -> list[Detected]:
    """Sniff the sampled files of a drop; identical results are kept once."""
    results: list[Detected] = []
    for path in drop.merged().sample_paths():
        found = read(path)
        if found is not None and found.family != "empty" and found not in results:
            results.append(found)
    return results
