"""Where a reconciliation's records come from: an ODBC query, a paged JSON endpoint, an export file.

Each source yields its records one at a time as dicts, so a run holds one page (or one fetch of
rows) at a time, never a side. What a source noticed without failing (a page that repeats the one
before: the cursor drifted) is a warning with its place; a source that stops mid-stream raises
SourceFailed saying after how many records, so the run is marked failed there, never clean.
Connection strings and tokens come from the environment and never reach a message.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from flows.records import open_records
from legacy_adapters import Call
from legacy_adapters.base import Backend, create
from legacy_adapters.errors import BackendError
from legacy_adapters.http import OAuth2
from legacy_adapters.mapping import MappingError, pointer_get
from legacy_adapters.odbc import plain
from specs.reconciliations import FileList, HttpList, OdbcList, Paging, RouteList, SoapList, Source
from specs.routes import Route

MAX_PAGES = 1_000_000
PAGE_BYTES = 64 << 20  # a page larger than this is refused: a 10 MB record fits, a runaway body does not


Fetch = Callable[[int, dict[str, Any], "str | None"], Any]  # page index, what the page asks, a next link → body
Mapped = Callable[[Any], Any] | None


def bound(query: str, entity: str, since: str | None) -> tuple[str, list[str]]:
    """An ODBC source's query with `:entity` and `:since` as parameters, and their values."""
    names = re.findall(r"(?<![:\w]):(entity|since)\b", query)
    values = [entity if name == "entity" else (since or "0001-01-01") for name in names]
    return re.sub(r"(?<![:\w]):(entity|since)\b", "?", query), values


class SourceFailed(Exception):
    """The source stopped; the message says where (never a secret)."""


class Reader:
    """One side's records, and what was noticed while reading them."""

    def __init__(
        self,
        source: Source,
        entity: str,
        since: str | None,
        side: str = "legacy",
        routes: Sequence[Route] = (),
        base: Path | None = None,
    ) -> None:
        self.source, self.entity, self.since, self.side = source, entity, since, side
        self.routes, self.base = {route.name: route for route in routes}, base  # a route source's route, its folder
        self.read = 0
        self.warnings: list[str] = []
        self._token, self._token_until = "", 0.0  # an http source's OAuth2 token, and until when it serves
        self.columns: list[str] = []  # an ODBC source's columns, their Python types, and those converted
        self.types: list[type] = []
        self.converted: list[int] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.source.odbc is not None:
            found = self._odbc(self.source.odbc)
        elif self.source.http is not None:
            found = self._http(self.source.http)
        elif self.source.soap is not None:
            found = self._soap(self.source.soap)
        elif self.source.route is not None:
            found = self._route(self.source.route)
        else:
            assert self.source.file is not None
            found = self._file(self.source.file)
        for record in found:
            self.read += 1
            yield record

    # -- ODBC -----------------------------------------------------------------------------------
    def _odbc(self, spec: OdbcList) -> Iterator[dict[str, Any]]:
        for rows in self.odbc_batches(spec):
            columns, converted = self.columns, self.converted
            for row in rows:
                record = dict(zip(columns, row, strict=True))
                for index in converted:
                    name = columns[index]
                    record[name] = plain(record[name])
                yield record

    def odbc_batches(self, spec: OdbcList) -> Iterator[list[Any]]:
        """The query's rows as the driver fetches them, a fetch at a time; `columns`, `types` and
        `converted` (the columns whose values JSON does not carry as they are) are set before the
        first. For a reader that makes records of rows itself (reconcile/run.py)."""
        import pyodbc

        dsn = os.environ.get(spec.connection_env)
        if dsn is None:
            raise SourceFailed(f"the variable {spec.connection_env} (the ODBC connection string) is not set")
        statement, values = bound(spec.query, self.entity, self.since)
        try:
            connection = pyodbc.connect(dsn, timeout=30)
        except pyodbc.Error as exc:
            raise SourceFailed(f"cannot connect through {spec.connection_env}: {odbc_said(exc)}") from None
        try:
            cursor = connection.cursor()
            cursor.execute(statement, values)
            description = cursor.description or []
            self.columns = [column[0] for column in description]
            self.types = [column[1] for column in description]
            self.converted = [i for i, kind in enumerate(self.types) if kind not in (str, int, float, bool)]
            while True:
                rows = cursor.fetchmany(spec.fetch)
                if not rows:
                    break
                yield rows
        except pyodbc.Error as exc:
            raise SourceFailed(f"the query failed after {self.read:,} records: {odbc_said(exc)}") from None
        finally:
            connection.close()

    # -- HTTP -----------------------------------------------------------------------------------
    def _http(self, spec: HttpList) -> Iterator[dict[str, Any]]:
        base = spec.url.replace("{entity}", urllib.parse.quote(self.entity))
        base = base.replace("{since}", urllib.parse.quote(self.since or ""))
        current = base

        def fetch(page: int, asked: dict[str, Any], link: str | None) -> Any:
            nonlocal current
            if link is not None:
                current = urllib.parse.urljoin(current, link)
            return self._get(spec, _with_query(current, asked) if asked else current, page)

        return self._paged(spec.paging, spec.items, fetch)

    def _paged(self, paging: Paging, items_at: str, fetch: Fetch, from_xml: bool = False) -> Iterator[dict[str, Any]]:
        """Pages asked one after another until one is empty or names no next one; the records of
        each yielded. A page that repeats the one before stops the source: what was never read
        would be reported missing, and no result is better than a false one. In an answer that
        was XML (`from_xml`), one record is an object and none is nothing: both are lists here."""
        number, offset, cursor, link = paging.first, 0, None, None
        previous: str | None = None
        for page in range(MAX_PAGES):
            asked: dict[str, Any] = {}
            if paging.style in ("page", "offset", "cursor") and paging.size_param:
                asked[paging.size_param] = paging.size
            if paging.style == "page":
                asked[paging.param] = number
            elif paging.style == "offset":
                asked[paging.param] = offset
            elif paging.style == "cursor" and cursor:
                asked[paging.param] = cursor
            body = fetch(page, asked, link)
            try:
                items = pointer_get(body, items_at) if items_at else body
            except MappingError:
                if not from_xml:
                    raise SourceFailed(f"page {page + 1} has no records at {items_at}") from None
                items = []  # an XML answer's empty list has no element at all
            if from_xml and not isinstance(items, list):  # one element is an object, none an empty text
                items = [items] if isinstance(items, dict) else [] if items in ("", None) else items
            if not isinstance(items, list):
                raise SourceFailed(f"page {page + 1}: {items_at or 'the page'} is not a list of records")
            signature = json.dumps(items[:1] + items[-1:], sort_keys=True, default=str)
            if items and signature == previous:
                raise SourceFailed(
                    f"page {page + 1} repeats page {page}: the paging drifted after {self.read:,} records"
                )
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
                link = str(following)
        raise SourceFailed(f"more than {MAX_PAGES:,} pages: stopped")

    def _get(self, spec: HttpList, url: str, page: int) -> Any:
        headers = {"Accept": "application/json"}
        if spec.token_env:
            token = os.environ.get(spec.token_env)
            if token is None:
                raise SourceFailed(f"the variable {spec.token_env} (the token) is not set")
            headers["Authorization"] = f"Bearer {token}"
        shown = url.split("?", 1)[0]
        for attempt in (1, 2):
            if spec.oauth2 is not None:
                headers["Authorization"] = f"Bearer {self._granted(spec, spec.oauth2, refresh=attempt == 2)}"
            try:
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=spec.timeout_seconds) as reply:
                    data = reply.read(PAGE_BYTES + 1)
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and spec.oauth2 is not None and attempt == 1:
                    continue  # the token may have been revoked or expired early: a new one, once
                raise SourceFailed(f"page {page + 1} of {shown}: {exc.code} after {self.read:,} records") from None
            except (OSError, ValueError) as exc:
                raise SourceFailed(f"page {page + 1} of {shown}: {exc} after {self.read:,} records") from None
        if len(data) > PAGE_BYTES:
            raise SourceFailed(f"page {page + 1} of {shown} is over {PAGE_BYTES >> 20} MB")
        try:
            return json.loads(data)
        except ValueError:
            raise SourceFailed(f"page {page + 1} of {shown} is not JSON") from None

    def _granted(self, spec: HttpList, settings: OAuth2, refresh: bool) -> str:
        """An OAuth2 client-credentials token, fetched once and again when it nears its end or is
        refused; the secret comes from the environment and no message holds it."""
        if self._token and not refresh and time.monotonic() < self._token_until - 30:
            return self._token
        secret = os.environ.get(settings.client_secret_env)
        if secret is None:
            raise SourceFailed(f"the variable {settings.client_secret_env} (the OAuth2 client secret) is not set")
        form = {"grant_type": "client_credentials", "client_id": settings.client_id, "client_secret": secret}
        if settings.scope:
            form["scope"] = settings.scope
        request = urllib.request.Request(
            settings.token_url,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=spec.timeout_seconds) as reply:
                grant = json.loads(reply.read(1 << 20))
            self._token = str(grant["access_token"])
            self._token_until = time.monotonic() + float(grant.get("expires_in", 300))
        except urllib.error.HTTPError as exc:
            raise SourceFailed(f"the OAuth2 token endpoint answered {exc.code}") from None
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
            raise SourceFailed(f"no OAuth2 token: {type(exc).__name__}") from None
        return self._token

    # -- SOAP operations and managed routes ---------------------------------------------------------
    def _soap(self, spec: SoapList) -> Iterator[dict[str, Any]]:
        backend = create(spec.service)
        return self._called(spec, backend, None, None, {}, f"{spec.service.operation} (SOAP)", from_xml=True)

    def _route(self, spec: RouteList) -> Iterator[dict[str, Any]]:
        route = self.routes.get(spec.name)
        side = route.side(spec.side or self.side, self.entity) if route is not None else None
        if route is None or side is None:
            raise SourceFailed(f"no route {spec.name} with a {spec.side or self.side} binding for {self.entity}")
        try:
            request_map = side.request.compile(self.base) if side.request else None
            response_map = side.response.compile(self.base) if side.response else None
        except MappingError as exc:
            raise SourceFailed(f"route {spec.name}: {exc}") from None
        params = {name: _filled(value, self.entity, self.since) for name, value in spec.params.items()}
        backend = create(side.backend)
        from_xml = side.backend.backend == "soap" or getattr(side.backend, "format", "json") == "xml"
        return self._called(spec, backend, request_map, response_map, params, f"route {spec.name}", from_xml)

    def _called(
        self,
        spec: SoapList | RouteList,
        backend: Backend,
        request_map: Mapped,
        response_map: Mapped,
        params: dict[str, str],
        what: str,
        from_xml: bool,
    ) -> Iterator[dict[str, Any]]:
        """Pages of a list operation, each one call of the backend on a loop of the reader's own."""
        loop = asyncio.new_event_loop()
        request = _filled(spec.request, self.entity, self.since)

        def fetch(page: int, asked: dict[str, Any], link: str | None) -> Any:
            payload = {**request, **asked}
            try:
                payload = request_map(payload) if request_map else payload
                paged = {name: str(value) for name, value in asked.items()}  # for a URL's {page} as well
                call = Call(
                    what,
                    payload,
                    self.entity,
                    None,
                    f"reconcile-{self.entity}-{page + 1}",
                    params={"entity": self.entity, **params, **paged},
                )
                body = loop.run_until_complete(backend.call(call)).body
                return response_map(body) if response_map else body
            except (BackendError, MappingError) as exc:
                raise SourceFailed(f"page {page + 1} of {what}: {exc} after {self.read:,} records") from None

        try:
            yield from self._paged(spec.paging, spec.items, fetch, from_xml)
        finally:
            loop.run_until_complete(backend.close())
            loop.close()

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


def odbc_said(exc: Exception) -> str:
    """What the driver said, without the connection string it may echo."""
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    return re.sub(r"(?i)(pwd|password|uid|user)=[^;]*", r"\1=•••", text)[:300]


def _filled(value: Any, entity: str, since: str | None) -> Any:
    """{entity} and {since} filled into every string of a request."""
    if isinstance(value, str):
        return value.replace("{entity}", entity).replace("{since}", since or "")
    if isinstance(value, dict):
        return {key: _filled(item, entity, since) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, entity, since) for item in value]
    return value
