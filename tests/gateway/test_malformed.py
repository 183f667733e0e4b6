"""Odd bytes in headers, either way: a request the server cannot parse is a 400 and one warning
line (no traceback); a SOAP service's Content-Type that cannot be passed on is a 502 fault."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.gateway.conftest import SERVED, running_gateway, serve_process, stream_server_in_thread


def test_a_nul_in_a_header_is_a_400_and_one_line_in_the_log(tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "r.yaml").write_text(
        textwrap.dedent("""\
        routes:
          - name: ping
            operation: {method: GET, path: /ping}
            legacy: {backend: {backend: memory, system: erp}}
        """)
    )
    with serve_process("--routes", str(routes), "--insecure-no-auth") as url:
        process = SERVED[url]
        host, port = url.removeprefix("http://").split(":")
        for bad in (b"X-Foo: a\x00b", b"X-Foo: a\rb"):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                raw.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n\r\n")
                assert raw.recv(200).split(b" ")[1] == b"400"
    log = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in log and log.count("refused a malformed request with 400") == 2, log[-2000:]


@contextmanager
def soap_answering(content_type: bytes) -> Iterator[str]:
    """A SOAP service whose answer's Content-Type is `content_type`, byte for byte."""
    envelope = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r/></s:Body></s:Envelope>'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: "
            + content_type
            + b"\r\nContent-Length: "
            + str(len(envelope)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + envelope
        )
        await writer.drain()
        writer.close()

    with stream_server_in_thread(serve) as url:
        yield f"{url}/soap"


def test_a_soap_content_type_that_cannot_be_passed_on_is_a_502_fault(tmp_path: Path) -> None:
    for content_type in (b"text/xml\rX-Injected: 1", b"text/xml\x00"):
        with soap_answering(content_type) as url:
            text = f'routes:\n  - name: soap\n    passthrough: {{path: /soap, legacy: "{url}"}}\n'
            with running_gateway(tmp_path / str(len(content_type)), text) as gateway:
                answer = requests.post(
                    f"{gateway.url}/soap",
                    data=b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body/></s:Envelope>",
                    headers={**gateway.headers(), "Content-Type": "text/xml"},
                    timeout=10,
                )
                assert answer.status_code == 500 and b"Backend fault" in answer.content  # a SOAP 1.1 fault
                assert "X-Injected" not in answer.headers
