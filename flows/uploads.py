"""A flow's side that takes files over HTTP (the cloud ERP's EDI or import API), and what every side
that is called rather than written to answers (an upload, a managed route).

    cloud:
      upload: {url: "https://erp.example/api/edi/inbound", token_env: CLOUD_EDI_TOKEN, idempotent: true}

The file is sent as the request body, streamed from disk, with the document's media type
(application/EDI-X12, application/EDIFACT, text/csv) and an `Idempotency-Key` that is the same for
every attempt of one file to one side. Its answer is classified as a route's backend answer is
(legacy_adapters.errors): made (2xx: delivered, and the body kept as the side's answer to the file,
compared with the other side's of the same kind), not made (429, 503, a connection refused: nothing
was booked, sent again later), refused (another 4xx: the side will not take this file), not
authorised (the token: held for the operators, sent again later) or unknown (a timeout or a 5xx
after the file was sent). An unknown upload is sent again with the same key where the endpoint
honours Idempotency-Key (`idempotent: true`), and otherwise is in doubt, for a person: never
re-sent blindly.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from legacy_adapters.errors import Outcome, outcome_of_status
from specs.flows import Upload

MEDIA_TYPES = {"x12": "application/EDI-X12", "edifact": "application/EDIFACT", "csv": "text/csv"}
ANSWER_BYTES = 1 << 20  # what is kept of an answer: enough for any acknowledgement, never a flood


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    status: int | None  # None: no HTTP answer came
    answer: dict[str, Any] | None  # the body, as JSON (or {"text": …}), when it was made
    reason: str  # for the journey and the log: the status and what the side said, never the token


class Routes(Protocol):
    """The gateway's managed routes, as a flow's runner (in its thread) calls one side of them: to
    send a file's document mapped into the canonical entity, or to read back what a side booked."""

    def call(
        self, route: str, side: str, entity: str, payload: Any, params: dict[str, str], key: str | None, writes: bool
    ) -> Sent: ...


def key_for(flow: str, digest: str, side: str) -> str:
    """One file to one side is one intent, whoever sends it and however often."""
    return f"banyan-{flow}-{digest[:32]}-{side}"


def send(upload: Upload, path: Path, key: str, document: str | None) -> Sent:
    """POST (or PUT) the file; what became of it."""
    headers = {
        "Content-Type": upload.content_type or MEDIA_TYPES.get(document or "", "application/octet-stream"),
        "Idempotency-Key": key,
        "Content-Length": str(path.stat().st_size),
        "Accept": "application/json, text/plain;q=0.5, */*;q=0.1",
    }
    if upload.token_env:
        token = os.environ.get(upload.token_env)
        if token is None:
            return Sent(Outcome.not_authorised, None, None, f"the variable {upload.token_env} (the token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    try:
        with path.open("rb") as body:
            request = urllib.request.Request(upload.url, data=body, headers=headers, method=upload.method)
            secure = ssl.create_default_context()
            with urllib.request.urlopen(request, timeout=upload.timeout_seconds, context=secure) as reply:
                data = reply.read(ANSWER_BYTES)
                return Sent(Outcome.made, reply.status, _answer(data), f"{reply.status} from {_where(upload)}")
    except urllib.error.HTTPError as exc:
        said = exc.read(2000).decode("utf-8", "replace").strip().replace("\n", " ")[:300]
        return Sent(outcome_of_status(exc.code), exc.code, None, f"{exc.code} from {_where(upload)}: {said}")
    except (ConnectionRefusedError, socket.gaierror) as exc:  # nothing reached the side
        return Sent(Outcome.not_made, None, None, f"{_where(upload)} cannot be reached: {exc}")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
            return Sent(Outcome.not_made, None, None, f"{_where(upload)} cannot be reached: {exc.reason}")
        return Sent(Outcome.unknown, None, None, f"{_where(upload)}: {exc.reason}")
    except (TimeoutError, http.client.HTTPException, OSError) as exc:  # sent, and no answer says what became of it
        return Sent(Outcome.unknown, None, None, f"{_where(upload)}: {exc or type(exc).__name__}")


def _where(upload: Upload) -> str:
    """The URL without its query (which may carry a signature)."""
    return upload.url.split("?", 1)[0]


def _answer(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data) if data.strip() else {}
    except ValueError:
        return {"text": data.decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {"answer": parsed}
