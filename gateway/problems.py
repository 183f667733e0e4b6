"""Errors leave the gateway as RFC 9457 problem+json, with the correlation id, never a traceback."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str = "", correlation_id: str = "", **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update(extra)
    headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM, headers=headers)


class Problem(Exception):
    """Raise anywhere in a handler or policy to answer with a problem."""

    def __init__(self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.extra = extra

    def response(self, correlation_id: str) -> web.Response:
        answer = problem(self.status, self.title, self.detail, correlation_id, **self.extra)
        answer.headers.update(self.headers)
        return answer


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}
