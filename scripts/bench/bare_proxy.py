"""A bare aiohttp forwarding proxy: the Python ceiling the gateway's passthrough is measured against.

    python scripts/bench/bare_proxy.py PORT BACKEND_URL

It does nothing but forward: read the body, POST it to the backend with the content type, return
the answer. No policy, no parsing, no logging — what any aiohttp proxy costs at the least.
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web


def main() -> None:
    port, backend = int(sys.argv[1]), sys.argv[2]
    try:
        import uvloop  # the gateway uses it where installed; so does its ceiling

        uvloop.install()
    except ImportError:
        pass

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app["client"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        yield
        await app["client"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/octet-stream")}
        async with request.app["client"].post(backend, data=body, headers=headers) as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type=answer.content_type)

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
