"""Reconciliation specs: do two systems hold the same records? Declared beside routes and flows.

    reconciliations:
      - name: us-orders
        entity: order                              # the canonical entity the records are mapped into
        entities: [ACME-US]
        key: [orderId]
        legacy:
          odbc: {connection_env: BANYAN_ERP_US_ODBC,
                 query: "SELECT id, customer, total FROM order_export WHERE changed >= :since"}
          map: {map: {/orderId: /id, /customer: /customer, /total: /total}}
        cloud:
          http: {url: "${ACME_CLOUD}/api/{entity}/orders", items: /orders,
                 paging: {style: page, param: page, size_param: per_page, size: 500}}
        compare: {tolerance: 0.01, ignore: [/updatedAt]}

Two legal entities can be the two sides (intercompany: one's receivables, the other's payables):
each side's `map` brings its own key into the canonical one (DE's invoice number and UK's supplier
reference both become `/invoice`), `labels` names the sides, and `currency` converts amounts to one
currency from a rate table before they are compared. How a run works is `reconcile/run.py`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cutover.compare import Rules as CompareRules
from legacy_adapters.http import OAuth2
from legacy_adapters.mapping import Mapping
from legacy_adapters.soap import SoapConfig
from specs.flows import Records, Schedule
from specs.owners import Owned
from specs.routes import Route


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OdbcList(_Model):
    """Rows of a query over ODBC; `:entity` and `:since` are bound, never spliced."""

    connection_env: str = Field(description="the environment variable holding the ODBC connection string")
    query: str = Field(description="a SELECT; :entity and :since are bound as parameters")
    fetch: int = Field(default=5000, ge=1, description="rows fetched at a time")


class Paging(_Model):
    """How a list endpoint is paged."""

    style: Literal["page", "offset", "cursor", "next", "none"] = "page"
    param: str = Field(
        default="page", description="page: the page number's parameter; offset: the offset's; cursor: the cursor's"
    )
    first: int = Field(default=1, description="page: the first page's number")
    size_param: str | None = Field(default="per_page", description="the page size's parameter, if it takes one")
    size: int = Field(default=500, ge=1)
    cursor: str | None = Field(default=None, pattern=r"^/", description="cursor: JSON pointer to the next cursor")
    next: str | None = Field(default=None, pattern=r"^/", description="next: JSON pointer to the next page's URL")

    @model_validator(mode="after")
    def _complete(self) -> Paging:
        if self.style == "cursor" and not self.cursor:
            raise ValueError("cursor paging needs cursor: the JSON pointer to the next cursor in each page")
        if self.style == "next" and not self.next:
            raise ValueError("next paging needs next: the JSON pointer to the next page's URL in each page")
        return self


class HttpList(_Model):
    """Records from a paged JSON endpoint."""

    url: str = Field(pattern=r"^https?://", description="{entity} and {since} are filled in")
    items: str = Field(default="", description="JSON pointer to the records in a page ('' when the page is a list)")
    paging: Paging = Field(default_factory=Paging)
    token_env: str | None = Field(default=None, description="the variable holding a bearer token")
    oauth2: OAuth2 | None = Field(default=None, description="client credentials, as the HTTP backend takes them")
    timeout_seconds: float = Field(default=60, gt=0, description="for one page")

    @model_validator(mode="after")
    def _no_secret(self) -> HttpList:
        if "@" in self.url.split("/", 3)[2]:
            raise ValueError("put no credentials in the URL; name a variable with token_env")
        return self


class FileList(_Model):
    """Records of an export file (CSV, fixed width, X12 846, EDIFACT INVRPT, XML)."""

    path: str = Field(description="{entity} is filled in")
    records: Records


class _Asked(_Model):
    """A list operation asked page by page: the page (its number, offset or cursor) goes into the
    request beside what `request` says, and the records are found at `items` in each answer."""

    request: dict[str, Any] = Field(
        default_factory=dict, description="the request; {entity} and {since} in its strings are filled in"
    )
    items: str = Field(default="", description="JSON pointer to the records in an answer ('' when it is a list)")
    paging: Paging = Field(default_factory=Paging)

    @model_validator(mode="after")
    def _no_link(self) -> _Asked:
        if self.paging.style == "next":
            raise ValueError("an operation is paged by page, offset or cursor (a next link is for http sources)")
        return self


class SoapList(_Asked):
    """Records from a SOAP list operation (GetOrders, with a page number in its request)."""

    service: SoapConfig = Field(description="the operation: url, namespace, operation, as a route's backend")


class RouteList(_Asked):
    """Records from a managed read route, asked through its binding for a side (the entity's own
    binding where it has one): the route's request map takes the request and the page, its
    response map makes the answer, and its backend (HTTP with OAuth2, SOAP, ODBC) is called."""

    name: str = Field(description="the managed route, e.g. order-list")
    side: Literal["legacy", "cloud"] | None = Field(default=None, description="whose binding (default: this side)")
    params: dict[str, str] = Field(
        default_factory=dict, description="the route's path parameters; {entity} and {since} are filled in"
    )


class Source(_Model):
    """Where one side's records come from, and how each becomes the canonical shape."""

    odbc: OdbcList | None = None
    http: HttpList | None = None
    file: FileList | None = None
    soap: SoapList | None = None
    route: RouteList | None = None
    map: Mapping | None = Field(default=None, description="a record → the canonical shape (default: as it is)")

    @model_validator(mode="after")
    def _one(self) -> Source:
        if sum(way is not None for way in (self.odbc, self.http, self.file, self.soap, self.route)) != 1:
            raise ValueError("a source is exactly one of odbc, http, file, soap or route")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ("odbc", "http", "file", "soap", "route") if getattr(self, kind) is not None)


class Currency(_Model):
    """Amounts in several currencies, compared in one: each record's amount converted by a rate."""

    amount: str = Field(pattern=r"^/", description="JSON pointer to the amount in the canonical record")
    currency: str = Field(pattern=r"^/", description="JSON pointer to its currency code")
    to: str = Field(min_length=3, max_length=3, description="the currency compared in, e.g. EUR")
    rates: dict[str, float] = Field(description="units of `to` per unit of each currency, e.g. {GBP: 1.17}")


class KeyRules(_Model):
    """How keys are normalised before they are matched (what is left different is reported)."""

    trim: bool = Field(default=True, description="leading and trailing spaces do not count")
    case: Literal["keep", "upper", "lower"] = "keep"


class Repair(_Model):
    """How a record one side lacks (or holds differently) is sent to it: through the outbox of the
    write route that owns the entity, so it takes the route's binding, retries and in-doubt rules."""

    route: str = Field(description="the managed write route, e.g. order-create")
    map: Mapping | None = Field(default=None, description="the canonical record → the route's request (default: as is)")
    params: dict[str, str] = Field(
        default_factory=dict, description="the route's path parameters besides the entity: name → JSON pointer"
    )


class RunSchedule(Schedule):
    """When a reconciliation runs by itself, for each of its entities, in the schedule's time zone."""

    alert_drift: float | None = Field(
        default=None, ge=0, le=1, description="a run that drifted more than this is posted to the webhook"
    )


class Reconciliation(_Model, Owned):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    entity: str = Field(description="the canonical entity: order, inventory, invoice, customer, item, shipment")
    entities: list[str] = Field(default_factory=list, description="the legal entities it runs for")
    key: list[str] = Field(
        min_length=1, description="the canonical fields that identify a record, e.g. [sku, warehouse]"
    )
    legacy: Source
    cloud: Source
    intercompany: bool = Field(
        default=False, description="the two sides are two legal entities' books (counted apart in the inbox)"
    )
    labels: dict[Literal["legacy", "cloud"], str] = Field(
        default_factory=dict, description="what the two sides are called (two entities: their ledgers)"
    )
    compare: CompareRules = Field(default_factory=CompareRules, description="the routes' compare block")
    keys: KeyRules = Field(default_factory=KeyRules)
    currency: Currency | None = None
    repair: Repair | None = Field(default=None, description="how `banyan reconcile repair` sends what is missing")
    schedule: RunSchedule | None = Field(
        default=None, description="run by itself (one gateway of the fleet makes each run), for every entity listed"
    )

    @model_validator(mode="after")
    def _scheduled(self) -> Reconciliation:
        if self.schedule is not None and not self.entities:
            raise ValueError("a scheduled reconciliation lists its entities: entities: [ACME-US, …]")
        return self

    @model_validator(mode="after")
    def _bound_parameters(self) -> Reconciliation:
        for source in (self.legacy, self.cloud):
            if source.odbc is not None and ":" in source.odbc.query:
                unknown = {m for m in re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", source.odbc.query)} - {"entity", "since"}
                if unknown:
                    raise ValueError(f"the query binds only :entity and :since, not :{', :'.join(sorted(unknown))}")
        return self

    def label(self, side: str) -> str:
        return next((name for which, name in self.labels.items() if which == side), side)


def reconciliation_route_problems(folder: object, routes: list[Route], found: list[Reconciliation]) -> list[str]:
    """A reconciliation that reads through a route names a read route of the folder with a binding
    for the side it reads; one that repairs through a route names a write route."""
    by_name = {route.name: route for route in routes}
    problems = []
    for spec in found:
        for side, source in (("legacy", spec.legacy), ("cloud", spec.cloud)):
            if source.route is None:
                continue
            route = by_name.get(source.route.name)
            whose = source.route.side or side
            bound = route is not None and (
                route.side(whose, None) is not None or any(route.side(whose, entity) for entity in route.entities)
            )
            if route is None or route.writes or route.operation is None or not bound:
                problems.append(
                    f"{folder}: reconciliation {spec.name}: its {side} side reads through "
                    f"{source.route.name!r}, which is no read route of this folder with a {whose} "
                    "binding"
                )
        if spec.repair is not None:
            route = by_name.get(spec.repair.route)
            if route is None or not route.writes or route.operation is None:
                problems.append(
                    f"{folder}: reconciliation {spec.name}: it repairs through {spec.repair.route!r}, "
                    "which is no write route of this folder"
                )
    return problems
