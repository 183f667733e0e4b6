"""HTTP backend: pooled keep-alive connections, JSON or XML bodies, timeouts, optional OAuth2 client credentials."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import zlib
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import Field, field_validator

from legacy_adapters import xmljson
from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import (
    BackendError,
    BackendFault,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Outcome,
    error_for_status,
    outcome_of_status,
)
from legacy_adapters.raw_http import MAX_ANSWER, Origin, RawReply, UpstreamError, where


class OAuth2(BackendConfig):
    """Client-credentials grant; the secret comes from an environment variable."""

    backend: str = "oauth2"
    token_url: str
    client_id: str
    client_secret_env: str
    scope: str | None = None


class HttpConfig(BackendConfig):
    backend: Literal["http"] = "http"
    url: str = Field(description="base URL; {param} placeholders are filled from path parameters")
    method: str | None = Field(default=None, description="default: the route's method")
    format: Literal["json", "xml"] = "json"
    xml_root: str = Field(default="request", description="root element name when format is xml")
    headers: dict[str, str] = Field(default_factory=dict)
    oauth2: OAuth2 | None = None
    pool_size: int = Field(default=100, ge=1)

    @field_validator("url")
    @classmethod
    def _http_or_https(cls, url: str) -> str:
        """Said when the routes load, not at the first call: the client speaks HTTP/1.1 and TLS only."""
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"an HTTP backend's url starts with http:// or https://, not {url.split('://')[0]!r}")
        return url


class _Token:
    def __init__(self, settings: OAuth2) -> None:
        self.settings = settings
        self.value: str | None = None
        self.expires = 0.0
        self.lock = asyncio.Lock()

    async def get(self, backend: HttpBackend, refresh: bool = False) -> str:
        async with self.lock:
            if self.value and not refresh and time.monotonic() < self.expires - 30:
                return self.value
            secret = os.environ.get(self.settings.client_secret_env)
            if secret is None:
                raise BackendUnavailable(
                    f"environment variable {self.settings.client_secret_env} (the OAuth2 client secret) is not set"
                )
            form = {"grant_type": "client_credentials", "client_id": self.settings.client_id, "client_secret": secret}
            if self.settings.scope:
                form["scope"] = self.settings.scope
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
            try:
                answer = await backend.send("POST", self.settings.token_url, headers, urlencode(form).encode())
            except (UpstreamError, TimeoutError, ValueError) as exc:
                raise BackendUnavailable(f"cannot reach the OAuth2 token endpoint: {_why(exc)}") from None
            if answer.status != 200:
                raise BackendUnavailable(f"the OAuth2 token endpoint answered {answer.status}")
            try:
                grant = json.loads(answer.body)
                self.value = str(grant["access_token"])
                lifetime = float(grant.get("expires_in", 300))
            except (ValueError, TypeError, KeyError, RecursionError):
                raise BackendUnavailable("the OAuth2 token endpoint answered no access_token") from None
            self.expires = time.monotonic() + lifetime
            return self.value


def _why(exc: Exception) -> str:
    """What went wrong, in words that hold no URL: the client's own message, or the error's kind."""
    return str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__


class HttpBackend(Registered):
    """Calls over the small keep-alive client (raw_http): one pool of connections per origin the
    URL template leads to, at most `pool_size` calls in flight on each."""

    name = "http"
    Config = HttpConfig

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.retry_safe = True
        self._origins: dict[str, Origin] = {}
        self._token = _Token(config.oauth2) if config.oauth2 else None

    async def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> RawReply:
        """One request to `url` through its origin's pool. Raises UpstreamError, TimeoutError, or
        ValueError for a URL that cannot be called."""
        origin, target = where(url)
        pool = self._origins.get(origin)
        if pool is None:
            pool = self._origins[origin] = Origin(url, self.config.pool_size, limit=self.config.pool_size)
        return await pool.request(method, target, headers, body, self.config.timeout)

    async def call(self, request: Call) -> Reply:
        url = self.config.url.format_map(_Params(request.params))
        method = self.config.method or ("POST" if request.writes else "GET")
        headers = {
            **_DEFAULT_HEADERS,
            **self.config.headers,
            **request.headers,
            "X-Correlation-ID": request.correlation_id,
        }
        body: bytes | None = None
        if request.payload is not None and method not in ("GET", "HEAD", "DELETE"):
            if self.config.format == "json":
                body = json.dumps(request.payload).encode()
                headers.setdefault("Content-Type", "application/json")
            else:
                try:
                    element = xmljson.from_json(self.config.xml_root, request.payload)
                except xmljson.NotXml as exc:
                    raise BackendRejected(str(exc)) from None
                body = xmljson.etree.tostring(element)
                headers["Content-Type"] = "application/xml"
        for attempt in (1, 2):
            if self._token is not None:
                headers["Authorization"] = f"Bearer {await self._token.get(self, refresh=attempt == 2)}"
            try:
                answer = await self.send(method, url, headers, body)
            except TimeoutError:
                raise BackendTimeout(f"the HTTP backend gave no answer within {self.config.timeout:g} s") from None
            except UpstreamError as exc:
                if exc.sent:  # it went out: the backend may have booked it
                    raise BackendFault(f"the HTTP backend's answer was lost: {_why(exc)}") from None
                raise BackendUnavailable(f"cannot reach the HTTP backend: {_why(exc)}") from None
            except ValueError as exc:
                raise BackendUnavailable(f"cannot reach the HTTP backend: {_why(exc)}") from None
            if answer.status == 401 and self._token is not None and attempt == 1:
                continue  # the token may have been revoked: fetch a new one once
            return self._reply(answer, _decoded(answer) if 200 <= answer.status < 300 else b"")
        raise error_for_status(401, "the HTTP backend")  # the token was refused twice

    def _reply(self, answer: RawReply, data: bytes) -> Reply:
        """A 2xx answer as a Reply; any other status raised as what it says about the call (errors.py)."""
        status = answer.status
        if not 200 <= status < 300:
            said = _reason(answer) if outcome_of_status(status) in (Outcome.refused, Outcome.not_found) else ""
            raise error_for_status(status, "the HTTP backend", answer.headers.get("retry-after"), said)
        content_type = answer.headers.get("content-type", "")
        body: Any = None
        if data:
            try:
                if "json" in content_type:
                    body = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
                elif "xml" in content_type:
                    body = xmljson.to_json(xmljson.parse(data))
                else:
                    body = data.decode("utf-8", "replace")
            except (ValueError, RecursionError) as exc:  # malformed, hostile (HostileXml is one), too deep
                raise BackendFault(
                    f"the HTTP backend answered a body it declared {content_type or 'text'} "
                    f"but that cannot be read: {str(exc)[:200]}"
                ) from None
        return Reply(status, body)

    async def close(self) -> None:
        for pool in self._origins.values():
            pool.close()
        self._origins.clear()


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: an answer holding them cannot be passed on as JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


# What every call says of itself; a route's `headers:` and the consumer's forwarded ones come after.
_DEFAULT_HEADERS = {"User-Agent": "banyan-gateway", "Accept": "*/*"}


REASON_CHARS = 200


def _reason(answer: RawReply) -> str:
    """Why a backend refused, from its JSON error body: problem details' `detail` or `title`, or a
    `message`, `error_description` or `error` (`error.message`), as one line of at most 200
    characters; "" when it says nothing readable. Never the body itself, which may echo the request."""
    if "json" not in answer.headers.get("content-type", "").lower():
        return ""
    try:
        body = json.loads(_decoded(answer))
    except (BackendError, ValueError, RecursionError):
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    found = [body.get(name) for name in ("detail", "message", "error_description", "title")]
    found += [error.get("message") if isinstance(error, dict) else error]
    said = next((value for value in found if isinstance(value, str) and value.strip()), "")
    line = " ".join("".join(c if c.isprintable() else " " for c in said).split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _decoded(answer: RawReply) -> bytes:
    """The answer's body, inflated when the server compressed it anyway (nothing asked it to), and
    never past the client's size limit."""
    coding = answer.headers.get("content-encoding", "identity").lower()
    if coding in ("identity", "") or not answer.body:
        return answer.body
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise BackendFault(f"the HTTP backend answered in a Content-Encoding the gateway cannot read: {coding[:40]}")
    inflater = zlib.decompressobj(wbits=47 if coding != "deflate" else 15)  # 47: gzip or zlib, by header
    try:
        data = inflater.decompress(answer.body, MAX_ANSWER + 1)
    except zlib.error:
        if coding != "deflate":
            raise BackendFault("the HTTP backend's compressed answer cannot be read") from None
        data = zlib.decompressobj(wbits=-15).decompress(answer.body, MAX_ANSWER + 1)  # raw deflate, as some send
    if len(data) > MAX_ANSWER or inflater.unconsumed_tail:
        raise BackendFault("the HTTP backend's answer is too large once inflated")
    return data


def _segment(value: str) -> str:
    """`value` as one URL segment: quoted whole, and `.` or `..` (which quoting leaves as they are,
    and a server resolves as "here" and "up") with their dots escaped too."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


class _Params(dict[str, str]):
    """Path parameters for a URL template, each encoded as one URL segment: `T1?admin=true`,
    `a#b` or `..%2F` from a consumer's path must not change which resource the backend sees."""

    def __init__(self, params: dict[str, str]) -> None:
        super().__init__({key: _segment(str(value)) for key, value in params.items()})

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
