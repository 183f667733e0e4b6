"""A webhook URL with credentials in it: sent as Basic auth to the host, and never logged."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from cutover.webhook import post
from tests.gateway.conftest import app_in_thread, free_port


def test_userinfo_is_sent_as_basic_auth(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str | None, object]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    with app_in_thread(app) as url, caplog.at_level(logging.WARNING):
        post(url.replace("http://", "http://ops:p%40ss-w0rd@") + "/hook", {"event": "guardrail"}, "guardrail")
    assert seen == [("Basic b3BzOnBAc3MtdzByZA==", {"event": "guardrail"})]  # ops:p@ss-w0rd
    assert caplog.records == []


def test_a_failing_webhook_is_one_warning_without_its_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        post(f"http://ops:s3cret@127.0.0.1:{free_port()}/hook", {"event": "x"}, "SLO")
        post("http://ops:s3cret@[::1/broken", {"event": "x"}, "SLO")
    assert [r.getMessage().startswith("SLO webhook failed") for r in caplog.records] == [True, True]
    assert "s3cret" not in caplog.text
