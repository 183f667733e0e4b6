"""A drop folder as an event source: each file that lands becomes one CloudEvent, without touching the
legacy system that writes it.

A file counts once it has settled (unchanged for `settle` seconds) and is not a temporary name
(`.tmp`, `.part`, `~`, a leading dot: writers that rename when done are never read half-written).
Its event id is the source, the file's name and its content's digest, so the same file seen again
is the same event, and a file of the same name with new content is a new one. What was published
is kept in the store (restart-safe, at least once): a crash before the store has it publishes the
file again with the same id, which JetStream or the consumer drops.

The event's data says what landed: name, size, modification time, SHA-256, and the content —
parsed for JSON, as text for CSV, X12, EDIFACT, XML and other text, up to `MAX_CONTENT` bytes
(larger or binary files: the facts only, and the consumer fetches the file).
"""

from __future__ import annotations

import hashlib
import json
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from cutover.store import Store, now_iso
from events.table import Event, SourceError

MAX_CONTENT = 256 * 1024
TEMPORARY = (".tmp", ".part", ".partial", ".filepart", "~")


@dataclass(frozen=True)
class Landed:
    path: Path
    digest: str
    event: Event


class DropSource:
    """One drop folder, its files matching `pattern`, published once each."""

    def __init__(
        self, folder: Path, pattern: str, event_type: str, source: str, entity: str | None = None, settle: float = 2.0
    ) -> None:
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder: name the drop folder the legacy system writes its files into")
        self.folder, self.pattern, self.settle = folder, pattern, settle
        self.event_type, self.source, self.entity = event_type, source, entity
        self.key = f"{source}/{folder.name}"

    def _settled_files(self, now: float) -> list[tuple[float, Path]]:
        """(modified, path) of the files that match and have not changed for `settle` seconds."""
        found = []
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".") or name.endswith(TEMPORARY) or not fnmatch(name, self.pattern):
                continue
            try:
                info = path.stat()
            except OSError:  # gone meanwhile: the legacy system took it
                continue
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= self.settle:
                found.append((info.st_mtime, path))
        return found

    def landed(self, seen: set[tuple[str, str]], limit: int) -> list[Landed]:
        """Settled files not published yet (by name and digest), oldest first."""
        now = time.time()
        found = []
        for modified, path in sorted(self._settled_files(now)):
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if (path.name, digest) in seen:
                continue
            found.append(Landed(path, digest, self._event(path, raw, digest, modified)))
            if len(found) >= limit:
                break
        return found

    def _event(self, path: Path, raw: bytes, digest: str, modified: float) -> Event:
        data: dict[str, Any] = {
            "file": path.name,
            "size": len(raw),
            "sha256": digest,
            "modified": datetime.fromtimestamp(modified, UTC).isoformat(),
        }
        if len(raw) <= MAX_CONTENT:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and path.suffix.lower() == ".json":
                try:
                    data["content"] = json.loads(text)
                except ValueError:
                    data["content"] = text  # not JSON after all: as text
            elif text is not None:
                data["content"] = text
        attributes: dict[str, Any] = {
            "type": self.event_type,
            "source": self.source,
            "id": f"{self.key}/{path.name}/{digest[:16]}",
            "time": datetime.now(UTC),
            "datacontenttype": "application/json",
            "subject": path.name,
        }
        if self.entity:
            attributes["legalentity"] = self.entity
        structured = JSONFormat()
        body = structured.write(CloudEvent(attributes, data))
        return Event(str(attributes["id"]), 0, body, {"Content-Type": structured.get_content_type()})


def seen(store: Store, key: str) -> set[tuple[str, str]]:
    with store.reading() as cursor:
        rows = store.execute(cursor, "SELECT name, digest FROM cutover_drop_seen WHERE source = ?", (key,)).fetchall()
    return {(name, digest) for name, digest in rows}


def mark_seen(store: Store, key: str, landed: list[Landed]) -> None:
    with store.transaction() as cursor:
        for item in landed:
            store.execute(
                cursor,
                "INSERT INTO cutover_drop_seen (source, name, digest, published_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source, name, digest) DO NOTHING",
                (key, item.path.name, item.digest, now_iso()),
            )


def forget_gone(store: Store, key: str, present: set[str], older_than: str) -> None:
    """Forget files that left the folder (the legacy system took them) published before `older_than`:
    the list stays the size of the folder, not of its history."""
    with store.transaction() as cursor:
        rows = store.execute(
            cursor, "SELECT name FROM cutover_drop_seen WHERE source = ? AND published_at < ?", (key, older_than)
        ).fetchall()
        for (name,) in rows:
            if name not in present:
                store.execute(cursor, "DELETE FROM cutover_drop_seen WHERE source = ? AND name = ?", (key, name))
