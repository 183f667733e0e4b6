"""The HTTP backend against a real aiohttp server: JSON and XML, OAuth2 client credentials, errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from legacy_adapters import BackendFault, BackendRejected, BackendUnavailable, Call, HttpConfig, OAuth2, create
from legacy_adapters.raw_http import MAX_ANSWER


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port for the duration; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def cloud_erp() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A cloud ERP simulator: a token endpoint and an orders API that wants a bearer token."""
    state: dict[str, Any] = {"tokens": 0, "revoked": False, "seen": []}

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_secret") != "s3cret" or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        state["tokens"] += 1
        state["revoked"] = False
        return web.json_response({"access_token": f"tok-{state['tokens']}", "expires_in": 3600})

    async def orders(request: web.Request) -> web.Response:
        state["seen"].append(dict(request.headers))
        expected = f"Bearer tok-{state['tokens']}"
        if state["revoked"] or request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_token"}, status=401)
        if request.content_type == "application/xml":
            text = await request.text()
            return web.Response(
                text=f"<order><id>X-1</id><echo>{len(text)}</echo></order>", content_type="application/xml"
            )
        body = await request.json()
        if body.get("qty", 0) < 1:
            return web.json_response({"error": "qty"}, status=422)
        if body.get("customer") == "crash":
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"orderId": f"CL-{body['customer']}", "entity": request.match_info["entity"]})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/api/{entity}/orders", orders)
    async with serving(app) as url:
        yield url, state


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def test_oauth2_token_is_cached_and_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANYAN_TEST_CLIENT_SECRET", "s3cret")

    async def scenario() -> dict[str, Any]:
        async with cloud_erp() as (url, state):
            config = HttpConfig(
                url=url + "/api/{entity}/orders",
                oauth2=OAuth2(
                    token_url=url + "/oauth/token", client_id="banyan", client_secret_env="BANYAN_TEST_CLIENT_SECRET"
                ),
            )
            backend = create(config)
            try:
                call = Call(
                    route="order-create",
                    payload={"customer": "globex", "qty": 1},
                    writes=True,
                    params={"entity": "ACME-DE"},
                    correlation_id="c1",
                )
                first = await backend.call(call)
                second = await backend.call(call)
                assert state["tokens"] == 1  # cached
                state["revoked"] = True
                third = await backend.call(call)  # 401 → one refresh → success
                assert state["tokens"] == 2
                with pytest.raises(BackendRejected):
                    await backend.call(
                        Call(
                            route="order-create",
                            payload={"customer": "globex", "qty": 0},
                            writes=True,
                            params={"entity": "ACME-DE"},
                        )
                    )
                with pytest.raises(BackendFault):
                    await backend.call(
                        Call(
                            route="order-create",
                            payload={"customer": "crash", "qty": 1},
                            writes=True,
                            params={"entity": "ACME-DE"},
                        )
                    )
                return {"first": first.body, "second": second.body, "third": third.body, "seen": state["seen"]}
            finally:
                await backend.close()

    result = run(scenario)
    assert result["first"] == result["third"] == {"orderId": "CL-globex", "entity": "ACME-DE"}
    assert result["seen"][0]["X-Correlation-ID"] == "c1"


def test_xml_bodies_and_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANYAN_TEST_CLIENT_SECRET", "s3cret")
    monkeypatch.delenv("BANYAN_TEST_UNSET_SECRET", raising=False)

    async def scenario() -> Any:
        async with cloud_erp() as (url, _):
            oauth = OAuth2(
                token_url=url + "/oauth/token", client_id="banyan", client_secret_env="BANYAN_TEST_CLIENT_SECRET"
            )
            backend = create(HttpConfig(url=url + "/api/{entity}/orders", format="xml", xml_root="order", oauth2=oauth))
            unset = create(
                HttpConfig(
                    url=url + "/api/{entity}/orders",
                    oauth2=oauth.model_copy(update={"client_secret_env": "BANYAN_TEST_UNSET_SECRET"}),
                )
            )
            try:
                reply = await backend.call(
                    Call(route="r", payload={"sku": "A", "qty": 2}, writes=True, params={"entity": "ACME-US"})
                )
                with pytest.raises(BackendUnavailable, match="BANYAN_TEST_UNSET_SECRET"):
                    await unset.call(Call(route="r", payload={}, writes=True, params={"entity": "ACME-US"}))
                return reply.body
            finally:
                await backend.close()
                await unset.close()

    body = run(scenario)
    assert body["id"] == "X-1" and int(body["echo"]) > 20


async def call_once(config: HttpConfig, call: Call) -> Any:
    """One call through a backend made for it, closed afterwards; the answer's body."""
    backend = create(config)
    try:
        return (await backend.call(call)).body
    finally:
        await backend.close()


def test_dead_http_backend() -> None:
    with pytest.raises(BackendUnavailable, match="cannot reach the HTTP backend"):
        run(lambda: call_once(HttpConfig(url="http://127.0.0.1:1/nothing", timeout=2), Call(route="r", payload=None)))


@asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    """Answers with the raw path and query it received, or with the body a test asks for."""

    async def echo(request: web.Request) -> web.Response:
        kind = request.query.get("answer")
        if kind == "bad-json":
            return web.Response(body=b'{"sku": "A", ', content_type="application/json")
        if kind == "deep-json":
            return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
        if kind in ("gzip", "deflate", "bomb", "brotli"):
            data = json.dumps({"compressed": kind}).encode() if kind != "bomb" else b"0" * (MAX_ANSWER + 10)
            packed = gzip.compress(data) if kind != "deflate" else zlib.compress(data)
            coding = {"bomb": "gzip", "brotli": "br"}.get(kind, kind)
            return web.Response(body=packed, headers={"Content-Type": "application/json", "Content-Encoding": coding})
        if kind == "redirect":
            raise web.HTTPFound("/elsewhere")
        if kind in ("nan", "infinity", "huge"):
            number = {"nan": b"NaN", "infinity": b"-Infinity", "huge": b"1e400"}[kind]
            return web.Response(body=b'{"a": ' + number + b"}", content_type="application/json")
        if kind == "refused":  # a problem body, with a control character and a newline in its detail
            problem = {"type": "about:blank", "title": "Unprocessable", "detail": "customer C-9 is on\ncredit hold\x00"}
            return web.json_response(problem, status=422, content_type="application/problem+json")
        if kind == "refused-long":
            return web.json_response({"error": {"message": "x" * 500}}, status=409)
        if kind == "refused-html":
            return web.Response(body=b"<html><body>422 secret-echo</body></html>", status=422, content_type="text/html")
        if kind == "hostile-xml":
            return web.Response(body=b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', content_type="application/xml")
        return web.json_response({"raw_path": request.raw_path, "query": dict(request.query)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serving(app) as url:
        yield url


@pytest.mark.parametrize(
    ("value", "raw_path"),
    [
        ("T1?admin=true&x=", "/echo/things/T1%3Fadmin%3Dtrue%26x%3D"),  # sent as encoded, not re-normalised
        ("T1#frag", "/echo/things/T1%23frag"),
        ("a/../../admin", "/echo/things/a%2F..%2F..%2Fadmin"),
        ("%2F", "/echo/things/%252F"),
        ("Grüße", "/echo/things/Gr%C3%BC%C3%9Fe"),
    ],
)
def test_path_parameters_are_encoded_as_one_segment(value: str, raw_path: str) -> None:
    async def scenario() -> Any:
        async with echo_server() as url:
            config = HttpConfig(url=url + "/echo/things/{id}", method="GET")
            return await call_once(config, Call(route="r", payload=None, params={"id": value}))

    body = run(scenario)
    assert body == {"raw_path": raw_path, "query": {}}  # the backend sees one resource, no query


@pytest.mark.parametrize("answer", ["bad-json", "deep-json", "hostile-xml", "nan", "infinity", "huge"])
def test_an_answer_that_cannot_be_read_is_a_backend_fault(answer: str) -> None:
    async def scenario() -> None:
        async with echo_server() as url:
            await call_once(HttpConfig(url=url + f"/x?answer={answer}", method="GET"), Call(route="r", payload=None))

    with pytest.raises(BackendFault, match="cannot be read"):
        run(scenario)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compressed_answer_is_inflated(coding: str) -> None:
    async def scenario() -> Any:
        async with echo_server() as url:
            return await call_once(
                HttpConfig(url=url + f"/x?answer={coding}", method="GET"), Call(route="r", payload=None)
            )

    assert run(scenario) == {"compressed": coding}


@pytest.mark.parametrize(
    ("answer", "said"),
    [("bomb", "too large once inflated"), ("brotli", "cannot read: br"), ("redirect", "302 \\(a redirect\\)")],
)
def test_answers_the_gateway_will_not_take_are_faults(answer: str, said: str) -> None:
    async def scenario() -> None:
        async with echo_server() as url:
            await call_once(HttpConfig(url=url + f"/x?answer={answer}", method="GET"), Call(route="r", payload=None))

    with pytest.raises(BackendFault, match=said):
        run(scenario)


@pytest.mark.parametrize("url", ["ftp://erp.local/orders", "erp.local/orders"])
def test_a_url_the_client_cannot_call_is_refused_when_the_routes_load(url: str) -> None:
    with pytest.raises(ValueError, match="starts with http:// or https://"):
        HttpConfig(url=url)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("refused", "the HTTP backend refused the request (422): customer C-9 is on credit hold"),
        ("refused-long", "the HTTP backend refused the request (409): " + "x" * 199 + "…"),
        ("refused-html", "the HTTP backend refused the request (422)"),
    ],
)
def test_a_refusal_says_the_backends_reason_when_it_gives_one(answer: str, said: str) -> None:
    """What a person fixing a refused copy needs: the cloud's own words, one bounded line, from a
    JSON error body only (an HTML page may echo anything)."""

    async def scenario() -> None:
        async with echo_server() as url:
            await call_once(HttpConfig(url=url + f"/x?answer={answer}", method="POST"), Call(route="r", payload={}))

    with pytest.raises(BackendRejected) as refused:
        run(scenario)
    assert str(refused.value) == said
