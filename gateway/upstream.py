"""A small HTTP/1.1 client for the passthrough path: keep-alive connections as asyncio protocols.

aiohttp's client builds several objects and tasks per request; on the gateway's hottest path
(forward a body, return the answer) that costs more than the forwarding itself. This client does
only what passthrough needs: POST a body with a few headers, read a Content-Length or chunked
answer, keep the connection. Each connection is an `asyncio.Protocol` that parses what arrives in
`data_received` and resolves one future when the answer is whole — no stream reader, no task, one
timer per call. A reused connection the server has meanwhile closed is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

MAX_ANSWER = 20 * 1024 * 1024
MAX_HEAD = 64 * 1024


class UpstreamError(Exception):
    """The upstream could not be reached or answered something that is not HTTP/1.1."""


class _Closed(Exception):
    """The connection closed before the answer began: on a reused connection, worth one more try."""


@dataclass(frozen=True, slots=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[RawReply, bool]] | None = None
        self.open = True
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self._body_at = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            if self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted again
                self.close()
            return
        try:
            answer = self._parse()
        except UpstreamError as exc:
            self.waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            self.waiter.set_result(answer)

    def eof_received(self) -> bool | None:
        self._finish_at_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._finish_at_eof()

    # -- one call -----------------------------------------------------------------------------
    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[RawReply, bool]]:
        assert self.transport is not None
        self.buffer.clear()
        self._head, self._body_at = None, 0
        self.waiter = loop.create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        """The call's time is up: its answer is a TimeoutError, and the connection is not reused."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())
        self.close()

    def _finish_at_eof(self) -> None:
        """The server closed: an answer without a length ends here; anything else was cut off."""
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._head is None and not self.buffer:
            waiter.set_exception(_Closed())
        elif self._head is not None and self._head[1].get("content-length") is None and not self._chunked():
            status, headers, _ = self._head
            waiter.set_result((RawReply(status, headers, bytes(self.buffer[self._body_at :])), False))
        else:
            waiter.set_exception(UpstreamError("the connection broke mid-answer"))

    def _chunked(self) -> bool:
        return self._head is not None and "chunked" in self._head[1].get("transfer-encoding", "").lower()

    def _parse(self) -> tuple[RawReply, bool] | None:
        """The whole answer once it has arrived, else None (more bytes will come)."""
        buffer = self.buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise UpstreamError("the answer's head is too large")
                return None
            self._head, self._body_at = _head(bytes(buffer[:end])), end + 4
        status, headers, keep = self._head
        if self._chunked():
            body = _dechunk(buffer, self._body_at)
            return None if body is None else (RawReply(status, headers, body), keep)
        length = headers.get("content-length")
        if length is None:
            return None  # the body runs to the end of the connection
        try:
            size = int(length)
        except ValueError:
            raise UpstreamError("the answer's Content-Length is not a number") from None
        if size > MAX_ANSWER:
            raise UpstreamError("the answer is too large")
        if len(buffer) - self._body_at < size:
            return None
        return RawReply(status, headers, bytes(buffer[self._body_at : self._body_at + size])), keep


def _head(raw: bytes) -> tuple[int, dict[str, str], bool]:
    lines = raw.decode("latin-1").split("\r\n")
    try:
        version, status, *_ = lines[0].split(" ", 2)
        code = int(status)
    except ValueError:
        raise UpstreamError("the answer is not HTTP") from None
    if not version.startswith("HTTP/1."):
        raise UpstreamError("the answer is not HTTP/1.x")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if headers.get("content-length") is None and "chunked" not in headers.get("transfer-encoding", "").lower():
        keep = False  # the body ends when the connection does
    return code, headers, keep


def _dechunk(buffer: bytearray, start: int) -> bytes | None:
    """A chunked body from `start`, or None while it is incomplete."""
    parts: list[bytes] = []
    total, at = 0, start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            raise UpstreamError("the answer's chunk size is not a number") from None
        at = line_end + 2
        if size == 0:  # trailers, if any, end with an empty line
            end = buffer.find(b"\r\n", at)
            while end > at:
                at = end + 2
                end = buffer.find(b"\r\n", at)
            return None if end < 0 else b"".join(parts)
        total += size
        if total > MAX_ANSWER:
            raise UpstreamError("the answer is too large")
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class Upstream:
    """Keep-alive connections to one origin (scheme http, host, port)."""

    def __init__(self, url: str, pool_size: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"passthrough to {parts.scheme}:// needs the general client")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.pool_size = pool_size
        self._idle: list[_Connection] = []
        self._start = b"POST " + self.path.encode() + b" HTTP/1.1\r\nHost: " + f"{self.host}:{self.port}".encode()

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from None
        return connection

    async def post(self, body: bytes, headers: dict[str, str], timeout: float) -> RawReply:
        """POST `body`; the answer within `timeout` seconds or TimeoutError. Header values that are
        not Latin-1, or hold a line break, are refused (UpstreamError) before anything is sent."""
        parts = [self._start]
        try:
            for name, value in headers.items():
                if "\r" in value or "\n" in value:  # it would end the header and start another
                    raise ValueError(name)
                parts.append(b"\r\n" + name.encode("latin-1") + b": " + value.encode("latin-1"))
        except ValueError:  # UnicodeEncodeError included
            raise UpstreamError("a header value cannot be sent in HTTP/1.1") from None
        parts += [b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        request = b"".join(parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for reuse in (True, False):
            connection = None
            while reuse and self._idle and connection is None:
                candidate = self._idle.pop()
                connection = candidate if candidate.open else None
            if connection is None:
                connection, reuse = await self._connect(deadline), False
            timer = loop.call_at(deadline, connection.expire)  # one timer per call, no task cancelled
            try:
                answer, keep = await connection.send(request, loop)
            except _Closed:
                connection.close()
                if reuse:
                    continue  # the server closed an idle connection: try once on a new one
                raise UpstreamError("the connection closed before an answer") from None
            except BaseException:
                connection.close()
                raise
            finally:
                timer.cancel()
            connection.waiter = None
            if keep and connection.open and len(self._idle) < self.pool_size:
                self._idle.append(connection)
            else:
                connection.close()
            return answer
        raise UpstreamError("no connection could be used")

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
