"""Scan file-drop sources (local folders, SFTP servers) into a catalog."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inventory_scan.catalog import Catalog, Edge, Interface, ScanWarning, Source
from inventory_scan.config import FileSource
from inventory_scan.entities import EntityRule
from inventory_scan.errors import ConfigError, ScanError, SourceError
from inventory_scan.files import local
from inventory_scan.files.arrivals import infer_cadence
from inventory_scan.files.drops import Drop, Place, group_drops, sniff_drop, to_interface
from inventory_scan.files.folders import FolderResult, display
from inventory_scan.formats import PREFIX_BYTES, Detected, sniff

if TYPE_CHECKING:
    from inventory_scan.files import sftp

MAX_WARNINGS = 200


@dataclass
class Progress:
    """Callbacks a terminal (or a test) can follow a scan with."""

    folder: Callable[[FolderResult], None] = lambda result: None
    source_started: Callable[[str], None] = lambda locator: None
    watching: Callable[[float], None] = lambda seconds: None


@dataclass
class _SourceLog:
    locator: str
    kind: str
    warnings: list[ScanWarning] = field(default_factory=list)
    dropped: int = 0
    folders: int = 0
    files: int = 0

    def warn(self, path: str, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(ScanWarning(path=display(path), message=message))
        else:
            self.dropped += 1

    def folder(self, result: FolderResult) -> None:
        self.folders += 1
        self.files += result.files
        for path, message in result.warnings:
            self.warn(path, message)

    def source(self, reason: str | None, drops: int) -> Source:
        return Source(
            locator=self.locator,
            kind=self.kind,
            scanned_at=datetime.now(UTC),
            complete=reason is None,
            reason=reason,
            warnings=self.warnings,
            warnings_dropped=self.dropped,
            stats={"folders": self.folders, "files": self.files, "drops": drops},
        )


def utc_offset(timezone: str | None) -> int:
    """Seconds east of UTC now, for `timezone` or else this machine's clock."""
    if timezone is None:
        return time.localtime().tm_gmtoff
    try:
        offset = datetime.now(ZoneInfo(timezone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {timezone!r}: use an IANA name such as Europe/Amsterdam") from None
    return int(offset.total_seconds()) if offset else 0


def _logged(path: str, found: Detected, log: _SourceLog) -> Detected:
    for message in found.warnings:
        log.warn(path, message)
    return found


def _sniff_local(log: _SourceLog) -> Callable[[str], Detected | None]:
    def read(path: str) -> Detected | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read(PREFIX_BYTES + 1)
        except OSError as exc:
            log.warn(path, f"cannot read a sample to tell its format: {exc.strerror or exc}")
            return None
        return _logged(path, sniff(data[:PREFIX_BYTES], len(data) > PREFIX_BYTES), log)

    return read


def _sniff_sftp(session: sftp.SftpSession, log: _SourceLog) -> Callable[[str], Detected | None]:
    def read(path: str) -> Detected | None:
        try:
            data, truncated = session.read_prefix(path, PREFIX_BYTES)
        except OSError as exc:
            log.warn(path, f"cannot read a sample to tell its format: {exc}")
            return None
        return _logged(path, sniff(data, truncated), log)

    return read


def _drop_warnings(drops: list[Drop], log: _SourceLog) -> None:
    for drop in drops:
        merged = drop.merged()
        if merged.zero_bytes:
            log.warn(f"{drop.folder}/{drop.pattern}", f"{merged.zero_bytes} zero-byte files")
        if merged.undecodable_name:
            log.warn(merged.undecodable_name, "file name is not valid UTF-8")


def _collect(
    folders: Iterator[FolderResult], log: _SourceLog, progress: Progress, into: list[FolderResult]
) -> list[FolderResult]:
    """Drain a walk into `into`, so what was read before a failure is kept."""
    for result in folders:
        log.folder(result)
        progress.folder(result)
        into.append(result)
    return into


@dataclass
class FileScan:
    """The settings one scan applies to every file source."""

    rules: list[EntityRule] = field(default_factory=list)
    timezone: str | None = None
    jobs: int = 0
    watch_seconds: float = 0
    progress: Progress = field(default_factory=Progress)

    def run(self, sources: list[FileSource]) -> tuple[Catalog, list[str]]:
        """Scan every source; errors that stopped a source are returned, its catalog entry marked incomplete."""
        offset = utc_offset(self.timezone)
        catalog = Catalog()
        errors: list[str] = []
        watched: dict[str, list[tuple[Interface, Drop]]] = {}
        for source in sources:
            if source.url is not None:
                interfaces, edges, record = self._sftp(source, offset)
            else:
                interfaces, edges, record, drops = self._local(source, offset)
                watched[record.locator] = list(zip(interfaces, drops, strict=True))
            if record.reason:
                errors.append(f"{record.locator}: {record.reason}")
            catalog = catalog.merge(Catalog(interfaces=interfaces, edges=edges, sources=[record]))
        if self.watch_seconds > 0 and watched:
            catalog = self._watch(catalog, watched, offset)
        return catalog, errors

    def _local(self, source: FileSource, offset: int) -> tuple[list[Interface], list[Edge], Source, list[Drop]]:
        assert source.path is not None
        root = os.path.abspath(source.path.expanduser())
        place = Place("file", system=source.system or "local")
        log = _SourceLog(place.locator(root), "files")
        self.progress.source_started(log.locator)
        if not os.path.isdir(root):
            log.warn(root, "not a folder")
            return [], [], log.source(f"{root} is not a folder (or cannot be reached)", 0), []
        options = local.WalkOptions(offset, source.follow_symlinks, os.path.realpath(root))
        jobs = self.jobs or (os.cpu_count() or 1)
        folders = _collect(local.walk(root, options, jobs), log, self.progress, [])
        drops = group_drops(folders)
        _drop_warnings(drops, log)
        read = _sniff_local(log)
        built = [to_interface(drop, place, self.rules, sniff_drop(drop, read)) for drop in drops]
        interfaces = [interface for interface, _ in built]
        edges = [edge for _, drop_edges in built for edge in drop_edges]
        return interfaces, edges, log.source(None, len(drops)), drops

    def _sftp(self, source: FileSource, offset: int) -> tuple[list[Interface], list[Edge], Source]:
        assert source.url is not None
        from inventory_scan.files import sftp  # paramiko loads only when an SFTP source is scanned

        target = sftp.SftpTarget.parse(source.url)
        place = Place("sftp", host=target.host, port=target.port, system=source.system or target.host)
        log = _SourceLog(target.locator, "sftp")
        self.progress.source_started(log.locator)
        auth = sftp.SftpAuth(
            known_hosts=source.known_hosts or sftp.SftpAuth.known_hosts,
            accept_unknown_host=source.accept_unknown_host,
            password_env=source.password_env,
            key_file=source.key_file,
            key_passphrase_env=source.key_passphrase_env,
            allow_agent=source.allow_agent,
        )
        folders: list[FolderResult] = []
        reason: str | None = None
        try:
            with sftp.SftpSession(target, auth) as session:
                try:
                    _collect(session.walk(offset), log, self.progress, folders)
                except SourceError as exc:
                    reason = f"{exc}; the drops found before it are kept, the rest of the server was not read"
                drops = group_drops(folders)
                read = _sniff_sftp(session, log)
                detected = [sniff_drop(drop, read) if reason is None else [] for drop in drops]
        except ScanError as exc:
            return [], [], log.source(str(exc), 0)
        _drop_warnings(drops, log)
        built = [to_interface(drop, place, self.rules, found) for drop, found in zip(drops, detected, strict=True)]
        interfaces = [interface for interface, _ in built]
        edges = [edge for _, drop_edges in built for edge in drop_edges]
        return interfaces, edges, log.source(reason, len(drops))

    def _watch(self, catalog: Catalog, watched: dict[str, list[tuple[Interface, Drop]]], offset: int) -> Catalog:
        from inventory_scan.files.watch import observation, watch

        folders = {drop.folder for pairs in watched.values() for _, drop in pairs if drop.primary is not None}
        self.progress.watching(self.watch_seconds)
        started, arrivals = watch(folders, self.watch_seconds, offset)
        updated: dict[str, Interface] = {}
        for pairs in watched.values():
            for interface, drop in pairs:
                seen = arrivals.get((drop.folder, drop.pattern))
                activity = interface.activity.model_copy(
                    update={"observed": observation(started, self.watch_seconds, seen)}
                )
                if seen is not None and seen.sketch.count >= 3:
                    activity.cadence = infer_cadence(seen.sketch, measured=True)
                updated[interface.id] = interface.model_copy(update={"activity": activity})
        interfaces = [updated.get(interface.id, interface) for interface in catalog.interfaces]
        return catalog.model_copy(update={"interfaces": interfaces})
