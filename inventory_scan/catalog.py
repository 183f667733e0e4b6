"""The catalog every scanner writes: interfaces, the edges between them, and the sources scanned.

A catalog is JSON on disk with a `schema_version`. Interface ids are a hash of kind, system and
locator, so the same integration point keeps its id from one scan to the next and two scans can be
diffed; scanning into an existing catalog merges by id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inventory_scan.errors import CatalogError
from inventory_scan.redact import redact, redact_tree

SCHEMA_VERSION = 1


class Kind(StrEnum):
    file_drop = "file_drop"
    db_trigger = "db_trigger"
    db_procedure = "db_procedure"
    esb_flow = "esb_flow"
    esb_endpoint = "esb_endpoint"
    soap_operation = "soap_operation"
    queue = "queue"


class Direction(StrEnum):
    """Seen from the legacy system: does data flow into it or out of it?"""

    into = "into"
    out_of = "out_of"
    both = "both"
    unknown = "unknown"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Redacted(_Model):
    """A record whose strings pass through `redact` whenever it is built or loaded: no secret in
    a scanned value can reach a catalog, or anything made from one."""

    @model_validator(mode="before")
    @classmethod
    def _redact(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: redact_tree(value, key) if isinstance(value, str | dict | list) and key != "id" else value
            for key, value in data.items()
        }


class Evidence(_Redacted):
    """Where a fact was read: a file and line, a folder, or a query."""

    source: str
    line: int | None = None
    detail: str = ""


class Cadence(_Model):
    """How often something happens, inferred from timestamps or measured by watching."""

    kind: str = Field(description="interval, nightly, daily, weekly, irregular, single or unknown")
    label: str = Field(description="for people, e.g. 'every ~15 min', 'nightly ~02:00'")
    interval_seconds: float | None = None
    time_of_day: str | None = Field(default=None, description="HH:MM for daily and nightly cadences")
    measured: bool = Field(default=False, description="true when observed live, not inferred")


class Observation(_Model):
    """Arrivals recorded while watching a drop live."""

    started: datetime
    seconds: float
    arrivals: int
    rate_per_hour: float
    largest_gap_seconds: float | None = None


class Activity(_Model):
    count: int = 0
    bytes: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    cadence: Cadence | None = None
    observed: Observation | None = None


class Complexity(_Model):
    score: int
    reasons: list[str] = Field(default_factory=list)


class Pattern(_Model):
    name: str = Field(description="sync_api, event, batch or orchestration")
    reasons: list[str] = Field(default_factory=list)


class Criticality(_Model):
    tier: int = Field(ge=1, le=3, description="1: order-to-cash, stock, invoicing; 2: fulfilment, master data; 3")
    reasons: list[str] = Field(default_factory=list)


class Disposition(_Model):
    name: str = Field(description="keep, wrap, refactor_to_events or retire")
    reasons: list[str] = Field(default_factory=list)


def interface_id(kind: str, system: str, locator: str) -> str:
    """A stable id: the same kind, system and locator give the same id in every scan."""
    digest = hashlib.sha256(f"{kind}\x00{system}\x00{locator}".encode()).hexdigest()
    return f"if_{digest[:16]}"


class Interface(_Redacted):
    id: str
    kind: Kind
    system: str
    entity: str | None = None
    name: str
    locator: str = Field(description="a URI with secrets removed")
    protocol: str
    direction: Direction = Direction.unknown
    formats: list[str] = Field(default_factory=list)
    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)
    side_effects: list[str] = Field(default_factory=list)
    activity: Activity = Field(default_factory=Activity)
    complexity: Complexity | None = None
    pattern: Pattern | None = None
    business_object: str | None = Field(
        default=None, description="what it carries: order, inventory, shipment, invoice, customer, item, location …"
    )
    criticality: Criticality | None = None
    disposition: Disposition | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="kind-specific facts, e.g. a drop's file pattern and stages"
    )

    @classmethod
    def build(cls, *, kind: Kind, system: str, locator: str, **fields: Any) -> Interface:
        # The id is made from what the catalog shows, so a changed password keeps the id.
        system, locator = redact(system), redact(locator)
        return cls(id=interface_id(kind, system, locator), kind=kind, system=system, locator=locator, **fields)


class Edge(_Redacted):
    """A dependency: `source` is an interface id, `target` an interface id or a resource locator."""

    source: str
    target: str
    relation: str = Field(description="e.g. lifecycle:archive, polls, writes, reads")
    evidence: list[Evidence] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.relation)


class ScanWarning(_Redacted):
    path: str
    message: str


class Source(_Redacted):
    """One scanned source and whether it was read completely."""

    locator: str
    kind: str = Field(description="files, sftp, db, esb …")
    scanned_at: datetime
    complete: bool = True
    reason: str | None = Field(default=None, description="why the source is incomplete")
    warnings: list[ScanWarning] = Field(default_factory=list)
    warnings_dropped: int = Field(default=0, description="warnings beyond the kept ones, counted only")
    stats: dict[str, int] = Field(default_factory=dict)


class Catalog(_Model):
    schema_version: int = SCHEMA_VERSION
    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    interfaces: list[Interface] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(source.complete for source in self.sources)

    def interface(self, interface_id: str) -> Interface:
        for found in self.interfaces:
            if found.id == interface_id:
                return found
        raise KeyError(interface_id)

    def merge(self, newer: Catalog) -> Catalog:
        """Fold a newer scan into this catalog: same id, same edge or same source → the newer wins."""
        interfaces = {i.id: i for i in self.interfaces} | {i.id: i for i in newer.interfaces}
        edges = {e.key: e for e in self.edges} | {e.key: e for e in newer.edges}
        sources = {s.locator: s for s in self.sources} | {s.locator: s for s in newer.sources}
        return Catalog(
            interfaces=sorted(interfaces.values(), key=lambda i: (i.kind, i.locator)),
            edges=sorted(edges.values(), key=lambda e: e.key),
            sources=sorted(sources.values(), key=lambda s: s.locator),
        )

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(f"{path}: no such catalog file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CatalogError(f"{path}: not a JSON catalog ({exc}); pass a file written by `banyan scan`") from None
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        if version != SCHEMA_VERSION:
            raise CatalogError(
                f"{path}: catalog schema_version {version!r}, this Banyan reads {SCHEMA_VERSION}; "
                "rescan to write a current catalog"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise CatalogError(f"{path}: invalid catalog: {exc}") from None

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted save never leaves half a catalog behind."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(self.model_dump_json(indent=2, exclude_none=True))
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def json_schema() -> dict[str, Any]:
    schema = Catalog.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Banyan catalog, schema_version {SCHEMA_VERSION}"
    return schema
