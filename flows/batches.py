"""Scheduled batch exchanges: both sides export at the time given, the exports are compared record
by record by key, and the serving side's is delivered to the consumer's folder.

    batches:
      - name: us-nightly-stock
        entity: ACME-US
        schedule: {cron: "0 2 * * *", timezone: America/New_York, deadline_minutes: 60}
        records: {format: csv, key: [sku]}
        legacy: {folder: /srv/erp-us/exports, pattern: "stock_*.csv"}
        cloud: {folder: /srv/cloud/exports, pattern: "stock-*.csv"}
        deliver: /srv/wms/stock/in

Each due time (cron, in the entity's zone) is one run, claimed once in the store for the fleet. A
side's export is the newest file of its pattern written since the run was due. By the rung:

    legacy          legacy's export delivered; the cloud's not awaited
    shadow … canary both awaited and compared; legacy's delivered (canary: the cloud's at 100 %)
    cloud_primary   both compared; the cloud's delivered
    cloud           the cloud's delivered

When the deadline passes, a side whose export is not there is an error of that side (a failed
call in the evidence); the run is `late` if the serving side's came and was delivered, `failed` if
nothing could be.

Comparing is one pass over each file: legacy's records are indexed by key with a 64-bit hash of
their compared columns (memory: the keys and hashes of one export, about 140 bytes a record),
the cloud's are streamed against the index, and a few differing records of each kind are kept as
samples, re-read from legacy in a second pass and compared field by field. Numbers compare as
written (an export is data at rest: 10.50 and 10.5 are not the same bytes, and that is shown).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from cutover.compare import Comparator, Difference, Rules
from cutover.decide import Mode, Rule, Side
from cutover.gates import Counters
from cutover.runtime import Cutover
from cutover.store import Store, minute, now_iso
from flows.records import open_records
from specs.flows import Batch, Export, Records

log = logging.getLogger("banyan.flows")
SAMPLES = 20  # differing records kept to show, per run
MAKING_SECONDS = 900.0  # a run taken by a runner that died is taken over after this long
FETCH_SECONDS = 30.0  # how often an export endpoint that is not ready is asked again
FETCH_TIMEOUT = 300.0  # a large export takes a while to stream


@dataclass
class Compared:
    records: int = 0  # legacy's
    mismatches: int = 0  # keys on both sides whose compared columns differ
    only_legacy: int = 0
    only_cloud: int = 0
    samples: list[tuple[str, list[Difference]]] = field(default_factory=list)  # key, its differences


def _columns(header: list[str], names: list[str], path: Path) -> list[int | None]:
    return [header.index(name) if name in header else None for name in names]


def _pick(row: list[str], places: list[int | None]) -> tuple[str | None, ...]:
    return tuple(row[i] if i is not None and i < len(row) else None for i in places)


def _getter(places: list[int | None]) -> Callable[[list[str]], Any]:
    """Reads `places` of a record: itemgetter where every column is there (the common case, and
    fast), else one that fills what is missing with None. Both sides of a comparison read the same
    number of places, so their values compare alike."""
    if places and all(place is not None for place in places):
        fast = itemgetter(*places)

        def get(row: list[str]) -> Any:
            try:
                return fast(row)
            except IndexError:  # a short record
                return _pick(row, places)

        return get
    return lambda row: _pick(row, places)


def compare_exports(legacy: Path, cloud: Path, records: Records, ignore: list[str]) -> Compared:
    """Legacy's export against the cloud's, record by record by key, in one pass over each."""
    result, key = Compared(), records.key
    header, rows, handle = open_records(legacy, records)
    missing = [column for column in key if column not in header]
    if missing:
        handle.close()
        raise ValueError(f"{legacy.name} has no column {', '.join(missing)} to match records by")
    compared = [column for column in header if column not in set(key) | set(ignore)]
    key_at, compared_at = _columns(header, key, legacy), _columns(header, compared, legacy)
    key_of, values_of = _getter(key_at), _getter(compared_at)
    index: dict[Any, int] = {}
    with handle:
        for row in rows:
            index[key_of(row)] = hash(values_of(row))
            result.records += 1
    cloud_header, cloud_rows, cloud_handle = open_records(cloud, records)
    missing = [column for column in key if column not in cloud_header]
    if missing:
        cloud_handle.close()
        raise ValueError(f"{cloud.name} has no column {', '.join(missing)} to match records by")
    cloud_key_of = _getter(_columns(cloud_header, key, cloud))
    cloud_values_of = _getter(_columns(cloud_header, compared, cloud))
    differing: dict[Any, dict[str, str] | None] = {}  # sampled key → the cloud's record
    with cloud_handle:
        for row in cloud_rows:
            found = cloud_key_of(row)
            digest = index.pop(found, None)
            if digest is None:
                result.only_cloud += 1
                if len(result.samples) + len(differing) < SAMPLES:
                    record = dict(zip(cloud_header, row, strict=False))
                    result.samples.append((_said(found), Comparator().compare({}, {"record": record})))
            elif digest != hash(cloud_values_of(row)):
                result.mismatches += 1
                if len(differing) < SAMPLES:
                    differing[found] = dict(zip(cloud_header, row, strict=False))
    result.only_legacy = len(index)
    for found in list(index)[: max(SAMPLES - len(differing), 0)]:
        differing[found] = None
    comparator = Comparator(Rules(ignore=[f"/record/{column}" for column in ignore]))
    header, rows, handle = open_records(legacy, records)  # the sampled records' legacy side, field by field
    with handle:
        for row in rows:
            if not differing:
                break
            found = key_of(row)
            if found in differing:
                cloud_record = differing.pop(found)
                cloud_side = {"record": cloud_record} if cloud_record is not None else {}
                legacy_side = {"record": dict(zip(header, row, strict=False))}
                result.samples.append((_said(found), comparator.compare(legacy_side, cloud_side)))
    return result


def _said(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _export(folder: str, pattern: str, since: float) -> Path | None:
    """The newest file of the pattern written since the run was due; None when there is none yet."""
    try:
        entries = [entry for entry in os.scandir(folder) if fnmatch(entry.name, pattern) and entry.is_file()]
    except OSError:
        return None
    fresh = [(entry.stat().st_mtime, entry.name) for entry in entries if entry.stat().st_mtime >= since]
    return Path(folder) / max(fresh)[1] if fresh else None


def serving(rule: Rule) -> Side:
    """Whose export the consumer gets on `rule`."""
    if rule.mode in (Mode.cloud_primary, Mode.cloud) or (rule.mode is Mode.canary and rule.percent >= 100):
        return Side.cloud
    return Side.legacy


def awaited(rule: Rule, has_cloud: bool) -> list[Side]:
    if rule.mode is Mode.legacy or not has_cloud:
        return [Side.legacy]
    if rule.mode is Mode.cloud:
        return [Side.cloud]
    return [Side.legacy, Side.cloud]


class BatchRunner:
    """Runs the scheduled batches of a routes folder; of several runners on one store, one makes each run."""

    def __init__(self, batches: list[Batch], cutover: Cutover) -> None:
        self.batches = batches
        self.cutover = cutover
        self.store: Store = cutover.store
        self.fetched: dict[tuple[str, str], float] = {}  # (batch, side) → when its endpoint was last asked

    def due(self, batch: Batch, now: datetime | None = None) -> datetime:
        """The last time the batch was due, at or before `now`, in its entity's zone."""
        zone = ZoneInfo(batch.schedule.timezone)
        moment = (now or datetime.now(zone)).astimezone(zone)
        return croniter(batch.schedule.cron, moment + timedelta(seconds=1)).get_prev(datetime)  # type: ignore[no-any-return]

    def pass_once(self, batch: Batch, now: datetime | None = None) -> list[tuple[str, Side, bool]]:
        """Make the batch's current run if its exports are there (or its deadline passed); returns
        the calls to count as evidence (rung, side, failed): an export late is a failed call."""
        zone = ZoneInfo(batch.schedule.timezone)
        moment = (now or datetime.now(zone)).astimezone(zone)
        due = self.due(batch, moment)
        if not self._claim(batch, due):
            return []
        try:
            return self._make(batch, due, moment)
        finally:  # waiting for its exports (or stopped by an error): another pass, or runner, makes it
            self._release(batch, due)

    def _make(self, batch: Batch, due: datetime, moment: datetime) -> list[tuple[str, Side, bool]]:
        info = self.cutover.engine.routes.get(batch.name)
        rule = self.cutover.rule(batch.name, batch.entity, info.default if info else Mode.legacy)
        sides = awaited(rule, batch.cloud is not None)
        serve = serving(rule) if batch.cloud is not None else Side.legacy
        ends = {Side.legacy: batch.legacy, Side.cloud: batch.cloud}
        exports = {
            side: self._fetched(batch, side, end, due) if end.url else _export(end.folder, end.pattern, due.timestamp())
            for side in sides
            if (end := ends[side])
        }
        late = moment >= due + timedelta(minutes=batch.schedule.deadline_minutes)
        if any(found is None for found in exports.values()) and not late:
            return []  # waiting for the exports
        calls = [(rule.rung, side, found is None) for side, found in exports.items()]
        missing = [side.value for side, found in exports.items() if found is None]
        compared = Compared()
        legacy, cloud = exports.get(Side.legacy), exports.get(Side.cloud)
        unread = ""
        if legacy is not None and cloud is not None:
            try:
                compared = compare_exports(legacy, cloud, batch.records, batch.ignore)
            except (ValueError, OSError) as exc:  # an export not in its declared format: delivered as ever, said
                unread = f"not compared: {exc}"
            else:
                self._evidence(batch, rule, compared)
        delivered = None
        if exports.get(serve) is not None:
            delivered = self._deliver(exports[serve], Path(batch.deliver), due)  # type: ignore[arg-type]
        state = "delivered" if not missing else ("late" if delivered else "failed")
        reason = "" if not missing else f"{' and '.join(missing)}'s export was not there by the deadline"
        reason = "; ".join(part for part in (reason, unread) if part)
        self._finish(batch, due, state, rule, serve, exports, delivered, compared, reason)
        if reason:
            log.warning("batch %s due %s: %s", batch.name, due.isoformat(), reason)
        return calls

    def _fetched(self, batch: Batch, side: Side, end: Export, due: datetime) -> Path | None:
        """A side's export from its endpoint, fetched once whole into its folder; None while the
        endpoint says it is not ready (asked again every FETCH_SECONDS)."""
        folder = Path(end.folder)
        target = folder / f"{batch.name}-{side.value}-{due:%Y%m%dT%H%M}.export"
        if target.exists():
            return target
        if time.monotonic() - self.fetched.get((batch.name, side.value), -FETCH_SECONDS) < FETCH_SECONDS:
            return None
        self.fetched[(batch.name, side.value)] = time.monotonic()
        url = (end.url or "").replace("{due}", urllib.parse.quote(due.isoformat())).replace("{entity}", batch.entity)
        headers = {"Accept": "text/csv, application/xml, application/octet-stream;q=0.5, */*;q=0.1"}
        if end.token_env and (token := os.environ.get(end.token_env)):
            headers["Authorization"] = f"Bearer {token}"
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".banyan-{secrets.token_hex(4)}.tmp"
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as reply, temporary.open("xb") as writer:
                if reply.status == 204:
                    return None
                while chunk := reply.read(1 << 20):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temporary, target)
            return target
        except urllib.error.HTTPError as exc:
            if exc.code not in (404, 425, 429, 503):
                log.warning("batch %s: %s's export endpoint answered %s", batch.name, side.value, exc.code)
            return None
        except (OSError, http.client.HTTPException) as exc:
            log.warning("batch %s: %s's export endpoint: %s", batch.name, side.value, exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

    def _evidence(self, batch: Batch, rule: Rule, compared: Compared) -> None:
        """A run's comparison as evidence: a comparison per record, a mismatch per record that
        differs or is on one side only, and the sampled records' fields in the mismatch tables."""
        differing = compared.mismatches + compared.only_legacy + compared.only_cloud
        counters = Counters(comparisons=compared.records + compared.only_cloud, mismatches=differing)
        counts: dict[tuple[str, str], int] = {}
        samples = []
        for _, differences in compared.samples:
            for difference in differences:
                place = (difference.path, difference.kind.value)
                counts[place] = counts.get(place, 0) + 1
                samples.append((difference.path, difference.kind.value, difference.legacy, difference.cloud))
        with self.store.transaction() as cursor:
            self.store.add_evidence_in(cursor, batch.name, batch.entity, rule.rung, minute(), counters)
            if counts:
                self.store.add_differences_in(cursor, batch.name, batch.entity, minute(), counts, samples[:SAMPLES])

    def _claim(self, batch: Batch, due: datetime) -> bool:
        """The run of `due` is this runner's to make: created now, or still waiting."""
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "INSERT INTO batch_runs (batch, due, state, created, updated_at) VALUES (?, ?, 'waiting', ?, ?) "
                "ON CONFLICT (batch, due) DO NOTHING",
                (batch.name, due.isoformat(), time.time(), now_iso()),
            )
            # a run still waiting when the next comes due never got its exports: say so, and stop waiting
            self.store.execute(
                cursor,
                "UPDATE batch_runs SET state = 'missed', reason = 'the next run came due before its exports did', "
                "updated_at = ? WHERE batch = ? AND due < ? AND state = 'waiting'",
                (now_iso(), batch.name, due.isoformat()),
            )
            stale = datetime.fromtimestamp(time.time() - MAKING_SECONDS, UTC).isoformat(timespec="milliseconds")
            taken = self.store.execute(  # of two runners, one makes the run; one that died holds it a while
                cursor,
                "UPDATE batch_runs SET state = 'making', updated_at = ? WHERE batch = ? AND due = ? AND "
                "(state = 'waiting' OR (state = 'making' AND updated_at < ?))",
                (now_iso(), batch.name, due.isoformat(), stale),
            ).rowcount
        return bool(taken == 1)

    def _release(self, batch: Batch, due: datetime) -> None:
        """A run this runner took and did not finish waits again."""
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "UPDATE batch_runs SET state = 'waiting', updated_at = ? WHERE batch = ? AND due = ? "
                "AND state = 'making'",
                (now_iso(), batch.name, due.isoformat()),
            )

    def _deliver(self, export: Path, folder: Path, due: datetime) -> str:
        """The serving side's export into the consumer's folder, whole, once: under a temporary name,
        then linked to `<due>_<name>` (never over another file)."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{due:%Y%m%dT%H%M}_{export.name}"
        temporary = folder / f".banyan-{secrets.token_hex(4)}.tmp"
        with export.open("rb") as reader, temporary.open("xb") as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        try:
            os.link(temporary, folder / name)
        except FileExistsError:  # delivered before the runner stopped: once is enough
            pass
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        return name

    def _finish(
        self,
        batch: Batch,
        due: datetime,
        state: str,
        rule: Rule,
        serve: Side,
        exports: dict[Side, Path | None],
        delivered: str | None,
        compared: Compared,
        reason: str,
    ) -> None:
        with self.store.transaction() as cursor:
            self.store.execute(
                cursor,
                "UPDATE batch_runs SET state = ?, rung = ?, serving = ?, legacy_file = ?, cloud_file = ?, "
                "delivered = ?, records = ?, mismatches = ?, only_legacy = ?, only_cloud = ?, reason = ?, "
                "updated_at = ? WHERE batch = ? AND due = ? AND state = 'making'",
                (
                    state,
                    rule.rung,
                    serve.value,
                    _name(exports.get(Side.legacy)),
                    _name(exports.get(Side.cloud)),
                    delivered,
                    compared.records,
                    compared.mismatches,
                    compared.only_legacy,
                    compared.only_cloud,
                    reason,
                    now_iso(),
                    batch.name,
                    due.isoformat(),
                ),
            )

    def runs(self, batch: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return runs(self.store, batch, limit)


def _name(path: Path | None) -> str | None:
    return path.name if path is not None else None


def runs(store: Store, batch: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs, of one batch or of all."""
    where, values = ("WHERE batch = ?", (batch,)) if batch else ("", ())
    with store.reading() as cursor:
        rows = store.execute(
            cursor,
            "SELECT batch, due, state, rung, serving, legacy_file, cloud_file, delivered, records, mismatches, "
            f"only_legacy, only_cloud, reason FROM batch_runs {where} ORDER BY due DESC LIMIT {int(limit)}",
            values,
        ).fetchall()
    columns = (
        "batch",
        "due",
        "state",
        "rung",
        "serving",
        "legacy_file",
        "cloud_file",
        "delivered",
        "records",
        "mismatches",
        "only_legacy",
        "only_cloud",
        "reason",
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]
