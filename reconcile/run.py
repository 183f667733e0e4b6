"""A reconciliation run: both sides' records streamed, matched by key, compared, and kept.

    read each side ─► canonical record (its map, currency) ─► key (normalised) + digest
                  └─► spilled to a scratch SQLite file: key → digest, record
    join by key ──► only legacy · only cloud · digests differ ─► the comparator decides (tolerances)
                  └─► counts, differences by field path, samples (masked) ─► the store

Memory holds one fetch of each side and the comparator's pair; the sides themselves are on disk in
the scratch file (deleted after the run), indexed by key, so 5 M records take what 1 M take. A
digest covers the record without its ignored paths; only pairs whose digests differ are compared
field by field, with the same rules as the live traffic (ignore, tolerances, normalisers, masks).

Bad input is a line in the run's report, never a traceback: a record without a key, a key seen
twice on one side (the first counts), keys that differ only by case or spaces (normalised by the
key rules, or reported as different keys), a page that repeats. A source that stops mid-stream
marks the run failed, saying where; it is never reported as a clean result.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.compare import MASK, Comparator
from cutover.store import Store
from legacy_adapters.mapping import MappingError, pointer_get
from reconcile.sources import Reader, SourceFailed
from reconcile.store import Runs
from specs.reconciliations import Reconciliation

BATCH = 5000
KEPT_ITEMS = 100_000  # keys kept per run for show, export and repair; counts are always whole
SIDES = ("legacy", "cloud")


@dataclass
class Tally:
    read: dict[str, int] = field(default_factory=lambda: {side: 0 for side in SIDES})
    matched: int = 0
    differing: int = 0
    only: dict[str, int] = field(default_factory=lambda: {side: 0 for side in SIDES})
    duplicates: dict[str, int] = field(default_factory=lambda: {side: 0 for side in SIDES})
    no_key: dict[str, int] = field(default_factory=lambda: {side: 0 for side in SIDES})
    paths: dict[tuple[str, str], int] = field(default_factory=dict)  # (path, kind) → records
    warnings: list[str] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return self.matched + self.differing + self.only["legacy"] + self.only["cloud"]

    @property
    def drift(self) -> float:
        drifted = self.differing + self.only["legacy"] + self.only["cloud"]
        return drifted / self.compared if self.compared else 0.0

    def as_dict(self) -> dict[str, Any]:
        paths = [{"path": path, "kind": kind, "records": n} for (path, kind), n in sorted(self.paths.items())]
        return {"read": self.read, "matched": self.matched, "differing": self.differing, "only": self.only,
                "duplicates": self.duplicates, "no_key": self.no_key, "drift_rate": round(self.drift, 6),
                "paths": paths}  # fmt: skip


Progress = Callable[[str, int], None]  # side, records read so far


class Reconciler:
    """Runs one reconciliation for one legal entity."""

    def __init__(self, spec: Reconciliation, store: Store, scratch: Path | None = None) -> None:
        self.spec = spec
        self.runs = Runs(store)
        self.scratch = scratch
        self.comparator = Comparator(spec.compare)
        self.maps = {side: source.map.compile() if source.map else None
                     for side, source in (("legacy", spec.legacy), ("cloud", spec.cloud))}  # fmt: skip

    def run(self, entity: str, since: str | None = None, progress: Progress | None = None) -> tuple[int, Tally]:
        """The run's id and what it found; the run is in the store, failed with its reason if a
        source stopped."""
        run_id = self.runs.start(self.spec.name, entity, since)
        tally = Tally()
        with tempfile.TemporaryDirectory(dir=self.scratch, prefix="banyan-reconcile-") as folder:
            scratch = sqlite3.connect(Path(folder) / "sides.db")
            try:
                scratch.executescript(
                    "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;"
                    "CREATE TABLE legacy (key TEXT PRIMARY KEY, digest BLOB, record TEXT, seen INTEGER DEFAULT 1);"
                    "CREATE TABLE cloud (key TEXT PRIMARY KEY, digest BLOB, record TEXT, seen INTEGER DEFAULT 1);"
                )
                for side in SIDES:
                    source = self.spec.legacy if side == "legacy" else self.spec.cloud
                    reader = Reader(source, entity, since)
                    try:
                        self._load(scratch, side, reader, tally, progress)
                    except SourceFailed as exc:
                        tally.warnings += [f"{self.spec.label(side)}: {w}" for w in reader.warnings]
                        reason = f"{self.spec.label(side)} ({source.kind}) stopped: {exc}"
                        self.runs.finish(run_id, "failed", tally.as_dict(), tally.warnings, reason)
                        return run_id, tally
                    tally.warnings += [f"{self.spec.label(side)}: {w}" for w in reader.warnings]
                items = self._match(scratch, tally)
                self.runs.items(run_id, items)
            finally:
                scratch.close()
        for side in SIDES:
            if tally.duplicates[side]:
                tally.warnings.append(f"{self.spec.label(side)}: {tally.duplicates[side]:,} keys seen more than once "
                                      "(the first record of each counts)")  # fmt: skip
            if tally.no_key[side]:
                tally.warnings.append(f"{self.spec.label(side)}: {tally.no_key[side]:,} records without a key "
                                      f"({', '.join(self.spec.key)}): not matched")  # fmt: skip
        self.runs.finish(run_id, "done", tally.as_dict(), tally.warnings, "")
        return run_id, tally

    # -- reading ----------------------------------------------------------------------------------
    def _load(self, scratch: sqlite3.Connection, side: str, records: Iterable[dict[str, Any]], tally: Tally,
              progress: Progress | None) -> None:  # fmt: skip
        batch: list[tuple[str, bytes, str]] = []
        statement = (f"INSERT INTO {side} (key, digest, record) VALUES (?, ?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET seen = seen + 1")  # fmt: skip
        for record in records:
            tally.read[side] += 1
            made = self._canonical(side, record, tally)
            if made is not None:
                batch.append(made)
            if len(batch) >= BATCH:
                scratch.executemany(statement, batch)
                batch = []
                if progress is not None:
                    progress(side, tally.read[side])
        if batch:
            scratch.executemany(statement, batch)
        tally.duplicates[side] = scratch.execute(f"SELECT COALESCE(SUM(seen - 1), 0) FROM {side}").fetchone()[0]
        if progress is not None:
            progress(side, tally.read[side])

    def _canonical(self, side: str, record: dict[str, Any], tally: Tally) -> tuple[str, bytes, str] | None:
        mapped = self.maps[side]
        try:
            canonical = mapped(record) if mapped is not None else record
        except MappingError as exc:
            tally.no_key[side] += 1
            if tally.no_key[side] <= 5:
                tally.warnings.append(f"{self.spec.label(side)}: record {tally.read[side]:,} cannot be mapped: {exc}")
            return None
        if self.spec.currency is not None:
            canonical = self._converted(canonical, side, tally)
        key = self._key(canonical)
        if key is None:
            tally.no_key[side] += 1
            return None
        compared = _without(canonical, self.spec.compare.ignore)
        digest = hashlib.blake2b(json.dumps(compared, sort_keys=True, default=str).encode(), digest_size=16).digest()
        return key, digest, json.dumps(canonical, sort_keys=True, default=str)

    def _key(self, record: dict[str, Any]) -> str | None:
        parts = []
        for name in self.spec.key:
            value = record.get(name) if isinstance(record, dict) else None
            if value is None:
                return None
            text = str(value)
            if self.spec.keys.trim:
                text = text.strip()
            if self.spec.keys.case == "upper":
                text = text.upper()
            elif self.spec.keys.case == "lower":
                text = text.lower()
            if not text:
                return None
            parts.append(text)
        return "\x1f".join(parts)

    def _converted(self, record: dict[str, Any], side: str, tally: Tally) -> dict[str, Any]:
        rule = self.spec.currency
        assert rule is not None
        try:
            amount, currency = pointer_get(record, rule.amount), str(pointer_get(record, rule.currency))
        except MappingError:
            return record
        rate = 1.0 if currency == rule.to else rule.rates.get(currency)
        if rate is None:
            if f"no rate for {currency}" not in " ".join(tally.warnings):
                tally.warnings.append(f"{self.spec.label(side)}: no rate for {currency}: its amounts compared as sent")
            return record
        converted = json.loads(json.dumps(record))
        _put(converted, rule.amount, round(float(amount) * rate, 6))
        _put(converted, rule.currency, rule.to)
        return dict(converted)

    # -- matching ---------------------------------------------------------------------------------
    def _match(self, scratch: sqlite3.Connection, tally: Tally) -> Iterator[tuple[str, str, Any]]:
        both = scratch.execute("SELECT COUNT(*) FROM legacy JOIN cloud USING (key)").fetchone()[0]
        items: list[tuple[str, str, Any]] = []
        for side, other in (("legacy", "cloud"), ("cloud", "legacy")):
            rows = scratch.execute(
                f"SELECT s.key, s.record FROM {side} s LEFT JOIN {other} o USING (key) WHERE o.key IS NULL"
            )
            for key, record in rows:
                tally.only[side] += 1
                if len(items) < KEPT_ITEMS:
                    items.append((f"only_{side}", key, {"record": _masked(json.loads(record), self.spec.compare.mask)}))
        rows = scratch.execute(
            "SELECT l.key, l.record, c.record FROM legacy l JOIN cloud c USING (key) WHERE l.digest <> c.digest"
        )
        for key, legacy, cloud in rows:
            differences = self.comparator.compare(json.loads(legacy), json.loads(cloud))
            if not differences:
                continue
            tally.differing += 1
            for difference in differences:
                place = (difference.path, difference.kind.value)
                tally.paths[place] = tally.paths.get(place, 0) + 1
            if len(items) < KEPT_ITEMS:
                said = [{"path": d.path, "kind": d.kind.value, "legacy": d.legacy, "cloud": d.cloud}
                        for d in differences]  # fmt: skip
                record = _masked(json.loads(legacy), self.spec.compare.mask)
                items.append(("differs", key, {"differences": said, "record": record}))
        tally.matched = both - tally.differing
        return iter(items)


def _walk_paths(node: Any, parts: list[str], action: Callable[[dict[str, Any], str], None]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if head == "*" or head.isdigit():
            chosen = node if head == "*" else node[int(head) : int(head) + 1]
            for item in chosen:
                _walk_paths(item, rest, action)
        return
    if not isinstance(node, dict):
        return
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        if rest:
            _walk_paths(node[key], rest, action)
        else:
            action(node, key)


def _without(record: Any, paths: list[str]) -> Any:
    """The record without its ignored paths (a copy when there are any)."""
    if not paths:
        return record
    copy = json.loads(json.dumps(record, default=str))
    for path in paths:
        _walk_paths(copy, path.strip("/").split("/"), lambda node, key: node.pop(key, None))
    return copy


def _masked(record: Any, paths: list[str]) -> Any:
    if not paths:
        return record
    for path in paths:
        _walk_paths(record, path.strip("/").split("/"), lambda node, key: node.__setitem__(key, MASK))
    return record


def _put(record: dict[str, Any], pointer: str, value: Any) -> None:
    parts = pointer.strip("/").split("/")
    node: Any = record
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[parts[-1]] = value
