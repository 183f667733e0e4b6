"""Where a reconciliation's records come from: an ODBC query, a paged JSON endpoint, an export file.

Each source yields its records one at a time as dicts, so a run holds one page (or one fetch of
rows) at a time, never a side. What a source noticed without failing (a page that repeats the one
before: the cursor drifted) is a warning with its place; a source that stops mid-stream raises
SourceFailed saying after how many records, so the run is marked failed there, never clean.
Connection strings and tokens come from the environment and never reach a message.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flows.records import open_records
from legacy_adapters.mapping import MappingError, pointer_get
from legacy_adapters.odbc import plain
from specs.reconciliations import FileList, HttpList, OdbcList, Source

MAX_PAGES = 1_000_000
PAGE_BYTES = 64 << 20  # a page larger than this is refused: a 10 MB record fits, a runaway body does not


class SourceFailed(Exception):
    """The source stopped; the message says where (never a secret)."""


class Reader:
    """One side's records, and what was noticed while reading them."""

    def __init__(self, source: Source, entity: str, since: str | None) -> None:
        self.source, self.entity, self.since = source, entity, since
        self.read = 0
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.source.odbc is not None:
            found = self._odbc(self.source.odbc)
        elif self.source.http is not None:
            found = self._http(self.source.http)
        else:
            assert self.source.file is not None
            found = self._file(self.source.file)
        for record in found:
            self.read += 1
            yield record

    # -- ODBC -----------------------------------------------------------------------------------
    def _odbc(self, spec: OdbcList) -> Iterator[dict[str, Any]]:
        import pyodbc

        dsn = os.environ.get(spec.connection_env)
        if dsn is None:
            raise SourceFailed(f"the variable {spec.connection_env} (the ODBC connection string) is not set")
        names = re.findall(r"(?<![:\w]):(entity|since)\b", spec.query)
        statement = re.sub(r"(?<![:\w]):(entity|since)\b", "?", spec.query)
        values = [self.entity if name == "entity" else (self.since or "0001-01-01") for name in names]
        try:
            connection = pyodbc.connect(dsn, timeout=30)
        except pyodbc.Error as exc:
            raise SourceFailed(f"cannot connect through {spec.connection_env}: {_odbc_said(exc)}") from None
        try:
            cursor = connection.cursor()
            cursor.execute(statement, values)
            description = cursor.description or []
            columns = [column[0] for column in description]
            # only the columns whose type JSON does not carry as it is are converted, one by one
            converted = [i for i, column in enumerate(description) if column[1] not in (str, int, float, bool)]
            while True:
                rows = cursor.fetchmany(spec.fetch)
                if not rows:
                    break
                for row in rows:
                    record = dict(zip(columns, row, strict=True))
                    for index in converted:
                        name = columns[index]
                        record[name] = plain(record[name])
                    yield record
        except pyodbc.Error as exc:
            raise SourceFailed(f"the query failed after {self.read:,} records: {_odbc_said(exc)}") from None
        finally:
            connection.close()

    # -- HTTP -----------------------------------------------------------------------------------
    def _http(self, spec: HttpList) -> Iterator[dict[str, Any]]:
        paging = spec.paging
        base = spec.url.replace("{entity}", urllib.parse.quote(self.entity))
        base = base.replace("{since}", urllib.parse.quote(self.since or ""))
        number, offset, cursor, url = paging.first, 0, None, base
        previous: str | None = None
        for page in range(MAX_PAGES):
            query: dict[str, Any] = {}
            if paging.style in ("page", "offset", "cursor") and paging.size_param:
                query[paging.size_param] = paging.size
            if paging.style == "page":
                query[paging.param] = number
            elif paging.style == "offset":
                query[paging.param] = offset
            elif paging.style == "cursor" and cursor:
                query[paging.param] = cursor
            target = _with_query(url, query) if query else url
            body = self._get(spec, target, page)
            try:
                items = pointer_get(body, spec.items) if spec.items else body
            except MappingError:
                raise SourceFailed(f"page {page + 1} has no records at {spec.items}") from None
            if not isinstance(items, list):
                raise SourceFailed(f"page {page + 1}: {spec.items or 'the page'} is not a list of records")
            signature = json.dumps(items[:1] + items[-1:], sort_keys=True, default=str)
            if items and signature == previous:  # the rest was never read: no result is better than a false one
                raise SourceFailed(f"page {page + 1} repeats page {page}: the paging drifted after {self.read:,} "
                                   "records")  # fmt: skip
            previous = signature
            for item in items:
                if isinstance(item, dict):
                    yield item
                else:
                    self.warnings.append(f"page {page + 1}: an item that is not an object was skipped")
            if paging.style == "none":
                return
            if paging.style in ("page", "offset"):
                if not items:  # the end: a short page is not (a server may cap the size it was asked for)
                    return
                number, offset = number + 1, offset + len(items)
            elif paging.style == "cursor":
                cursor = _found(body, paging.cursor or "")
                if not cursor:
                    return
            else:
                following = _found(body, paging.next or "")
                if not following:
                    return
                url = urllib.parse.urljoin(url, str(following))
        raise SourceFailed(f"more than {MAX_PAGES:,} pages: stopped")

    def _get(self, spec: HttpList, url: str, page: int) -> Any:
        headers = {"Accept": "application/json"}
        if spec.token_env:
            token = os.environ.get(spec.token_env)
            if token is None:
                raise SourceFailed(f"the variable {spec.token_env} (the token) is not set")
            headers["Authorization"] = f"Bearer {token}"
        shown = url.split("?", 1)[0]
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=spec.timeout_seconds) as reply:
                data = reply.read(PAGE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise SourceFailed(f"page {page + 1} of {shown}: {exc.code} after {self.read:,} records") from None
        except (OSError, ValueError) as exc:
            raise SourceFailed(f"page {page + 1} of {shown}: {exc} after {self.read:,} records") from None
        if len(data) > PAGE_BYTES:
            raise SourceFailed(f"page {page + 1} of {shown} is over {PAGE_BYTES >> 20} MB")
        try:
            return json.loads(data)
        except ValueError:
            raise SourceFailed(f"page {page + 1} of {shown} is not JSON") from None

    # -- files ----------------------------------------------------------------------------------
    def _file(self, spec: FileList) -> Iterator[dict[str, Any]]:
        path = spec.path.replace("{entity}", self.entity)
        try:
            header, rows, handle = open_records(Path(path), spec.records)
        except OSError as exc:
            raise SourceFailed(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            with handle:
                for row in rows:
                    yield dict(zip(header, row, strict=False))
        except (OSError, ValueError) as exc:
            raise SourceFailed(f"{path}: {exc} after {self.read:,} records") from None


def _with_query(url: str, query: dict[str, Any]) -> str:
    parts = urllib.parse.urlsplit(url)
    merged = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + [(k, str(v)) for k, v in query.items()]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(merged)))


def _found(body: Any, pointer: str) -> Any:
    try:
        return pointer_get(body, pointer)
    except MappingError:
        return None


def _odbc_said(exc: Exception) -> str:
    """What the driver said, without the connection string it may echo."""
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    return re.sub(r"(?i)(pwd|password|uid|user)=[^;]*", r"\1=•••", text)[:300]
