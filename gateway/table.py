"""The route table: each route compiled once at load, and matched against a request's method and path.

Routes are matched here rather than by aiohttp's router, so a changed routes folder can be swapped
in while requests are in flight: each request keeps the table it started with.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from cutover.compare import Comparator
from cutover.decide import Mode, Rule, Side, starting
from cutover.runtime import Cutover
from gateway.envelope_xpath import EnvelopeXPath, XPathError, compile_xpath
from gateway.inputs import schema_validator
from gateway.problems import Problem
from gateway.resilience import Breaker, Bulkhead, Pause, Pauses
from legacy_adapters import Backend, create
from legacy_adapters.raw_http import Origin
from specs.canonical import Contract, load_canonical, reference
from specs.files import RouteError, load_routes
from specs.routes import Route, SideSpec


@dataclass
class Bound:
    """One side of a route for one entity: its backend, breaker, bulkhead and compiled mappings."""

    backend: Backend
    breaker: Breaker
    request_map: Any
    response_map: Any
    bulkhead: Bulkhead | None = None
    pool: str = ""  # the bulkhead's name, for /metrics
    pause: Pause = field(default_factory=Pause)  # shared by every route calling the same pool or origin


def _origin(url: object) -> str | None:
    """scheme://host:port of a backend that has a URL: a throttled ERP is throttled for every route."""
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].rsplit('@', 1)[-1].lower()}"


class Pools:
    """This process's bulkheads by name. They outlive a reload of the routes, so calls in flight
    still count against the limit the reloaded routes use; a changed limit starts a new bulkhead."""

    def __init__(self) -> None:
        self._by_name: dict[str, Bulkhead] = {}
        self.pauses = Pauses()  # what a side's Retry-After holds back, by pool or origin

    def get(self, name: str, limit: int, queue: int, wait: float) -> Bulkhead:
        found = self._by_name.get(name)
        if found is None or (found.limit, found.queue, found.wait) != (limit, queue, wait):
            found = self._by_name[name] = Bulkhead(limit, queue, wait)
        return found

    def items(self) -> list[tuple[str, Bulkhead]]:
        return sorted(self._by_name.items())


class Compiled:
    """A route as the request path uses it: its matcher, validator, XPaths and comparator built once
    at load, and its sides bound (backend, breaker, mappings) on first use per entity."""

    def __init__(
        self, route: Route, base: Path, canonical: dict[str, dict[str, Any]] | None = None, pools: Pools | None = None
    ) -> None:
        self.route = route
        self.base = base
        self.pools = pools if pools is not None else Pools()
        self.mode = Mode(route.cutover.mode)
        self.contract: Contract | None = None  # the canonical answer, when the response refers to one
        self.path_parameters = frozenset(route.operation.parameters if route.operation else ())
        if route.operation is not None:
            name = reference(route.operation.response)
            if name is not None:
                extends = {entity: own.extends for entity, own in route.entities.items() if own.extends}
                self.contract = Contract(name, (canonical or {})[name], extends)
            self.method = route.operation.method
            pattern = re.sub(
                r"{(\w+)}", r"(?P<\1>[^/]+)", re.escape(route.operation.path).replace(r"\{", "{").replace(r"\}", "}")
            )
            schema = route.operation.request
            self.validator = schema_validator(schema) if schema else None
        else:
            assert route.passthrough is not None
            self.method = "POST"
            pattern = re.escape(route.passthrough.path)
            self.validator = None
            self.entity_xpath = self._xpath("entity_xpath", route.passthrough.entity_xpath)
            self.key_xpath = self._xpath("key_xpath", route.passthrough.key_xpath)
            urls = {Side.legacy: route.passthrough.legacy, Side.cloud: route.passthrough.cloud}
            breaker = route.resilience.breaker
            self.soap_sides = {
                side: (Origin(url), Breaker(breaker.failures, breaker.reset)) for side, url in urls.items() if url
            }
            self.soap_pauses = {
                side: self.pools.pauses.get(_origin(url) or f"{route.name}/{side.value}")
                for side, url in urls.items()
                if url
            }
        self.regex = re.compile(f"^{pattern}$")
        self._bound: dict[tuple[str, str], Bound] = {}
        self.comparator = Comparator(route.compare)
        values = route.entity.values if route.entity is not None else None
        self.known_entities = frozenset([*(values or []), *route.entities])
        self.retiring: Retiring | None = None  # set by compile_table: a successor is another route
        self.owners: tuple[str, ...] = (route.name,)  # set by compile_table: the routes sharing its keys' writes

    def label(self, entity: str | None) -> str:
        """The entity as a metric label: only entities the route lists (or, for a route that lists
        none, the deployment's routes do), so random names cannot grow /metrics; anything else is `other`."""
        if not entity:
            return ""
        return entity if entity in self.known_entities else "other"

    def _xpath(self, name: str, expression: str | None) -> EnvelopeXPath | None:
        try:
            return compile_xpath(expression) if expression else None
        except XPathError as exc:
            raise RouteError([f"route {self.route.name}: {name} is not an XPath the gateway can read: {exc}"]) from None

    def bound(self, side: str, entity: str | None) -> Bound:
        spec = self.route.side(side, entity)
        if spec is None:
            raise Problem(501, "No backend", f"route {self.route.name} has no {side} side")
        # entities without an override share the route's backend (and its breaker)
        own = self.route.entities.get(entity or "")
        owner = entity or "" if own is not None and getattr(own, side) is not None else ""
        found = self._bound.get((side, owner))
        if found is None:
            found = self._bound[(side, owner)] = self._bind(spec, f"{self.route.name}/{side}/{owner or '*'}")
        return found

    def _bind(self, spec: SideSpec, name: str) -> Bound:
        breaker = self.route.resilience.breaker
        bound = Bound(
            backend=create(spec.backend),
            breaker=Breaker(breaker.failures, breaker.reset),
            request_map=spec.request.compile(self.base) if spec.request else None,
            response_map=spec.response.compile(self.base) if spec.response else None,
        )
        limits = spec.concurrency
        if limits is not None:
            bound.pool = limits.pool or name
            wait = limits.wait if limits.wait is not None else spec.backend.timeout
            bound.bulkhead = self.pools.get(bound.pool, limits.limit, limits.queue, wait)
        bound.pause = self.pools.pauses.get(bound.pool or _origin(getattr(spec.backend, "url", None)) or name)
        return bound

    def rule(self, cutover: Cutover | None, entity: str | None) -> Rule:
        """The rung this route serves `entity` on: the store's rule, or where the route file starts it."""
        if cutover is None:
            return starting(self.route.name, entity or "*", self.mode)
        return cutover.rule(self.route.name, entity, self.mode)

    async def close(self) -> None:
        for bound in self._bound.values():
            await bound.backend.close()
        for upstream, _ in getattr(self, "soap_sides", {}).values():
            upstream.close()


@dataclass(frozen=True)
class Retiring:
    """What a deprecated version answers with (RFC 9745 Deprecation, RFC 8594 Sunset, a Link to its
    successor), and from when it answers 410 Gone instead."""

    route: str
    since: float  # epoch seconds
    sunset: float
    successor: tuple[str, str, str] | None  # (route, method, path template)
    link: str | None

    def headers(self, params: dict[str, str]) -> dict[str, str]:
        links = []
        if self.successor is not None:
            path = re.sub(r"{(\w+)}", lambda m: quote(params.get(m.group(1), m.group(0)), safe=""), self.successor[2])
            links.append(f'<{path}>; rel="successor-version"')
        if self.link:
            links.append(f'<{self.link}>; rel="deprecation"; type="text/html"')
        found = {"Deprecation": f"@{int(self.since)}", "Sunset": formatdate(self.sunset, usegmt=True)}
        return found | ({"Link": ", ".join(links)} if links else {})

    def gone(self, params: dict[str, str]) -> Problem:
        instead = ""
        if self.successor is not None:
            name, method, path = self.successor
            instead = f"; use {method} {path} (route {name})"
        day = datetime.fromtimestamp(self.sunset, UTC).date()
        return Problem(
            410, "Version retired", f"{self.route} stopped answering on {day}{instead}", self.headers(params)
        )


def _retiring(compiled: Compiled, by_name: dict[str, Compiled]) -> Retiring | None:
    operation = compiled.route.operation
    deprecation = operation.deprecated if operation else None
    if deprecation is None:
        return None
    successor = by_name[deprecation.successor].route if deprecation.successor else None
    target = None
    if successor is not None and successor.operation is not None:
        target = (successor.name, successor.operation.method, successor.operation.path)
    since, sunset = (
        datetime.combine(day, datetime.min.time(), UTC).timestamp() for day in (deprecation.since, deprecation.sunset)
    )
    return Retiring(compiled.route.name, since, sunset, target, deprecation.link)


@dataclass
class Table:
    routes: list[Compiled]
    loaded_at: float = field(default_factory=time.time)
    canonical: dict[str, dict[str, Any]] = field(default_factory=dict)  # the schemas beside the route files
    pools: Pools = field(default_factory=Pools)

    def match(self, method: str, path: str) -> tuple[Compiled, dict[str, str]]:
        allowed: list[str] = []
        for compiled in self.routes:
            found = compiled.regex.match(path)
            if found:
                # HEAD is GET without the body (aiohttp drops it): monitors and caches ask so
                if compiled.method == method or (method == "HEAD" and compiled.method == "GET"):
                    return compiled, found.groupdict()
                allowed += [compiled.method, "HEAD"] if compiled.method == "GET" else [compiled.method]
        if allowed:
            raise Problem(
                405,
                "Method not allowed",
                f"{path} answers {', '.join(sorted(set(allowed)))}",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise Problem(404, "No such route", f"no route serves {method} {path}; see /openapi.json")

    async def close(self) -> None:
        for compiled in self.routes:
            await compiled.close()


ROUTE = web.RequestKey("route", Compiled)
PARAMS = web.RequestKey("params", dict)


@dataclass
class Routing:
    """The table in force; reloading swaps `table`, and each request keeps the one it matched in."""

    table: Table


def _records(route: Route) -> str:
    """What a route's business key names: its `records`, else its path (whatever the method)."""
    if route.records:
        return f"records:{route.records}"
    return f"path:{route.operation.path}" if route.operation is not None else f"route:{route.name}"


def compile_table(folder: Path, pools: Pools | None = None) -> Table:
    """The routes in `folder`, compiled; a reload passes the table's `pools` on to the new one."""
    routes = load_routes(folder)  # checks every canonical reference
    canonical = load_canonical(folder)
    pools = pools if pools is not None else Pools()
    compiled = [Compiled(route, folder, canonical, pools) for route in routes]
    # A route that lists no entities (a passthrough reading its entity from the envelope) labels
    # the entities some route of the deployment names; anything else is still `other`.
    every = frozenset().union(*(c.known_entities for c in compiled))
    by_name = {route.route.name: route for route in compiled}
    owners: dict[str, list[str]] = {}
    for route in compiled:
        owners.setdefault(_records(route.route), []).append(route.route.name)
    for route in compiled:
        route.known_entities = route.known_entities or every
        route.retiring = _retiring(route, by_name)
        route.owners = tuple(owners[_records(route.route)])
    return Table(compiled, canonical=canonical, pools=pools)
