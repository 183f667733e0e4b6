"""Legacy as an event source: the rows a trigger writes into an export or outbox table, published as
CloudEvents, without touching the legacy system.

`TableSource` reads the table over ODBC past a high-water mark (a column that only grows: an id,
SQLite's rowid) a batch at a time. Each row becomes one CloudEvent whose id is stable (source, table
and mark), so a consumer can drop a repeat. A batch is published and acknowledged by the broker
before the mark moves on, in the cutover store: a crash in between publishes the batch again (at
least once), and JetStream drops the repeats it still remembers (its message id is the event id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from legacy_adapters.odbc import plain

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")  # table or schema.table


class SourceError(ValueError):
    """The table cannot be read as an event source; the message says why (never the password)."""


@dataclass(frozen=True)
class Event:
    id: str
    mark: int
    body: bytes  # the structured CloudEvent, JSON
    headers: dict[str, str]


class TableSource:
    """One export table of one legacy database, read past a mark."""

    def __init__(
        self,
        connection: str,
        table: str,
        mark_column: str,
        event_type: str,
        source: str,
        subject_column: str | None = None,
        entity: str | None = None,
    ) -> None:
        for name, value in (("table", table), ("mark column", mark_column), ("subject column", subject_column)):
            if value is not None and not IDENTIFIER.match(value):
                raise SourceError(f"the {name} must be a plain SQL name, not {value!r}")
        self.connection, self.table, self.mark_column = connection, table, mark_column
        self.event_type, self.source, self.subject_column, self.entity = event_type, source, subject_column, entity
        self.key = f"{source}/{table}"  # where the mark is kept

    def read(self, after: int, limit: int) -> list[Event]:
        """The next rows past `after`, oldest first, as events."""
        import pyodbc

        mark = self.mark_column
        sql = f"SELECT {mark} AS banyan_mark, {self.table}.* FROM {self.table} WHERE {mark} > ? ORDER BY {mark}"
        try:
            with pyodbc.connect(self.connection, timeout=10, autocommit=True) as connection:
                cursor = connection.cursor()
                cursor.execute(sql, after)
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchmany(limit)
        except pyodbc.Error as exc:
            reason = re.sub(r"(?i)(pwd|password)=[^;]*", r"\1=***", str(exc.args[-1] if exc.args else exc))
            raise SourceError(f"cannot read {self.table}: {reason.split('(SQL')[0][:200]}") from None
        return [self._event(dict(zip(names, map(plain, row), strict=True))) for row in rows]

    def _event(self, row: dict[str, Any]) -> Event:
        mark = int(row.pop("banyan_mark"))
        attributes: dict[str, Any] = {
            "type": self.event_type,
            "source": self.source,
            "id": f"{self.source}/{self.table}/{mark}",
            "time": datetime.now(UTC),
            "datacontenttype": "application/json",
        }
        if self.subject_column and row.get(self.subject_column) is not None:
            attributes["subject"] = str(row[self.subject_column])
        if self.entity:
            attributes["legalentity"] = self.entity  # a CloudEvents extension attribute
        structured = JSONFormat()
        body = structured.write(CloudEvent(attributes, row))
        return Event(str(attributes["id"]), mark, body, {"Content-Type": structured.get_content_type()})
