"""A small HTTP/1.1 client for the passthrough path: keep-alive connections on plain asyncio streams.

aiohttp's client builds several objects per request; on the gateway's hottest path (forward a
body, return the answer) that costs more than the forwarding itself. This client does only what
passthrough needs: POST a body with a few headers, read a Content-Length or chunked answer, keep
the connection. A reused connection the server has meanwhile closed is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ANSWER = 20 * 1024 * 1024


class UpstreamError(Exception):
    """The upstream could not be reached or answered something that is not HTTP/1.1."""


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


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
        self._host_header = f"{self.host}:{self.port}".encode()

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from None
        return _Connection(reader, writer)

    async def post(self, body: bytes, headers: dict[str, str], timeout: float) -> RawReply:
        head = [b"POST ", self.path.encode(), b" HTTP/1.1\r\nHost: ", self._host_header, b"\r\n"]
        for name, value in headers.items():
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        head += [b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n"]
        request = b"".join(head) + body
        async with asyncio.timeout(timeout):
            for reused in (True, False):
                connection = self._idle.pop() if reused and self._idle else None
                if connection is None:
                    connection, reused = await self._connect(), False
                try:
                    connection.writer.write(request)
                    answer, keep = await self._read(connection.reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    connection.close()
                    if reused:
                        continue  # the server closed an idle connection: try once on a new one
                    raise UpstreamError(f"the connection broke: {type(exc).__name__}") from None
                except BaseException:
                    connection.close()
                    raise
                if keep and len(self._idle) < self.pool_size:
                    self._idle.append(connection)
                else:
                    connection.close()
                return answer
        raise UpstreamError("no connection could be used")

    async def _read(self, reader: asyncio.StreamReader) -> tuple[RawReply, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            version, status, *_ = lines[0].split(" ", 2)
            code = int(status)
        except ValueError:
            raise UpstreamError("the answer is not HTTP") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_ANSWER:
                raise UpstreamError("the answer is too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_ANSWER)
            return RawReply(code, headers, body), False
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return RawReply(code, headers, body), keep

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            total += size
            if total > MAX_ANSWER:
                raise UpstreamError("the answer is too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
