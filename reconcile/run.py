"""A reconciliation run: both sides' records streamed, matched by key, compared, and kept.

    both sides tables of one kind of database ─► grouped and hashed there (reconcile/pushdown.py):
                  the groups alike matched, only the others read
    read each side ─► canonical record (its map, currency) ─► key (normalised) + digest
                  └─► spilled to a scratch SQLite file: key → digest, record
    join by key ──► only legacy · only cloud · digests differ ─► the comparator decides (tolerances)
                  └─► counts, differences by field path, samples (masked) ─► the store

Memory holds one fetch of each side and the comparator's pair; the sides themselves are on disk in
the scratch file (deleted after the run), indexed by key, so 5 M records take what 1 M take. A
digest (64 bits, `_digest`) covers the record without its ignored paths; one pass over both sides
by key finds the records on one side only and the pairs whose digests differ, and only those pairs
are compared field by field, with the same rules as the live traffic (ignore, tolerances,
normalisers, masks).

Bad input is a line in the run's report, never a traceback: a record without a key, a key seen
twice on one side (the first counts), keys that differ only by case or spaces (normalised by the
key rules, or reported as different keys), a page that repeats. A source that stops mid-stream
marks the run failed, saying where; it is never reported as a clean result.
"""

from __future__ import annotations

import json
import marshal
import multiprocessing
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

from cutover.compare import MASK, Comparator
from cutover.store import Store
from legacy_adapters.mapping import MappingError, pointer_get
from legacy_adapters.odbc import plain
from reconcile.pushdown import Pushdown, renames
from reconcile.sources import Reader, SourceFailed
from reconcile.store import Runs
from specs.reconciliations import Reconciliation, Source
from specs.routes import Route

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
    labels: dict[str, str] = field(default_factory=dict)  # what the sides are called, when not legacy and cloud
    settled: int = 0  # records matched by their hashes in the databases, never read (of matched)

    @property
    def compared(self) -> int:
        return self.matched + self.differing + self.only["legacy"] + self.only["cloud"]

    @property
    def drift(self) -> float:
        drifted = self.differing + self.only["legacy"] + self.only["cloud"]
        return drifted / self.compared if self.compared else 0.0

    def as_dict(self) -> dict[str, Any]:
        paths = [{"path": path, "kind": kind, "records": n} for (path, kind), n in sorted(self.paths.items())]
        labels = self.labels
        return {
            "read": self.read,
            "matched": self.matched,
            "differing": self.differing,
            "only": self.only,
            "duplicates": self.duplicates,
            "no_key": self.no_key,
            "drift_rate": round(self.drift, 6),
            "paths": paths,
            "labels": labels,
            "settled": self.settled,
        }


Progress = Callable[[str, int], None]  # side, records read so far
Found = tuple[str, str, Any, dict[str, Any]]  # kind, key, what is shown (masked), each side's record as read


class Reconciler:
    """Runs one reconciliation for one legal entity."""

    def __init__(
        self,
        spec: Reconciliation,
        store: Store,
        scratch: Path | None = None,
        routes: Sequence[Route] = (),
        base: Path | None = None,
    ) -> None:
        self.spec = spec
        self.routes, self.base = routes, base  # the folder's routes, for a source that reads through one
        self.runs = Runs(store)
        self.scratch = scratch
        self.comparator = Comparator(spec.compare)
        self.plain_key = len(spec.key) == 1 and spec.keys.case == "keep"
        self.first_key, self.trim, self.ignored = spec.key[0], spec.keys.trim, spec.compare.ignore
        self.maps = {
            side: source.map.compile() if source.map else None
            for side, source in (("legacy", spec.legacy), ("cloud", spec.cloud))
        }
        self.sources = {"legacy": spec.legacy, "cloud": spec.cloud}  # a run's: narrowed where the databases settled

    def run(self, entity: str, since: str | None = None, progress: Progress | None = None) -> tuple[int, Tally]:
        """The run's id and what it found; the run is in the store, failed with its reason if a
        source stopped. Each side is read in a process of its own (two sides, two cores), into a
        scratch file of its own; the parent matches them."""
        run_id = self.runs.start(self.spec.name, entity, since)
        tally = Tally(labels={side: self.spec.label(side) for side in SIDES})
        self.sources = {"legacy": self.spec.legacy, "cloud": self.spec.cloud}
        pushdown = Pushdown.of(self.spec)
        if pushdown is not None:
            settled = pushdown.settle(entity, since)
            tally.warnings += settled.warnings
            if settled.sources:
                self.sources, tally.settled = settled.sources, settled.matched
        with tempfile.TemporaryDirectory(dir=self.scratch, prefix="banyan-reconcile-") as folder:
            loaded = self._load_both(Path(folder), entity, since, progress, tally.settled)
            failed = ""
            for side in SIDES:
                result = loaded[side]
                tally.read[side], tally.duplicates[side] = tally.settled + result.read, result.duplicates
                tally.no_key[side] = result.no_key
                tally.warnings += [f"{self.spec.label(side)}: {w}" for w in result.warnings]
                if result.failed and not failed:
                    failed = f"{self.spec.label(side)} ({self.sources[side].kind}) stopped: {result.failed}"
            if failed:
                self.runs.finish(run_id, "failed", tally.as_dict(), tally.warnings, failed)
                return run_id, tally
            scratch = sqlite3.connect(Path(folder) / "legacy.db")
            try:
                scratch.execute("ATTACH DATABASE ? AS other", (str(Path(folder) / "cloud.db"),))
                self.runs.items(run_id, self._match(scratch, tally))
            finally:
                scratch.close()
        for side in SIDES:
            if tally.duplicates[side]:
                tally.warnings.append(
                    f"{self.spec.label(side)}: {tally.duplicates[side]:,} keys seen more than once "
                    "(the first record of each counts)"
                )
            if tally.no_key[side]:
                tally.warnings.append(
                    f"{self.spec.label(side)}: {tally.no_key[side]:,} records without a key "
                    f"({', '.join(self.spec.key)}): not matched"
                )
        self.runs.finish(run_id, "done", tally.as_dict(), tally.warnings, "")
        return run_id, tally

    # -- reading ----------------------------------------------------------------------------------
    def _load_both(
        self, folder: Path, entity: str, since: str | None, progress: Progress | None, settled: int = 0
    ) -> dict[str, Loaded]:
        """Both sides at once, each in a forked process; their counts of records read shown as
        they go (after those the databases `settled`)."""
        context = multiprocessing.get_context("fork")
        counters = {side: context.Value("q", 0) for side in SIDES}
        with ProcessPoolExecutor(
            max_workers=2, mp_context=context, initializer=_counting, initargs=(counters,)
        ) as pool:
            _LOADING["reconciler"] = self  # inherited by the forked processes: nothing of it is pickled
            futures = {side: pool.submit(_load_side, side, folder / f"{side}.db", entity, since) for side in SIDES}
            while not all(future.done() for future in futures.values()):
                wait(list(futures.values()), timeout=0.2)
                if progress is not None:
                    for side in SIDES:
                        progress(side, settled + counters[side].value)
        loaded = {}
        for side, future in futures.items():
            try:
                loaded[side] = future.result()
            except Exception as exc:  # whatever stopped a loading process fails the run, said
                loaded[side] = Loaded(counters[side].value, 0, 0, [], f"{type(exc).__name__}: {exc}")
        return loaded

    def load(self, side: str, path: Path, entity: str, since: str | None) -> Loaded:
        """One side's records into a scratch file of their own: key, digest, the record."""
        source = self.sources[side]
        reader = Reader(source, entity, since, side, self.routes, self.base)
        tally = Tally()
        scratch = sqlite3.connect(path)
        try:
            scratch.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;"
                f"CREATE TABLE {side} (key TEXT PRIMARY KEY, digest INTEGER, record BLOB, seen INTEGER DEFAULT 1) "
                "WITHOUT ROWID;"
            )
            statement = (
                f"INSERT INTO {side} (key, digest, record) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET seen = seen + 1"
            )
            try:
                for batch in self._made(side, source, reader, tally):
                    scratch.executemany(statement, batch)
                    _counted(side, tally.read[side])
            except SourceFailed as exc:
                return Loaded(tally.read[side], 0, tally.no_key[side], reader.warnings + tally.warnings, str(exc))
            _counted(side, tally.read[side])
            scratch.commit()
            duplicates = scratch.execute(f"SELECT COALESCE(SUM(seen - 1), 0) FROM {side}").fetchone()[0]
        finally:
            scratch.close()
        return Loaded(tally.read[side], int(duplicates), tally.no_key[side], reader.warnings + tally.warnings, "")

    def _made(self, side: str, source: Source, reader: Reader, tally: Tally) -> Iterator[list[Made]]:
        """Batches of (key, digest, record) for the scratch file. A table whose map only renames
        columns is made row by row without a dict per step (`_Rows`); any other source record by
        record through the map."""
        mapped = self.maps[side]
        rows = _Rows.of(source, self.spec) if source.odbc is not None else None
        if rows is not None and source.odbc is not None:
            for fetched in reader.odbc_batches(source.odbc):
                reader.read += len(fetched)
                tally.read[side] += len(fetched)
                if rows.fits(reader.columns, reader.types):
                    yield rows.made(fetched, reader.converted, tally, side)
                    continue
                columns, converted = reader.columns, reader.converted
                records = [dict(zip(columns, row, strict=True)) for row in fetched]
                for record in records:
                    for index in converted:
                        record[columns[index]] = plain(record[columns[index]])
                yield [m for record in records if (m := self._canonical(side, record, tally, mapped)) is not None]
            return
        batch: list[Made] = []
        for record in reader:
            tally.read[side] += 1
            made = self._canonical(side, record, tally, mapped)
            if made is not None:
                batch.append(made)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _canonical(
        self, side: str, record: dict[str, Any], tally: Tally, mapped: Callable[[Any], Any] | None
    ) -> Made | None:
        try:
            canonical = mapped(record) if mapped is not None else record
        except MappingError as exc:
            tally.no_key[side] += 1
            if tally.no_key[side] <= 5:
                tally.warnings.append(f"{self.spec.label(side)}: record {tally.read[side]:,} cannot be mapped: {exc}")
            return None
        if self.spec.currency is not None:
            canonical = self._converted(canonical, side, tally)
        if self.plain_key and type(canonical) is dict:  # one field, kept as it is: the common case
            value = canonical.get(self.first_key)
            key = None if value is None else (str(value).strip() if self.trim else str(value)) or None
        else:
            key = self._key(canonical)
        if key is None:
            tally.no_key[side] += 1
            return None
        compared = _without(canonical, self.ignored) if self.ignored else canonical  # a digest without the ignored
        return key, _digest(compared), _encoded(canonical)

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
    def _match(self, scratch: sqlite3.Connection, tally: Tally) -> Iterator[Found]:
        """One pass over both sides by key: the records on one side only, and the pairs whose
        digests differ (the comparator decides those); the rest matched."""
        items: list[Found] = []
        rows = scratch.execute(
            "SELECT l.key, c.key, l.record, c.record FROM legacy l FULL JOIN cloud c ON c.key = l.key "
            "WHERE l.digest IS NOT c.digest"
        )
        for legacy_key, cloud_key, legacy, cloud in rows:
            if legacy_key is None or cloud_key is None:
                side, key, record = (
                    ("cloud", cloud_key, cloud) if legacy_key is None else ("legacy", legacy_key, legacy)
                )
                tally.only[side] += 1
                if len(items) < KEPT_ITEMS:
                    shown = {"record": _masked(_decoded(record), self.spec.compare.mask)}
                    items.append((f"only_{side}", key, shown, {side: _decoded(record)}))
                continue
            pair = {"legacy": _decoded(legacy), "cloud": _decoded(cloud)}
            differences = self.comparator.compare(pair["legacy"], pair["cloud"])
            if not differences:
                continue
            tally.differing += 1
            for difference in differences:
                place = (difference.path, difference.kind.value)
                tally.paths[place] = tally.paths.get(place, 0) + 1
            if len(items) < KEPT_ITEMS:
                said = [
                    {"path": d.path, "kind": d.kind.value, "legacy": d.legacy, "cloud": d.cloud} for d in differences
                ]
                record = _masked(_decoded(legacy), self.spec.compare.mask)
                items.append(("differs", legacy_key, {"differences": said, "record": record}, pair))
        legacy_rows = scratch.execute("SELECT COUNT(*) FROM legacy").fetchone()[0]
        tally.matched = tally.settled + legacy_rows - tally.only["legacy"] - tally.differing
        return iter(items)


@dataclass
class Loaded:
    """What loading one side found (returned from its process)."""

    read: int
    duplicates: int
    no_key: int
    warnings: list[str]
    failed: str  # why the source stopped; empty when it did not


_COUNTERS: dict[str, Any] = {}  # in a loading process: the shared counts of records read, for the progress bar


def _counting(counters: dict[str, Any]) -> None:
    _COUNTERS.update(counters)


def _counted(side: str, read: int) -> None:
    if side in _COUNTERS:
        _COUNTERS[side].value = read


_LOADING: dict[str, Reconciler] = {}


def _load_side(side: str, path: Path, entity: str, since: str | None) -> Loaded:
    return _LOADING["reconciler"].load(side, path, entity, since)


def _encoded(record: Any) -> bytes:
    """A record as bytes for the scratch file: marshal (fast, and these are plain JSON values)."""
    try:
        return b"m" + marshal.dumps(record)
    except ValueError:  # a value marshal does not take
        return b"j" + json.dumps(record, sort_keys=True, default=str, separators=(",", ":")).encode()


def _decoded(data: bytes) -> Any:
    return marshal.loads(data[1:]) if data[:1] == b"m" else json.loads(data[1:])


_WALKED = (dict, list, float)
Made = tuple[str, int, bytes]  # a record for the scratch file: its key, its digest, the record


class _Rows:
    """A table's rows made into (key, digest, record) without a dict per step, when the side's map
    only renames columns, the key is one field and nothing is converted or ignored. The digest is
    the one `_digest` makes of the canonical record (the set of its (field, value) pairs), so the
    other side's records, made the general way, match it; a column the driver returns as a bool
    (marked apart in `_digest`) or a renamed column the query lacks makes the general way needed."""

    def __init__(self, renames: dict[str, str], key: str, trim: bool) -> None:
        self.renames, self.key, self.trim = renames, key, trim
        self.targets = list(renames.values())
        self.positions: list[int] = []
        self.fit: bool | None = None

    @classmethod
    def of(cls, source: Source, spec: Reconciliation) -> _Rows | None:
        renamed = renames(source.map)
        plain_key = len(spec.key) == 1 and spec.keys.case == "keep" and spec.key[0] in renamed.values()
        if not renamed or not plain_key or spec.currency is not None or spec.compare.ignore:
            return None
        return cls(renamed, spec.key[0], spec.keys.trim)

    def fits(self, columns: list[str], types: list[type]) -> bool:
        if self.fit is None:
            self.fit = set(self.renames) <= set(columns) and bool not in types
            if self.fit:
                self.positions = [max(i for i, name in enumerate(columns) if name == origin) for origin in self.renames]
        return self.fit

    def made(self, rows: list[Any], converted: list[int], tally: Tally, side: str) -> list[Made]:
        positions, targets = self.positions, self.targets
        fixed = [n for n, position in enumerate(positions) if position in converted]
        at = targets.index(self.key)
        made: list[Made] = []
        for row in rows:
            values = [row[position] for position in positions]
            for n in fixed:
                values[n] = plain(values[n])
            value = values[at]
            key = None if value is None else (str(value).strip() if self.trim else str(value)) or None
            if key is None:
                tally.no_key[side] += 1
                continue
            record = dict(zip(targets, values, strict=False))  # one value per target, by making
            made.append((key, hash(frozenset(record.items())), b"m" + marshal.dumps(record)))
        return made


def _digest(record: Any) -> int:
    """64 bits that two equal records share, so only pairs whose digests differ go to the comparator.

    A flat record (the common case) is hashed by Python itself, as the set of its (field, value)
    pairs, in whatever order the fields come (no sort): both sides are read by processes forked
    from one parent, so they share its hash seed, and 15.0 hashes as 15 (the comparator agrees)
    while true is marked apart from 1 (the comparator does not). A record
    with nested values is walked into a sorted form and hashed with BLAKE2b. The digest is only ever
    a shortcut to "equal": two records that differ but share one would need a 64-bit collision, and
    two equal records with different digests are found equal by the comparator."""
    if type(record) is dict:
        try:
            if bool not in set(map(type, record.values())):
                return hash(frozenset(record.items()))
            return hash(frozenset([(k, v) if type(v) is not bool else (k, v, bool) for k, v in record.items()]))
        except TypeError:  # a nested object or list: not hashable as it is
            pass
    return int.from_bytes(blake2b(_encoded(_digestible(record)), digest_size=8).digest(), "big", signed=True)


def _digestible(node: Any) -> Any:
    """What a digest is made of, in one walk: fields sorted (two sides' maps need not list them in
    one order) and 15.0 as 15 (a database's 15 and an API's 15.0 make one digest; the comparator
    agrees). A flat record costs one sort and one look at each value."""
    if type(node) is dict:
        return tuple(
            [(key, _digestible(value) if type(value) in _WALKED else value) for key, value in sorted(node.items())]
        )
    if type(node) is list:
        return [_digestible(value) if type(value) in _WALKED else value for value in node]
    if type(node) is float and node.is_integer() and abs(node) < 2**53:
        return int(node)
    return node


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
