"""/docs/api: Swagger UI over the gateway's own contract, every asset from the gateway itself."""

from __future__ import annotations

from typing import Any

import requests

from tests.gateway.conftest import Gateway


def test_the_reference_lists_every_route_and_loads_nothing_from_elsewhere(gateway: Gateway, browser: Any) -> None:
    page = browser.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{gateway.url}/docs/api")
    page.wait_for_selector(".opblock")
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    contract = requests.get(f"{gateway.url}/openapi.json", timeout=5).json()
    assert {text.replace("\u200b", "") for text in shown} == set(contract["paths"])
    assert errors == [] and all(url.startswith(gateway.url) or url.startswith("data:") for url in asked)
    page.close()


def test_the_docs_page_links_the_reference_and_unknown_assets_are_404(gateway: Gateway) -> None:
    assert "/docs/api" in requests.get(f"{gateway.url}/docs", timeout=5).text
    bundle = requests.get(f"{gateway.url}/docs/api/swagger-ui-bundle.js", timeout=5)
    assert bundle.headers["Cache-Control"] == "public, max-age=3600"  # 1.5 MB: fetched once an hour at most
    assert requests.get(f"{gateway.url}/docs/api", timeout=5).headers["Cache-Control"] == "no-cache"
    missing = requests.get(f"{gateway.url}/docs/api/../../etc/passwd", timeout=5)
    assert missing.status_code == 404
    odd = requests.get(f"{gateway.url}/docs/api/swagger-ui.js.map", timeout=5)
    assert odd.status_code == 404 and odd.headers["Content-Type"].startswith("application/problem+json")
