"""Telling a webhook: one JSON POST, a failure logged and never raised. Credentials written in the
URL (https://user:secret@hooks.example/…) are sent as Basic auth — urllib would take them for part
of the host name — and never reach a log line."""

from __future__ import annotations

import base64
import json
import logging
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

log = logging.getLogger("banyan.cutover")


def post(url: str, payload: dict[str, Any], what: str) -> None:
    """POST `payload` as JSON to `url`; `what` names the webhook in the warning if it fails."""
    headers = {"Content-Type": "application/json"}
    try:
        parts = urlsplit(url)
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
        urllib.request.urlopen(request, timeout=5).close()
    except (OSError, ValueError) as exc:  # unreachable, refused, an HTTP error, a URL urllib cannot use
        log.warning("%s webhook failed: %s", what, type(exc).__name__ if isinstance(exc, ValueError) else exc)
