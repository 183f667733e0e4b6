"""HTTP backend: a pooled aiohttp client, JSON or XML bodies, timeouts, optional OAuth2 client credentials."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from pydantic import Field

from legacy_adapters import xmljson
from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import BackendFault, BackendRejected, BackendTimeout, BackendUnavailable


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


class _Token:
    def __init__(self, settings: OAuth2) -> None:
        self.settings = settings
        self.value: str | None = None
        self.expires = 0.0
        self.lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession, refresh: bool = False) -> str:
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
            try:
                async with session.post(self.settings.token_url, data=form) as response:
                    if response.status != 200:
                        raise BackendUnavailable(f"the OAuth2 token endpoint answered {response.status}")
                    grant = await response.json()
            except aiohttp.ClientError as exc:
                raise BackendUnavailable(f"cannot reach the OAuth2 token endpoint: {type(exc).__name__}") from None
            self.value = str(grant["access_token"])
            self.expires = time.monotonic() + float(grant.get("expires_in", 300))
            return self.value


class HttpBackend(Registered):
    name = "http"
    Config = HttpConfig

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.retry_safe = True
        self._session: aiohttp.ClientSession | None = None
        self._token = _Token(config.oauth2) if config.oauth2 else None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.config.pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
        return self._session

    async def call(self, request: Call) -> Reply:
        session = self._client()
        url = self.config.url.format_map(_Params(request.params))
        method = self.config.method or ("POST" if request.writes else "GET")
        headers = {**self.config.headers, **request.headers, "X-Correlation-ID": request.correlation_id}
        body: dict[str, Any] = {}
        if request.payload is not None and method not in ("GET", "HEAD", "DELETE"):
            if self.config.format == "json":
                body["json"] = request.payload
            else:
                try:
                    element = xmljson.from_json(self.config.xml_root, request.payload)
                except xmljson.NotXml as exc:
                    raise BackendRejected(str(exc)) from None
                body["data"] = xmljson.etree.tostring(element)
                headers["Content-Type"] = "application/xml"
        for attempt in (1, 2):
            if self._token is not None:
                headers["Authorization"] = f"Bearer {await self._token.get(session, refresh=attempt == 2)}"
            try:
                async with session.request(method, url, headers=headers, **body) as response:
                    if response.status == 401 and self._token is not None and attempt == 1:
                        continue  # the token may have been revoked: fetch a new one once
                    data = await response.read()
                    return self._reply(response.status, response.headers.get("Content-Type", ""), data)
            except TimeoutError:
                raise BackendTimeout(f"the HTTP backend gave no answer within {self.config.timeout:g} s") from None
            except aiohttp.ClientConnectionError as exc:
                raise BackendUnavailable(f"cannot reach the HTTP backend: {type(exc).__name__}") from None
        raise BackendUnavailable("the HTTP backend refused the OAuth2 token twice")

    def _reply(self, status: int, content_type: str, data: bytes) -> Reply:
        body: Any = None
        if data:
            try:
                if "json" in content_type:
                    body = json.loads(data)
                elif "xml" in content_type:
                    body = xmljson.to_json(xmljson.parse(data))
                else:
                    body = data.decode("utf-8", "replace")
            except (ValueError, RecursionError) as exc:  # malformed, hostile (HostileXml is one), too deep
                raise BackendFault(
                    f"the HTTP backend answered a body it declared {content_type or 'text'} "
                    f"but that cannot be read: {str(exc)[:200]}"
                ) from None
        if status >= 500:
            raise BackendFault(f"the HTTP backend answered {status}")
        if status in (400, 409, 422):
            raise BackendRejected(f"the HTTP backend refused the request ({status})")
        return Reply(status, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Params(dict[str, str]):
    """Path parameters for a URL template, each encoded as one URL segment: `T1?admin=true`,
    `a#b` or `..%2F` from a consumer's path must not change which resource the backend sees."""

    def __init__(self, params: dict[str, str]) -> None:
        super().__init__({key: quote(str(value), safe="") for key, value in params.items()})

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
