"""Route specs (`routes/*.yaml`): the public operation, where entity and key come from, the backends.

    routes:
      - name: order-status
        operation: {method: GET, path: /v1/{entity}/orders/{orderId}}
        entity: {from: path, name: entity}
        key: {from: path, name: orderId}
        legacy: {backend: soap, url: http://erp/OrderService, namespace: urn:erp, operation: GetOrderStatus,
                 request: {map: {orderId: /orderId}}}
        cloud: {backend: http, url: https://cloud-erp/api/orders/{orderId}}

The JSON Schema of this model (`banyan routes schema`) lets editors validate route files as they
are written.

Reading the files (line numbers, environment variables, the folder's checks) is `files.py`; flows, the
files and batches that climb the same ladder, are `flows.py`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cutover.compare import Rules as CompareRules
from cutover.decide import Mode
from cutover.engine import RouteInfo
from cutover.gates import Gate, Guardrail
from cutover.slos import Objective
from legacy_adapters import BackendSettings
from legacy_adapters.mapping import Mapping
from specs.owners import Owned

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Deprecation(_Model):
    """A version on its way out: it answers with Deprecation (RFC 9745), Sunset (RFC 8594) and a Link to
    its successor until the sunset date, and 410 Gone from then on."""

    since: date = Field(description="the day it was deprecated")
    sunset: date = Field(description="the day it stops answering (from 00:00 UTC)")
    successor: str | None = Field(default=None, description="the route that replaces it")
    link: str | None = Field(default=None, description="where consumers read how to move (a URL)")

    @model_validator(mode="after")
    def _in_order(self) -> Deprecation:
        if self.sunset <= self.since:
            raise ValueError(f"the sunset ({self.sunset}) must come after the deprecation ({self.since})")
        return self


class Operation(_Model):
    method: Method
    path: str = Field(pattern=r"^/", description="public path; {name} segments are parameters")
    summary: str | None = None
    request: dict[str, Any] | None = Field(default=None, description="JSON Schema of the request body")
    response: dict[str, Any] | None = Field(default=None, description="JSON Schema of the response body")
    deprecated: Deprecation | None = Field(default=None, description="this version is on its way out")
    idempotency_key: Literal["optional", "required"] = Field(
        default="optional",
        description="required: a call without an Idempotency-Key header is refused with 400 (a write route's "
        "retries then never book twice)",
    )
    validate_response: bool = Field(
        default=False,
        alias="validate",
        description="check every answer against the response schema (a canonical one is always checked when "
        "the two sides are compared); an answer that breaks it is a 502",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


class Source(_Model):
    """Where a value comes from in the consumer's request."""

    # (a managed route's body is JSON: an XML body's entity is a passthrough's entity_xpath)
    from_: Literal["path", "header", "query", "json", "constant"] = Field(alias="from")
    name: str | None = Field(default=None, description="path parameter, header or query name")
    pointer: str | None = Field(default=None, description="JSON pointer into the body")
    value: str | None = Field(default=None, description="the value, for constant")
    values: list[str] | None = Field(default=None, description="the values allowed; others are refused with 404")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> Source:
        needed = {
            "path": "name",
            "header": "name",
            "query": "name",
            "json": "pointer",
            "constant": "value",
        }
        if getattr(self, needed[self.from_]) is None:
            raise ValueError(f"a value from {self.from_} needs {needed[self.from_]}")
        return self


BackendSpec = Annotated[BackendSettings, Field(discriminator="backend")]  # every registered backend's settings


class Concurrency(_Model):
    """How much of a backend one gateway process uses at once. Calls beyond `limit` wait in a line of
    `queue`; beyond that a call is refused at once with 503 and Retry-After (load shedding), instead
    of piling up until the backend times them all out. Writes on an `async` route are not refused:
    they are accepted (202) and delivered at the pace the limit allows."""

    limit: int = Field(ge=1, description="calls in flight at once, per gateway process")
    queue: int = Field(default=0, ge=0, description="calls that may wait for a free slot; more are refused")
    wait: float | None = Field(
        default=None, gt=0, description="seconds a call waits in line at most (default: the backend's timeout)"
    )
    pool: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="sides naming the same pool share one limit: one legacy system behind several routes",
    )


class EventSpec(_Model):
    """A business event a write route publishes when a call succeeds: a CloudEvent, recorded in the
    store with the write's outcome and published from there to the serve config's broker."""

    type: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="CloudEvents type, e.g. "
        "com.acme.order.created (the NATS subject is events.<type>, the RabbitMQ routing key <type>)",
    )
    when: Literal["success"] = Field(default="success", description="a call the serving side took")
    subject: str | None = Field(
        default=None,
        pattern=r"^/",
        description="JSON pointer to what the event is about (CloudEvents subject): in the answer, else in the request",
    )
    data: Literal["answer", "request", "both"] = Field(
        default="answer", description="the event's data: the consumer's answer, its request, or both"
    )
    source: str | None = Field(default=None, description="CloudEvents source (default: /banyan/routes/<route>)")


class SloSpec(_Model):
    """A business objective the route's calls are measured against, per legal entity:

    - latency: the call was answered by its system of record (a booked order: the ERP's answer, the
      ack file, the row its trigger wrote) within `threshold` seconds; for an async route, from the
      202 to the write made;
    - success: the system of record took it (a refusal of the consumer's request does not count);
    - freshness: the figure served is at most `threshold` seconds older than the legacy system's
      last change, which the answer names at `field` (an ISO time, or epoch seconds);
    - exceptions: the system of record did not refuse the call on business grounds (an
      intercompany invoice the other entity's ledger would not book): their rate and volume."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: Literal["latency", "success", "freshness", "exceptions"]
    objective: float = Field(ge=50, lt=100, description="percent of good events, e.g. 99.5")
    window: str = Field(default="28d", pattern=r"^[1-9][0-9]?d$", description="days the objective holds over")
    threshold: float | None = Field(default=None, gt=0, description="seconds (latency, freshness)")
    field: str | None = Field(default=None, pattern=r"^/", description="JSON pointer to the last change (freshness)")

    @model_validator(mode="after")
    def _complete(self) -> SloSpec:
        if self.kind in ("latency", "freshness") and self.threshold is None:
            raise ValueError(f"a {self.kind} SLO needs threshold (seconds)")
        if self.kind == "freshness" and self.field is None:
            raise ValueError("a freshness SLO needs field: where the answer names the legacy system's last change")
        return self

    @property
    def days(self) -> int:
        return int(self.window[:-1])


class SideSpec(_Model):
    """One side of a route (legacy or cloud): a backend and the mappings around it."""

    backend: BackendSpec
    concurrency: Concurrency | None = Field(default=None, description="calls at once, and the line beyond")
    request: Mapping | None = Field(default=None, description="consumer JSON → what the backend takes")
    response: Mapping | None = Field(default=None, description="what the backend answers → consumer JSON")


class EntitySpec(_Model):
    """What one legal entity does differently on a route: its own legacy or cloud side, and the fields
    it adds to the route's canonical answer."""

    legacy: SideSpec | None = None
    cloud: SideSpec | None = None
    extends: dict[str, Any] | None = Field(
        default=None, description="JSON Schema properties this entity adds under the canonical answer's extensions"
    )


class BreakerSpec(_Model):
    failures: int = Field(default=5, ge=1, description="consecutive failures that open the breaker")
    reset: float = Field(default=30.0, gt=0, description="seconds before a trial call is let through")


class Resilience(_Model):
    retries: int = Field(default=2, ge=0, le=5, description="extra attempts, only for calls safe to repeat")
    backoff: float = Field(default=0.1, ge=0, description="first wait in seconds, doubled each time, with jitter")
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)


class CutoverPlan(_Model):
    """The route's rung until the cutover store says otherwise, and the evidence its steps need."""

    mode: Literal["legacy", "shadow", "dual_write", "cloud_primary", "cloud"] = Field(
        default="legacy", description="the rung for every entity with no rule in the store (canary needs the store)"
    )
    gate: Gate = Field(default_factory=Gate, description="what a step up needs")
    guardrail: Guardrail = Field(default_factory=Guardrail, description="when the route steps down by itself")


class Passthrough(_Model):
    """An existing protocol kept as it is: consumers keep sending SOAP to the gateway."""

    protocol: Literal["soap"] = "soap"
    path: str = Field(pattern=r"^/")
    entity_xpath: str | None = Field(default=None, description="XPath to the legal entity in the SOAP body")
    key_xpath: str | None = None
    legacy: str = Field(description="URL of the legacy SOAP service")
    cloud: str | None = Field(default=None, description="URL of the replacement service")
    timeout: float = Field(default=10.0, gt=0)


class Route(_Model, Owned):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str | None = None
    operation: Operation | None = None
    passthrough: Passthrough | None = None
    entity: Source | None = Field(default=None, description="where the legal entity comes from")
    key: Source | None = Field(default=None, description="where the business key comes from")
    writes: bool = False
    records: str | None = Field(
        default=None,
        description="what the business key names (e.g. order): routes naming the same records share write "
        "ownership, so a read or write of a key waits for that key's writes owed to its side by any of them; "
        "default: the routes on the same path",
    )
    asynchronous: bool = Field(
        default=False,
        alias="async",
        description="a write is accepted at once (202 Accepted with a status URL), kept in the store and "
        "delivered at the pace the backend takes; needs writes and a store",
    )
    events: list[EventSpec] = Field(default_factory=list, description="business events a successful call publishes")
    slo: list[SloSpec] = Field(default_factory=list, description="business objectives, measured per legal entity")
    legacy: SideSpec | None = None
    cloud: SideSpec | None = None
    entities: dict[str, EntitySpec] = Field(
        default_factory=dict, description="per entity: legacy/cloud sides that differ from the route's, fields it adds"
    )
    compare: CompareRules = Field(default_factory=CompareRules, description="how the two answers are compared")
    resilience: Resilience = Field(default_factory=Resilience)
    cutover: CutoverPlan = Field(default_factory=CutoverPlan)
    tags: list[str] = Field(
        default_factory=list,
        description="the groups the API reference lists it under (default: its path's first word past a version "
        "and the parameters: orders for /v1/{entity}/orders/{orderId})",
    )
    wraps: list[str] = Field(
        default_factory=list,
        description="the cataloged interfaces this route stands in front of: ids, or globs on their name or "
        "locator (banyan routes scaffold fills it in; banyan catalog report --routes shows it)",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _shape(self) -> Route:
        if (self.operation is None) == (self.passthrough is None):
            raise ValueError("a route has either an operation (a managed API) or a passthrough, not both")
        if self.operation is not None and self.legacy is None:
            raise ValueError("a managed route needs its legacy side")
        has_cloud = self.cloud is not None or any(sides.cloud is not None for sides in self.entities.values())
        if self.cutover.mode != "legacy" and not has_cloud and self.operation is not None:
            raise ValueError(f"cutover mode {self.cutover.mode} needs a cloud side")
        if self.asynchronous and (not self.writes or self.operation is None):
            raise ValueError("only a managed write route can be async")
        if self.slo and self.operation is None:
            raise ValueError("SLOs are measured on managed routes (an operation)")
        if len({slo.name for slo in self.slo}) < len(self.slo):
            raise ValueError("each SLO of a route needs a name of its own")
        if self.events and (not self.writes or self.operation is None):
            raise ValueError("only a managed write route publishes events: an event tells of a change")
        if self.cutover.mode == "shadow" and self.writes:
            raise ValueError("a write route cannot shadow: the cloud would never get the writes; use dual_write")
        if self.operation is not None:
            for source in (self.entity, self.key):
                if source is not None and source.from_ == "path" and source.name not in self.operation.parameters:
                    raise ValueError(f"path parameter {source.name!r} is not in {self.operation.path}")
        return self

    def side(self, which: str, entity: str | None) -> SideSpec | None:
        own = self.entities.get(entity or "")
        override = getattr(own, which) if own is not None else None
        return override or (self.legacy if which == "legacy" else self.cloud)


def tags_of(route: Route) -> list[str]:
    """The groups a route is listed under: its own, or its path's first segment past a version and
    the parameters (/v1/{entity}/orders/{orderId}: orders)."""
    if route.tags:
        return route.tags
    path = route.operation.path if route.operation is not None else route.passthrough.path if route.passthrough else ""
    parts = [part for part in path.split("/") if part and not part.startswith("{") and not re.fullmatch(r"v\d+", part)]
    return [parts[0] if parts else route.name]


def route_infos(routes: list[Route]) -> list[RouteInfo]:
    """What the engine needs of each route spec."""
    infos = []
    for route in routes:
        has_cloud = route.cloud is not None or (route.passthrough is not None and route.passthrough.cloud is not None)
        has_cloud = has_cloud or any(sides.cloud is not None for sides in route.entities.values())
        plan = route.cutover
        entities = tuple(route.entity.values or ()) if route.entity is not None else ()
        learns = route.compare.noise_sample > 0 and not route.writes  # reads only are asked twice
        owner = route.owner.team if route.owner is not None else ""
        slos = tuple(Objective(route.name, slo.name, slo.kind, slo.objective, slo.days, owner) for slo in route.slo)
        infos.append(
            RouteInfo(
                route.name,
                route.writes,
                has_cloud,
                Mode(plan.mode),
                plan.gate,
                plan.guardrail,
                entities,
                learns,
                slos,
                owner=owner,
                tags=tuple(tags_of(route)),
            )
        )
    return infos


def known_entities(routes: list[Route]) -> list[str] | None:
    """The legal entities the routes name; None (any entity) when no route lists them."""
    names: set[str] = set()
    for route in routes:
        if route.entity is not None and route.entity.values:
            names |= set(route.entity.values)
        names |= set(route.entities)
    return sorted(names) or None
