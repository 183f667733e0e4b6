"""OpenAPI 3.1 for the managed routes, and a plain docs page that needs no CDN."""

from __future__ import annotations

import html
import importlib.resources
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.accepted import STATUS_PATH
from gateway.problems import KINDS, PROBLEM_SCHEMA, type_uri
from gateway.static import Files, serve_file
from specs.canonical import reference
from specs.routes import Route, tags_of

_PROBLEMS = {
    "400": "Malformed request",
    "401": "Missing or unknown API key",
    "403": "Key not scoped to this route or entity",
    "404": "No such resource",
    "413": "Body too large",
    "415": "Not JSON",
    "422": "Request does not match the schema, or the backend refused it",
    "429": "Rate limit reached",
    "502": "Backend fault",
    "503": "Backend unavailable or its circuit breaker open",
    "504": "Backend timed out",
}


_ACCEPTED = {
    "description": "accepted: recorded, and made at the pace the backend takes; the Location (status URL) "
    "tells how it ended",
    "headers": {
        "Location": {"schema": {"type": "string"}, "description": "the status URL"},
        "Retry-After": {"schema": {"type": "integer"}, "description": "seconds before asking the status URL"},
    },
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["status", "statusUrl"],
                "properties": {
                    "status": {"const": "pending"},
                    "statusUrl": {"type": "string"},
                    "route": {"type": "string"},
                    "entity": {"type": ["string", "null"]},
                },
            }
        }
    },
}
_STATUS = {
    "operationId": "accepted-status",
    "summary": "Where a write accepted with 202 stands: pending, done (with the answer), failed, in_doubt",
    "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
    "responses": {
        "200": {
            "description": "the write's state",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {"enum": ["pending", "done", "failed", "in_doubt"]},
                            "answer": {"type": "object"},
                            "problem": {"type": "object"},
                            "attempts": {"type": "integer"},
                        },
                    }
                }
            },
        },
        "404": {
            "description": "no write accepted for this key has this status URL",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
}


def _problem_responses() -> dict[str, Any]:
    return {
        code: {
            "description": text,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code, text in _PROBLEMS.items()
    }


def _schema(
    schema: dict[str, Any] | None, canonical: dict[str, dict[str, Any]] | None, components: dict[str, Any]
) -> dict[str, Any]:
    """The schema as OpenAPI shows it: a canonical one becomes a component the operation refers to."""
    name = reference(schema)
    if name is None or canonical is None or name not in canonical:
        return schema or {}
    components[name] = {key: value for key, value in canonical[name].items() if key not in ("$schema", "$id")}
    return {"$ref": f"#/components/schemas/{name}"}


def openapi(routes: list[Route], canonical: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the managed routes; canonical schemas are its components."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    for route in routes:
        if route.operation is None:
            continue
        operation = route.operation
        entity = route.entity if route.entity is not None and route.entity.from_ == "path" else None
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": entity.values}
                if entity is not None and entity.name == name and entity.values
                else {"type": "string", "pattern": "^[^/]+$"},
            }
            for name in operation.parameters
        ]
        if route.writes:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": operation.idempotency_key == "required",
                    "schema": {"type": "string", "maxLength": 255},
                }
            )
        success = "201" if route.writes and operation.method == "POST" else "200"
        entry: dict[str, Any] = {
            "operationId": route.name,
            "summary": operation.summary or route.description or route.name,
            "parameters": parameters,
            "responses": {
                success: {
                    "description": "the answer of the system that serves this entity",
                    "content": {"application/json": {"schema": _schema(operation.response, canonical, components)}},
                },
                "202": {
                    "description": "accepted by a file-drop backend; processed later",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_problem_responses(),
            },
        }
        entry["tags"] = tags_of(route)
        if route.owner is not None:  # who answers for it, where a consumer looks
            entry["x-owner"] = route.owner.shown()
        if route.asynchronous:  # the answer comes later, from the status URL
            del entry["responses"][success]
            entry["responses"]["202"] = _ACCEPTED
        if (deprecation := operation.deprecated) is not None:
            entry["deprecated"] = True
            instead = f"; its successor is `{deprecation.successor}`" if deprecation.successor else ""
            more = f" ({deprecation.link})" if deprecation.link else ""
            entry["description"] = (
                f"Deprecated since {deprecation.since}; answers 410 Gone from {deprecation.sunset}{instead}{more}. "
                "Every answer carries Deprecation, Sunset and Link headers."
            )
            entry["responses"]["410"] = {
                "description": "this version passed its sunset",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        if operation.method in ("POST", "PUT", "PATCH"):
            request_schema = _schema(operation.request, canonical, components) if operation.request else None
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request_schema or {"type": "object"}}},
            }
        added = {entity: own.extends for entity, own in route.entities.items() if own.extends}
        if added and reference(operation.response):
            lines = [
                f"{entity} adds under `extensions`: {', '.join(sorted(fields))}" for entity, fields in added.items()
            ]
            entry["description"] = "\n\n".join([*filter(None, [entry.get("description")]), *lines])
        paths.setdefault(operation.path, {})[operation.method.lower()] = entry
    for route in routes:
        if route.passthrough is not None:
            paths.setdefault(route.passthrough.path, {})["post"] = _passthrough(route)
    if any(route.asynchronous for route in routes):
        paths[STATUS_PATH] = {"get": _STATUS}
    entries = [entry for operations in paths.values() for entry in operations.values()]
    used = sorted({tag for entry in entries for tag in entry.get("tags", ())})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Banyan gateway", "version": "1", "description": "Managed APIs in front of the legacy ERPs."},
        "tags": [{"name": tag} for tag in used],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "security": [{"apiKey": []}],
    }


def _passthrough(route: Route) -> dict[str, Any]:
    """A SOAP passthrough as an operation: the envelope in, the serving side's envelope out."""
    assert route.passthrough is not None
    soap = {"text/xml": {"schema": {"type": "string"}}, "application/soap+xml": {"schema": {"type": "string"}}}
    said = [
        "SOAP passthrough: the consumer's envelope goes as it is to the side that serves its legal entity "
        "on this route's rung (legacy, the cloud, or both with the answers compared), and that side's "
        "envelope comes back as it is.",
    ]
    if route.passthrough.entity_xpath:
        said.append(f"The legal entity is read from the envelope: `{route.passthrough.entity_xpath}`.")
    if route.passthrough.key_xpath:
        said.append(f"The business key: `{route.passthrough.key_xpath}`.")
    entry: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.description or route.name,
        "description": " ".join(said),
        "tags": tags_of(route),
        "parameters": [{"name": "SOAPAction", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": soap},
        "responses": {
            "200": {"description": "the serving side's SOAP answer", "content": soap},
            "500": {
                "description": "the serving side's SOAP Fault (SOAP 1.1 answers a fault with 500)",
                "content": soap,
            },
            **_problem_responses(),
        },
    }
    if route.owner is not None:
        entry["x-owner"] = route.owner.shown()
    return entry


def docs_page(routes: list[Route]) -> str:
    rows = []
    for route in routes:
        if route.operation is not None:
            rows.append(
                f"<tr><td><code>{route.operation.method}</code></td><td><code>{html.escape(route.operation.path)}</code></td>"
                f"<td>{html.escape(route.operation.summary or route.description or route.name)}</td></tr>"
            )
        elif route.passthrough is not None:
            rows.append(
                f"<tr><td><code>POST</code></td><td><code>{html.escape(route.passthrough.path)}</code></td>"
                f"<td>SOAP passthrough: {html.escape(route.description or route.name)}</td></tr>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Banyan gateway</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}</style></head>"
        "<body><h1>Banyan gateway</h1><p>Send your key in <code>X-API-Key</code>. The machine-readable contract is "
        "<a href='/openapi.json'>/openapi.json</a>, and <a href='/docs/api'>/docs/api</a> is its reference to read "
        "and try; errors are RFC 9457 <code>application/problem+json</code>.</p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th></tr>{''.join(rows)}</table>"
        "<h2>Problems</h2><p>Each problem's <code>type</code> points here.</p>"
        f"<table><tr><th>title</th><th>what to do</th></tr>{_problem_rows()}</table></body></html>"
    )


def home_page(console: bool) -> str:
    """`GET /`: where a person who typed the gateway's address goes next."""
    links = [
        ("/docs", "the routes it serves, and what each problem means"),
        ("/docs/api", "the API reference, to read and try"),
        ("/openapi.json", "the machine-readable contract"),
        *([("/console", "the migration console (admin key)")] if console else []),
        ("/metrics", "Prometheus metrics"),
        ("/healthz", "liveness"),
    ]
    items = "".join(f"<li><a href='{path}'>{path}</a> — {what}</li>" for path, what in links)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Banyan gateway</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:40em}li{margin:.3em 0}</style></head>"
        "<body><h1>Banyan gateway</h1><p>Managed APIs in front of legacy ERPs.</p>"
        f"<ul>{items}</ul></body></html>"
    )


def _problem_rows() -> str:
    return "".join(
        f"<tr id='{type_uri(title).partition('#')[2]}'><td>{html.escape(title)}</td><td>{html.escape(advice)}</td></tr>"
        for title, advice in sorted(KINDS.items())
    )


DOCS = Path(__file__).parent / "docs"
SWAGGER_UI = importlib.resources.files("swagger_ui") / "static"  # Swagger UI 5 (it reads OpenAPI 3.1)
API_FILES: Files = {
    "": (DOCS / "api.html", "text/html"),
    "api.js": (DOCS / "api.js", "text/javascript"),
    "swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui-standalone-preset.js": (SWAGGER_UI / "swagger-ui-standalone-preset.js", "text/javascript"),
}


async def api_reference(request: web.Request) -> web.Response:
    """Swagger UI over /openapi.json, its files from the swagger-ui-py wheel, served from here: no CDN."""
    policy = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"  # Swagger UI styles inline
    return serve_file(API_FILES, request.match_info.get("asset", ""), "the API reference", policy, cache_seconds=3600)
