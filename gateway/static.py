"""Files the gateway serves itself (the console, the API reference): by name from a fixed list,
never a path from the request, with headers that keep a browser to this origin."""

from __future__ import annotations

from importlib.resources.abc import Traversable

from aiohttp import web

from gateway.problems import Problem

Files = dict[str, tuple[Traversable, str]]  # name in the URL ("" for the page) → (file, content type)


def serve_file(files: Files, name: str, what: str, policy: str, cache_seconds: int = 0) -> web.Response:
    """`name` from `files` with `policy` as its Content-Security-Policy; anything else is 404. A file
    other than the page may be cached for `cache_seconds`; the page is asked for again each time."""
    if name not in files:
        raise Problem(404, "No such file", f"{what} has no {name!r}")
    path, kind = files[name]
    response = web.Response(body=path.read_bytes(), content_type=kind, charset="utf-8")
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = f"public, max-age={cache_seconds}" if name and cache_seconds else "no-cache"
    return response
