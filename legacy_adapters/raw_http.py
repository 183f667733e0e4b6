"""A small HTTP/1.1 client: keep-alive connections as asyncio protocols.

aiohttp's client builds several objects and tasks per request; on the gateway's hottest paths (the
passthrough forwarding an envelope, an HTTP backend's call) that cost more than the call itself: a
third of a managed write's CPU went to it. This client does only what those paths need: send one
request with a few headers and a Content-Length body, over TLS for https; read a Content-Length,
chunked or close-delimited answer; keep the connection. Each connection is an `asyncio.Protocol`
that parses what arrives in `data_received` and resolves one future when the answer is whole — no
stream reader, no task, one timer per call.

A reused connection the server closed before any byte of the answer (the race no keep-alive client
can avoid: the server drops an idle connection as the request goes out) is tried once more on a new
one, when the request may be sent twice: an idempotent method or an Idempotency-Key (RFC 9110
§9.2.2, the rule Go's net/http follows). Any other request may have been booked, and is an error.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, unquote, urlsplit

MAX_ANSWER = 20 * 1024 * 1024
MAX_HEAD = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_SAFE_IN_TARGET = "!#$%&'()*+,/:;=?@[]~"  # what a request target may hold as is; the rest is %-encoded
_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every https origin (building one reads the CA store)."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


class UpstreamError(Exception):
    """The upstream could not be reached or answered something that is not HTTP/1.1. `sent` says
    whether the request went out first: if it did, the upstream may have acted on it."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


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
        self._head_only = False

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
    def send(
        self, request: bytes, loop: asyncio.AbstractEventLoop, head_only: bool = False
    ) -> asyncio.Future[tuple[RawReply, bool]]:
        """Write `request`; its answer (and whether the connection may be kept) once whole. An answer
        to HEAD (`head_only`) ends with its head, whatever length it declares."""
        assert self.transport is not None
        self.buffer.clear()
        self._head, self._body_at, self._head_only = None, 0, head_only
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
        elif self._head is not None and "content-length" not in self._head[1] and not self._chunked():
            status, headers, _ = self._head
            waiter.set_result((RawReply(status, headers, bytes(self.buffer[self._body_at :])), False))
        else:
            waiter.set_exception(UpstreamError("the connection broke mid-answer"))

    def _chunked(self) -> bool:
        return self._head is not None and "chunked" in self._head[1].get("transfer-encoding", "").lower()

    def _parse(self) -> tuple[RawReply, bool] | None:
        """The whole answer once it has arrived, else None (more bytes will come)."""
        buffer = self.buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n", self._body_at)
            if end < 0:
                if len(buffer) - self._body_at > MAX_HEAD:
                    raise UpstreamError("the answer's head is too large")
                return None
            head = _head(bytes(buffer[self._body_at : end]))
            self._body_at = end + 4
            if 100 <= head[0] < 200:  # 100 Continue and the like: the answer proper follows
                continue
            self._head = head
        status, headers, keep = self._head
        if self._head_only or status in (204, 304):  # no body, whatever the head says
            return RawReply(status, headers, b""), keep
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
    """Status, headers (names in lower case) and whether the connection may be kept after the body."""
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
    delimited = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
    if not delimited and code not in (204, 304):
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


def where(url: str) -> tuple[str, str]:
    """The origin of `url` (scheme and authority) and its request target (path and query, what is
    not allowed there as is %-encoded)."""
    parts = urlsplit(url)
    target = quote(parts.path or "/", safe=_SAFE_IN_TARGET)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_IN_TARGET)
    return f"{parts.scheme}://{parts.netloc}", target


class Origin:
    """Keep-alive connections to one origin (scheme, host and port of `url`; its path is what `post`
    sends to). `limit` bounds the calls in flight at once (the rest wait their turn, within their
    timeout); `pool_size`, the idle connections kept; `tls`, whom an https origin is trusted by (by
    default the system's CAs, or those of the file SSL_CERT_FILE names)."""

    def __init__(
        self, url: str, pool_size: int = 64, limit: int | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{parts.scheme or 'a URL without a scheme'}:// cannot be called over HTTP")
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError("the URL's port is not a number from 0 to 65535") from None
        if not parts.hostname:
            raise ValueError("the URL names no host")
        self.host = parts.hostname
        self.tls = (tls or _tls()) if parts.scheme == "https" else None  # the system's CAs, or SSL_CERT_FILE's
        self.target = where(url)[1]
        self.pool_size = pool_size
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit) if limit else None
        authority = parts.netloc.rpartition("@")[2]
        self._host_line = b"\r\nHost: " + authority.encode("idna" if not authority.isascii() else "ascii")
        self._auth = b""
        if parts.username is not None:  # userinfo in the URL: sent as Basic credentials, as browsers did
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._auth = b"\r\nAuthorization: Basic " + base64.b64encode(pair)

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        name = self.host if self.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.tls, server_hostname=name
                )
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, no such host, bad certificate
            raise UpstreamError(f"cannot connect: {type(exc).__name__}", sent=False) from None
        return connection

    async def post(self, body: bytes, headers: dict[str, str], timeout: float) -> RawReply:
        """POST `body` to the origin's own URL."""
        return await self.request("POST", self.target, headers, body, timeout)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> RawReply:
        """Send one request; its answer within `timeout` seconds, or TimeoutError. Header values that
        are not Latin-1, or hold a line break, are refused (UpstreamError) before anything is sent."""
        request = self._request(method, target, headers, body)
        again = method in IDEMPOTENT or "Idempotency-Key" in headers or "idempotency-key" in headers
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._slots is None:
            return await self._exchange(request, method == "HEAD", again, deadline, loop)
        if self._slots.locked():  # every slot taken: wait for one, within the call's time
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            return await self._exchange(request, method == "HEAD", again, deadline, loop)
        finally:
            self._slots.release()

    def _request(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
        parts = [method.encode("ascii"), b" ", target.encode("ascii"), b" HTTP/1.1", self._host_line, self._auth]
        try:
            for name, value in headers.items():
                if "\r" in value or "\n" in value or "\r" in name or "\n" in name:  # it would start another header
                    raise ValueError(name)
                parts.append(b"\r\n" + name.encode("latin-1") + b": " + value.encode("latin-1"))
        except ValueError:  # UnicodeEncodeError included
            raise UpstreamError("a header value cannot be sent in HTTP/1.1", sent=False) from None
        if body is not None:
            parts += [b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        else:
            parts.append(b"\r\n\r\n")
        return b"".join(parts)

    async def _exchange(
        self, request: bytes, head_only: bool, again: bool, deadline: float, loop: asyncio.AbstractEventLoop
    ) -> RawReply:
        for reuse in (True, False):
            connection = None
            while reuse and self._idle and connection is None:
                candidate = self._idle.pop()
                connection = candidate if candidate.open else None
            if connection is None:
                connection, reuse = await self._connect(deadline), False
            timer = loop.call_at(deadline, connection.expire)  # one timer per call, no task cancelled
            try:
                answer, keep = await connection.send(request, loop, head_only)
            except _Closed:
                connection.close()
                if reuse and again:
                    continue  # the server closed an idle connection: try once on a new one
                said = "" if again else " (it may have been booked, so it was not sent again)"
                raise UpstreamError(f"the connection closed before an answer{said}") from None
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
        raise UpstreamError("no connection could be used", sent=False)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
