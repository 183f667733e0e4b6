"""Flow specs: files that climb the cutover ladder as routes do, declared beside them.

    flows:
      - name: uk-partner-orders
        source: {folder: "${ACME_DROPS}/partners/in", pattern: "*.edi", settle_seconds: 2}
        document: edifact
        entity: {from: partner, partners: {"5012345000017": ACME-UK}}
        key: {from: partner}                     # canary moves one trading partner at a time
        legacy: {intake: ".../acme_uk/ftp/orders/in", seen_in: [".../processed", ".../error"],
                 replies: ".../acme_uk/ftp/orders/ack"}
        cloud: {intake: ".../cloud/edi/in", replies: ".../cloud/edi/ack"}
        cutover: {gate: {min_samples: 20}}

A flow's name shares the ladder's namespace with the routes: `banyan cutover set uk-partner-orders
ACME-UK dual_write …` moves it, the console shows it in the matrix. Where its file goes on each
rung is `flows/runner.py`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cutover.compare import Rules as CompareRules
from cutover.decide import Mode
from cutover.engine import RouteInfo
from cutover.slos import Objective
from legacy_adapters.mapping import Mapping
from specs.owners import Owned
from specs.routes import CutoverPlan, Route, SloSpec, known_entities, route_infos

IGNORED = [".*", "*.tmp", "*.part", "*.filepart", "~*"]  # names a sender writes before the file is whole


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(_Model):
    """How Banyan logs in where a folder is an sftp:// URL (a mailbox, or an ERP's intake)."""

    known_hosts: str = Field(default="~/.ssh/known_hosts", description="for sftp://: the host keys trusted")
    accept_unknown_host: bool = Field(default=False, description="for sftp://: trust a host not in known_hosts")
    key_file: str | None = Field(default=None, description="for sftp://: the private key to log in with")
    password_env: str | None = Field(default=None, description="for sftp://: the variable that holds the password")


def _no_password(url: str) -> None:
    if url.startswith("sftp://") and "@" in url and ":" in url.split("@", 1)[0].removeprefix("sftp://"):
        raise ValueError("put no password in an sftp:// URL; name a variable with password_env")


class FlowSource(Login):
    """Where the partner's files arrive, and when one is whole."""

    folder: str = Field(description="the drop folder (local; a mounted share works too)")
    pattern: str = Field(default="*", description="glob of the names taken, e.g. *.edi")
    settle_seconds: float = Field(default=2.0, ge=0, description="unchanged for this long before it is read")
    done_suffix: str | None = Field(
        default=None, description="a file NAME<suffix> (e.g. .done) says NAME is whole; then no settling is needed"
    )
    ignore: list[str] = Field(default_factory=lambda: list(IGNORED), description="globs of temporary names")
    archive: str | None = Field(
        default=None, description="where a file goes once handled (default FOLDER/.banyan/done)"
    )
    error: str | None = Field(
        default=None, description="where a refused file goes, with its reason (default FOLDER/.banyan/error)"
    )
    staging: str | None = Field(
        default=None, description="for an sftp:// folder: the local folder its files are fetched into, then taken"
    )
    remote_done: str | None = Field(
        default=None, description="for sftp://: move fetched files to this remote folder instead of removing them"
    )

    @model_validator(mode="after")
    def _remote(self) -> FlowSource:
        if self.folder.startswith("sftp://"):
            if not self.staging:
                raise ValueError("an sftp:// folder needs staging: the local folder its files are fetched into")
            _no_password(self.folder)
        return self


class Upload(_Model):
    """An ERP that takes files over HTTP (its EDI or import API): each file is one request."""

    url: str = Field(pattern=r"^https?://", description="where the file is sent, e.g. https://erp.example/edi/in")
    method: Literal["POST", "PUT"] = "POST"
    content_type: str | None = Field(
        default=None,
        description="the body's media type (default by the document: application/EDI-X12, "
        "application/EDIFACT, text/csv)",
    )
    token_env: str | None = Field(default=None, description="the variable holding a bearer token, if it needs one")
    idempotent: bool = Field(
        default=False,
        description="the endpoint honours Idempotency-Key: an upload whose outcome is unknown is sent "
        "again with the same key; otherwise it is in doubt, for a person",
    )
    timeout_seconds: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _no_secret(self) -> Upload:
        if "@" in self.url.split("/", 3)[2]:
            raise ValueError("put no credentials in the upload URL; name a variable with token_env")
        return self


class RouteSide(_Model):
    """A side that is an API: the file's document, mapped into the canonical entity, is sent through
    a managed write route's binding for this side (its request map, breaker and limits)."""

    name: str = Field(description="the managed write route, e.g. order-create")
    map: Mapping = Field(
        description="the parsed document (its JSON shape: /ST/0/BEG/03, /UNH/0/BGM/02 …) → the route's request; "
        "a field map, or a callable for lines",
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="the route's path parameters besides the entity: name → JSON pointer"
    )
    idempotent: bool = Field(
        default=False,
        description="the side's API honours Idempotency-Key: a call whose outcome is unknown is sent "
        "again with the same key; otherwise it is in doubt, for a person",
    )


class ReadBack(_Model):
    """What each side booked, read back through a managed read route and compared: the outcome of a
    file in the canonical shape, whatever each side was sent (a file, an API call)."""

    route: str = Field(description="a managed read route, e.g. order-by-reference")
    param: str = Field(description="its path parameter that names the record, e.g. reference")
    value: Literal["number", "key"] = Field(
        default="number", description="number: the file's first business number (its PO number); key: its key"
    )
    within_minutes: float = Field(default=30, gt=0, description="how long a side may take to book it")
    every_seconds: float = Field(default=5, gt=0, description="how often a record not booked yet is asked for")


class FlowSide(Login):
    """One ERP's end of a flow: the folder its importer reads (or the API it takes files from), and
    where it answers."""

    intake: str | None = Field(
        default=None,
        description="the folder the importer reads, local or sftp://user@host[:port]/path; a file is written "
        "under a temporary name, then renamed",
    )
    upload: Upload | None = Field(default=None, description="instead of an intake: the API the file is sent to")
    route: RouteSide | None = Field(
        default=None, description="instead of an intake: the managed route the document is sent through, mapped"
    )
    seen_in: list[str] = Field(
        default_factory=list,
        description="folders the importer moves files on to (processed, error): after a crash a file found there "
        "was delivered (paths on the server, for an sftp:// intake)",
    )
    replies: str | None = Field(default=None, description="where the side writes its acknowledgements (997, CONTRL)")
    validate_intake: str | None = Field(
        default=None,
        alias="validate",
        description="the cloud's non-booking intake (validate or test mode): what shadow sends the cloud",
    )

    @model_validator(mode="after")
    def _remote(self) -> FlowSide:
        if sum(way is not None for way in (self.intake, self.upload, self.route)) != 1:
            raise ValueError("a side has an intake folder, an upload URL or a route: exactly one of them")
        for folder in (self.intake or "", self.validate_intake or ""):
            _no_password(folder)
        return self

    @property
    def destination(self) -> str:
        """Where a file for this side goes: its intake folder or its upload URL."""
        if self.route is not None:
            return f"route:{self.route.name}"
        return self.intake or (self.upload.url if self.upload else "")


class Pick(_Model):
    """Where a flow reads a file's legal entity or its business key."""

    from_: Literal["partner", "name", "document", "fixed"] = Field(
        alias="from",
        description="partner: the sender id (ISA06, UNB); name: a regex on the file name; "
        "document: a JSON pointer into the parsed document; fixed: one value",
    )
    partners: dict[str, str] = Field(
        default_factory=dict, description="the value found (a sender id, or what the pointer names) → entity"
    )
    pattern: str | None = Field(default=None, description="from name: a regex whose group `value` is taken")
    pointer: str | None = Field(default=None, description="from document: e.g. /ST/*/BEG/03 or /UNH/*/BGM/02")
    value: str | None = Field(default=None, description="from fixed")

    @model_validator(mode="after")
    def _complete(self) -> Pick:
        needs = {"name": "pattern", "document": "pointer", "fixed": "value"}.get(self.from_)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"from: {self.from_} needs {needs}")
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
            if "value" not in compiled.groupindex:
                raise ValueError("pattern needs a group named value, e.g. ^ORDERS_(?P<value>[A-Z-]+)_")
        if self.pointer is not None and not self.pointer.startswith("/"):
            raise ValueError("pointer is a JSON pointer: it starts with /")
        return self


class Flow(_Model, Owned):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    document: Literal["auto", "x12", "edifact", "csv", "xml"] = Field(
        default="auto", description="how the files are read"
    )
    source: FlowSource
    entity: Pick
    key: Pick = Field(
        default_factory=lambda: Pick.model_validate({"from": "partner"}),
        description="what canary is sticky by: a partner, or a document number",
    )
    legacy: FlowSide
    cloud: FlowSide | None = None
    compare: CompareRules = Field(
        default_factory=CompareRules,
        description="how each side's answer to a file is compared; control numbers and dates are ignored already",
    )
    cutover: CutoverPlan = Field(default_factory=CutoverPlan)
    resends: bool = Field(default=False, description="a file sent again (same bytes) is delivered again")
    wraps: list[str] = Field(
        default_factory=list,
        description="the cataloged file drops this flow stands in front of (banyan routes scaffold fills it in; "
        "banyan catalog report --routes shows it)",
    )
    slo: list[SloSpec] = Field(
        default_factory=list,
        description="business objectives per entity: latency (arrival to the serving side's "
        "first answer within threshold seconds, e.g. its 997 within 900) and success (the serving side took it)",
    )
    outcome: ReadBack | None = Field(
        default=None,
        description="read back what each side booked for a file, through a managed read route, "
        "and compare the two records",
    )
    outbound: str | None = Field(
        default=None,
        description="the folder the partner collects its replies from: of the two sides' replies to a file, only "
        "the serving side's is put there; the other's is kept for the comparison",
    )

    @model_validator(mode="after")
    def _slos(self) -> Flow:
        unfit = [slo.name for slo in self.slo if slo.kind not in ("latency", "success")]
        if unfit:
            raise ValueError(f"a flow's SLOs are latency or success: {', '.join(unfit)} is neither")
        return self

    @property
    def entities(self) -> tuple[str, ...]:
        if self.entity.from_ == "fixed" and self.entity.value:
            return (self.entity.value,)
        return tuple(sorted(set(self.entity.partners.values())))


class Schedule(_Model):
    """When something is due, in cron syntax, in a time zone (a batch's exports, a reconciliation)."""

    cron: str = Field(description="cron syntax, e.g. '0 2 * * *' for 02:00 every day")
    timezone: str = Field(default="UTC", description="an IANA zone, e.g. America/New_York")

    @model_validator(mode="after")
    def _valid(self) -> Schedule:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from croniter import croniter

        if not croniter.is_valid(self.cron):
            raise ValueError(f"cron {self.cron!r} is not cron syntax (five fields, e.g. '0 2 * * *')")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is no IANA zone (e.g. Europe/London)") from None
        return self


class BatchSchedule(Schedule):
    """When both sides' exports are due, in the entity's time zone."""

    deadline_minutes: float = Field(default=60, gt=0, description="an export not there this long after is late")


class Export(_Model):
    """Where one side's job drops its export, or the endpoint that hands it out."""

    folder: str = Field(description="where the export is dropped (or, with url, where Banyan keeps what it fetched)")
    pattern: str = Field(default="*", description="glob of the export's name; the newest since it was due is taken")
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="instead of a dropped file: GET this once the run is due; "
        "{due} and {entity} are filled in (e.g. https://erp.example/api/exports/stock?asOf={due}); 404, 204, 429 "
        "and 503 mean not ready yet",
    )
    token_env: str | None = Field(default=None, description="with url: the variable holding a bearer token")


# where a record's field is in an X12 or EDIFACT loop: LIN/03, QTY/01/1, QTY[01=33]/02
FIELD_PATH = re.compile(
    r"^(?P<tag>[A-Z][A-Z0-9]{1,2})(?:\[(?P<test>\d{2}(?:/\d+)?)=(?P<want>[^\]]*)\])?/(?P<at>\d{2}(?:/\d+)?)$"
)


class FixedColumn(_Model):
    name: str
    start: int = Field(ge=1, description="the column's first character, counting from 1")
    width: int = Field(ge=1)


class Records(_Model):
    """How an export's records are read and matched (see flows/records.py for each format)."""

    format: Literal["csv", "fixed", "x12", "edifact", "xml"] = "csv"
    key: list[str] = Field(min_length=1, description="the columns that identify a record, e.g. [sku, warehouse]")
    record: str | None = Field(
        default=None,
        description="fixed: the prefix of a record's lines (e.g. LIN); x12/edifact: the segment that "
        "starts a record (LIN); xml: the element that is one record (Item)",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="x12/edifact: column → SEG/NN, SEG/NN/C or SEG[NN=qualifier]/NN; xml: "
        "column → a path relative to the record (Sku, Qty/@uom)",
    )
    columns: list[FixedColumn] = Field(default_factory=list, description="fixed: the columns, by position")

    @model_validator(mode="after")
    def _complete(self) -> Records:
        if self.format == "fixed" and not self.columns:
            raise ValueError("a fixed-width export needs columns: [{name, start, width}, …]")
        if self.format in ("x12", "edifact", "xml") and (not self.record or not self.fields):
            raise ValueError(f"a {self.format} export needs record (what starts one) and fields")
        if self.format != "csv":
            names = [column.name for column in self.columns] if self.format == "fixed" else list(self.fields)
            missing = [column for column in self.key if column not in names]
            if missing:
                raise ValueError(f"the key names {', '.join(missing)}, which is no column of the records")
        if self.format in ("x12", "edifact"):
            wrong = [f"{name}: {where}" for name, where in self.fields.items() if not FIELD_PATH.match(where)]
            if wrong:
                raise ValueError(f"fields are written SEG/NN, SEG/NN/C or SEG[NN=value]/NN: {'; '.join(wrong)}")
        return self


class Batch(_Model, Owned):
    """A scheduled exchange: both sides export at the time given, Banyan compares the exports record
    by record by key and delivers the serving side's to the consumer's folder."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    entity: str = Field(description="the legal entity whose exports these are")
    schedule: BatchSchedule
    records: Records
    legacy: Export
    cloud: Export | None = None
    deliver: str = Field(description="the consumer's folder: the serving side's export is put there, once a run")
    ignore: list[str] = Field(default_factory=list, description="columns never compared (e.g. an export timestamp)")
    cutover: CutoverPlan = Field(default_factory=CutoverPlan)


def batch_infos(batches: list[Batch]) -> list[RouteInfo]:
    """What the cutover engine needs of each batch: an export is read, never booked, so shadow makes
    sense (the cloud's export is compared, legacy's delivered)."""
    return [
        RouteInfo(
            batch.name,
            writes=False,
            has_cloud=batch.cloud is not None,
            default=Mode(batch.cutover.mode),
            gate=batch.cutover.gate,
            guardrail=batch.cutover.guardrail,
            entities=(batch.entity,),
            kind="batch",
            owner=batch.owner.team if batch.owner is not None else "",
        )
        for batch in batches
    ]


def flow_infos(flows: list[Flow]) -> list[RouteInfo]:
    """What the cutover engine needs of each flow: a flow writes (a file delivered is booked), so
    shadow only makes sense where the cloud has a non-booking intake."""
    infos = []
    for flow in flows:
        checks_only = flow.cloud is not None and flow.cloud.validate_intake is not None
        owner = flow.owner.team if flow.owner is not None else ""
        plan = flow.cutover
        infos.append(
            RouteInfo(
                flow.name,
                writes=not checks_only,
                has_cloud=flow.cloud is not None,
                default=Mode(plan.mode),
                gate=plan.gate,
                guardrail=plan.guardrail,
                entities=flow.entities,
                kind="flow",
                owner=owner,
                slos=tuple(
                    Objective(flow.name, slo.name, slo.kind, slo.objective, slo.days, owner) for slo in flow.slo
                ),
            )
        )
    return infos


def ladder(
    routes: list[Route], flows: list[Flow], batches: list[Batch] | None = None
) -> tuple[list[RouteInfo], list[str] | None]:
    """What the cutover engine judges (routes, flows and batches alike) and the legal entities they
    name (None: any, when none names them)."""
    names = set(known_entities(routes) or ())
    for flow in flows:
        names |= set(flow.entities)
    names |= {batch.entity for batch in batches or []}
    return route_infos(routes) + flow_infos(flows) + batch_infos(batches or []), sorted(names) or None


def flow_route_problems(folder: object, routes: list[Route], flows: list[Flow]) -> list[str]:
    """A flow that sends through a route, or reads back through one, names a route of the folder:
    a write route for a side, a read route with that parameter for the outcome."""
    by_name = {route.name: route for route in routes}
    problems = []
    for flow in flows:
        for side, end in (("legacy", flow.legacy), ("cloud", flow.cloud)):
            if end is None or end.route is None:
                continue
            route = by_name.get(end.route.name)
            if route is None or not route.writes or route.operation is None:
                problems.append(
                    f"{folder}: flow {flow.name}: its {side} side sends through {end.route.name!r}, "
                    "which is no write route of this folder"
                )
        if flow.outcome is not None:
            route = by_name.get(flow.outcome.route)
            path = route.operation.path if route is not None and route.operation is not None else ""
            param = "{" + flow.outcome.param + "}"
            if route is None or route.writes or param not in path:
                problems.append(
                    f"{folder}: flow {flow.name}: its outcome is read through {flow.outcome.route!r}, "
                    f"which is no read route of this folder with a {param} parameter"
                )
    return problems
