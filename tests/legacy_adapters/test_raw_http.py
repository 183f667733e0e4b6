"""The passthrough's HTTP/1.1 client against loopback servers that answer in every way a SOAP
service might: keep-alive, chunked, close-delimited, slow, cut off, closed while idle, not HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from legacy_adapters.raw_http import MAX_ANSWER, Origin, UpstreamError

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def on_loop(request: pytest.FixtureRequest) -> Runner:
    """Each test on the standard event loop and on uvloop, the one the gateway serves on."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head, await reader.readexactly(length)


async def _serving(answer: Answer, exchange: Callable[[Origin, list[int]], Awaitable[None]]) -> None:
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went, or the test ended
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Origin(f"http://127.0.0.1:{port}/soap?wsdl=no")
    try:
        await exchange(upstream, connections)
    finally:
        upstream.close()
        server.close()
        await server.wait_closed()


def test_keep_alive_answers_reuse_one_connection_and_send_what_was_given(on_loop: Runner) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await _request(reader)
            seen.append((head, body))
            reply = b"<ok>" + body + b"</ok>"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
            )
            await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        for n in range(5):
            reply = await upstream.post(b"<n>%d</n>" % n, {"SOAPAction": '"Get"', "X-Correlation-ID": "c1"}, 5)
            assert (reply.status, reply.body, reply.headers["content-type"]) == (
                200,
                b"<ok><n>%d</n></ok>" % n,
                "text/xml",
            )
        assert len(connections) == 1

    on_loop(_serving(answer, exchange))
    head = seen[0][0].decode()
    assert head.startswith("POST /soap?wsdl=no HTTP/1.1\r\nHost: 127.0.0.1:")
    assert 'SOAPAction: "Get"\r\n' in head and "X-Correlation-ID: c1\r\n" in head and "Content-Length: 8\r\n" in head


def test_a_chunked_answer_arriving_byte_by_byte_is_put_together(on_loop: Runner) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _request(reader)
            reply = b"HTTP/1.1 500 Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n<Faul\r\n3\r\nt/>\r\n0\r\nX-Trailer: 1\r\n\r\n"
            for byte in reply:
                writer.write(bytes([byte]))
                await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        for _ in range(2):
            reply = await upstream.post(b"x", {}, 5)
            assert (reply.status, reply.body) == (500, b"<Fault/>")
        assert len(connections) == 1  # a chunked answer keeps the connection

    on_loop(_serving(answer, exchange))


def test_an_answer_without_length_runs_to_the_close_and_is_not_reused(on_loop: Runner) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n<whole/>")
        await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        assert (await upstream.post(b"x", {}, 5)).body == b"<whole/>"
        assert (await upstream.post(b"x", {}, 5)).body == b"<whole/>"
        assert len(connections) == 2

    on_loop(_serving(answer, exchange))


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(on_loop: Runner) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)  # one answer, advertised as keep-alive, then the server hangs up
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        for _ in range(3):
            assert (await upstream.post(b"x", {}, 5)).body == b"ok"
            await asyncio.sleep(0.05)
        assert len(connections) == 3

    on_loop(_serving(answer, exchange))


def _answers_once_then_closes() -> tuple[list[int], Answer]:
    """A server that answers a connection's first request, reads its second and hangs up without an
    answer: the race a keep-alive client cannot avoid. The list gets a 1 for every request read."""
    read: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        read.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await _request(reader)
        read.append(1)

    return read, answer


@pytest.mark.parametrize(
    ("method", "headers"), [("POST", {"Idempotency-Key": "k-1"}), ("PUT", {}), ("GET", {})], ids=["keyed", "put", "get"]
)
def test_a_connection_closed_the_moment_it_is_reused_is_tried_once_more_when_that_is_safe(
    on_loop: Runner, method: str, headers: dict[str, str]
) -> None:
    """The race a keep-alive client cannot avoid: the server closes just as the request is sent."""
    read, answer = _answers_once_then_closes()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        assert (await upstream.request(method, "/", headers, b"x", 5)).body == b"ok"
        assert (await upstream.request(method, "/", headers, b"x", 5)).body == b"ok"
        assert len(connections) == 2 and read == [1, 1, 1]  # the second request read twice: once unanswered

    on_loop(_serving(answer, exchange))


def test_a_post_without_an_idempotency_key_is_not_sent_twice(on_loop: Runner) -> None:
    """The server may have booked what it read before it closed: a plain POST is not sent again."""
    read, answer = _answers_once_then_closes()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        assert (await upstream.post(b"x", {}, 5)).body == b"ok"
        with pytest.raises(UpstreamError, match="not sent again"):
            await upstream.post(b"x", {}, 5)
        assert read == [1, 1] and len(connections) == 1  # read (and perhaps booked), never sent again

    on_loop(_serving(answer, exchange))


def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped(on_loop: Runner) -> None:
    slow = [True]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, slow[0] = slow[0], False  # the first connection answers late, once
        while True:
            await _request(reader)
            if first:
                await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + (b"late" if first else b"fine"))
            await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        with pytest.raises(TimeoutError):
            await upstream.post(b"x", {}, 0.1)
        assert (await upstream.post(b"x", {}, 5)).body == b"fine"  # not the late answer to the first call
        assert len(connections) == 2

    on_loop(_serving(answer, exchange))


@pytest.mark.parametrize(
    "reply, said",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "not a number"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER + 1), "too large"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "broke mid-answer"),
        (b"", "closed before an answer"),
    ],
)
def test_an_answer_that_is_not_sound_http_is_an_upstream_error(on_loop: Runner, reply: bytes, said: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(reply)
        await writer.drain()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        with pytest.raises(UpstreamError, match=said):
            await upstream.post(b"x", {}, 5)

    on_loop(_serving(answer, exchange))


@pytest.mark.parametrize("value", ["€", '"Get"\r\nX-Admin: yes', "a\nb"])
def test_a_header_that_is_not_latin_1_or_breaks_the_line_is_refused_before_anything_is_sent(
    on_loop: Runner, value: str
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        with pytest.raises(UpstreamError, match="cannot be sent"):
            await upstream.post(b"x", {"SOAPAction": value}, 5)
        assert connections == []

    on_loop(_serving(answer, exchange))


def test_a_port_nobody_listens_on_is_an_upstream_error(on_loop: Runner) -> None:
    async def refused() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamError, match="cannot connect"):
            await Origin(f"http://127.0.0.1:{port}/").post(b"x", {}, 5)

    on_loop(refused())


def test_answers_without_a_body_end_with_their_head_and_keep_the_connection(on_loop: Runner) -> None:
    """HEAD's answer declares the length a GET would get; 204 and 304 have none; 100 Continue comes first."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        replies = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",  # to HEAD
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nthen",
        ]
        for reply in replies:
            await _request(reader)
            writer.write(reply)
            await writer.drain()
        await reader.read()

    async def exchange(upstream: Origin, connections: list[int]) -> None:
        head = await upstream.request("HEAD", "/", {}, None, 5)
        assert (head.status, head.body) == (200, b"")
        assert (await upstream.request("DELETE", "/x", {}, None, 5)).status == 204
        assert (await upstream.post(b"x", {}, 5)).body == b"then"
        assert len(connections) == 1

    on_loop(_serving(answer, exchange))


def test_calls_beyond_the_limit_wait_for_a_free_connection(on_loop: Runner) -> None:
    at_once = [0, 0]  # now, most

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _request(reader)
            at_once[0] += 1
            at_once[1] = max(at_once)
            await asyncio.sleep(0.02)
            at_once[0] -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def calls() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Origin(f"http://127.0.0.1:{port}/", limit=2)
        try:
            replies = await asyncio.gather(*(upstream.post(b"x", {}, 5) for _ in range(8)))
            assert {reply.body for reply in replies} == {b"ok"} and at_once[1] == 2
            with pytest.raises(TimeoutError):  # no slot within the call's time is its timeout
                await asyncio.gather(*(upstream.post(b"x", {}, 0.03) for _ in range(8)))
        finally:
            upstream.close()
            server.close()

    on_loop(calls())


def test_https_is_verified_against_the_trusted_authorities(on_loop: Runner) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                await _request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                await writer.drain()

    async def calls() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/soap"
        trusted, stranger = Origin(url, tls=trusting), Origin(url)
        try:
            assert (await trusted.post(b"x", {}, 5)).body == b"secret"
            assert (await trusted.post(b"x", {}, 5)).body == b"secret"
            with pytest.raises(UpstreamError, match="cannot connect: SSLCertVerificationError"):
                await stranger.post(b"x", {}, 5)  # a certificate nobody here vouches for
        finally:
            trusted.close()
            server.close()

    on_loop(calls())


def test_credentials_in_the_url_go_as_basic_authorization() -> None:
    origin = Origin("http://erp%40acme:p%3Ass@127.0.0.1:8080/orders?x=a b")
    request = origin._request("POST", origin.target, {}, b"")
    assert request.startswith(b"POST /orders?x=a%20b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Authorization: Basic " + base64.b64encode(b"erp@acme:p:ss") + b"\r\n" in request


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http:///nohost", "http://127.0.0.1:99999/", "127.0.0.1:80"])
def test_a_url_that_cannot_be_called_is_said_at_once(url: str) -> None:
    with pytest.raises(ValueError):
        Origin(url)
