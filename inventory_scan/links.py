"""Edges between interfaces found by different scanners, recomputed whenever catalogs merge.

- an ESB endpoint that polls or writes a folder ↔ the `file_drop` in that folder (or one of its
  lifecycle folders: `move-after-process` into `archive/`);
- an ESB endpoint on a queue ↔ the `queue` interface with the same locator;
- an ESB endpoint on a table ↔ database interfaces on that table;
- an ESB flow that serves or calls a WSDL ↔ that WSDL's `soap_operation`s;
- every table a trigger, a routine or an ESB endpoint reads or writes is a node of its own
  (`table:<name>`), so what a trigger writes and what a flow reads from the same table meet there:
  `table → trigger` (fires), `interface → table` (writes), `table → interface` (reads).

Link edges carry a `link:` relation so they can be dropped and found again on every merge.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict

from inventory_scan.catalog import Catalog, Direction, Edge, Evidence, Interface, Kind
from inventory_scan.uri import split

PREFIX = "link:"


def _place(locator: str) -> tuple[str, str, str] | None:
    """(scheme, host, folder) of a file-like locator; None for relative or non-file locators."""
    if locator.startswith("file:") and not locator.startswith("file:/"):
        return None  # relative to some working directory we cannot know
    parts = split(locator)
    if parts.scheme not in ("file", "sftp", "ftp") or not parts.path.startswith("/"):
        return None
    host = parts.host if parts.scheme != "file" else ""
    return parts.scheme, host, posixpath.normpath(parts.path)


def _drop_places(drop: Interface) -> list[tuple[tuple[str, str, str], str]]:
    """Where a drop's files are: its own folder ('drop') and each lifecycle stage folder."""
    scheme = drop.protocol
    host = split(drop.locator).host if scheme != "file" else ""
    places = [((scheme, host.lower(), posixpath.normpath(str(drop.attributes.get("folder", "")))), "drop")]
    for stage, info in dict(drop.attributes.get("stages", {})).items():
        places.append(((scheme, host.lower(), posixpath.normpath(str(info.get("folder", "")))), stage))
    return places


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"[]`').lower()


def table_node(name: str) -> str:
    """The graph node of a table, by its unqualified name (schemas differ between scanners)."""
    return f"table:{_short(name)}"


def _table_edges(interface: Interface, reads: list[str], writes: list[str], fires_on: str | None) -> list[Edge]:
    evidence = [Evidence(source=interface.locator, detail="reads and writes")]
    edges = [
        Edge(source=interface.id, target=table_node(t), relation=PREFIX + "writes", evidence=evidence) for t in writes
    ]
    edges += [
        Edge(source=table_node(t), target=interface.id, relation=PREFIX + "reads", evidence=evidence) for t in reads
    ]
    if fires_on:
        edges.append(
            Edge(source=table_node(fires_on), target=interface.id, relation=PREFIX + "fires", evidence=evidence)
        )
    return edges


_READ_OPERATIONS = {"select", "query", "query-single", "read", "poll", "get"}


def link(catalog: Catalog) -> Catalog:
    """The catalog with its link edges found anew."""
    edges = [edge for edge in catalog.edges if not edge.relation.startswith(PREFIX)]
    by_kind: dict[Kind, list[Interface]] = defaultdict(list)
    for interface in catalog.interfaces:
        by_kind[interface.kind].append(interface)

    folders: dict[tuple[str, str, str], list[tuple[Interface, str]]] = defaultdict(list)
    for drop in by_kind[Kind.file_drop]:
        for place, stage in _drop_places(drop):
            folders[place].append((drop, stage))
    queues = {queue.locator: queue for queue in by_kind[Kind.queue]}
    tables: dict[str, list[Interface]] = defaultdict(list)
    for kind in (Kind.db_trigger, Kind.db_procedure):
        for interface in by_kind[kind]:
            on = interface.attributes.get("table")
            for table in [on, *interface.reads, *interface.writes]:
                if isinstance(table, str) and table:
                    tables[_short(table)].append(interface)
            edges += _table_edges(interface, interface.reads, interface.writes, on if isinstance(on, str) else None)
    operations: dict[str, list[Interface]] = defaultdict(list)
    for operation in by_kind[Kind.soap_operation]:
        operations[posixpath.basename(str(operation.attributes.get("wsdl", "")))].append(operation)

    for endpoint in by_kind[Kind.esb_endpoint]:
        evidence = [Evidence(source=endpoint.locator, detail="same location")]
        where = _place(endpoint.locator)
        for drop, stage in folders.get(where, []) if where else []:
            relation = (
                "moves_to" if stage != "drop" else ("writes" if endpoint.direction is Direction.out_of else "polls")
            )
            edges.append(Edge(source=endpoint.id, target=drop.id, relation=PREFIX + relation, evidence=evidence))
        if endpoint.locator in queues:
            edges.append(
                Edge(
                    source=endpoint.id, target=queues[endpoint.locator].id, relation=PREFIX + "queue", evidence=evidence
                )
            )
        used = [str(t) for t in endpoint.attributes.get("tables", []) or [] if t]
        reading = set(endpoint.attributes.get("operations", [])) <= _READ_OPERATIONS
        edges += _table_edges(endpoint, used if reading else [], [] if reading else used, None)
        for table in used:
            for database in tables.get(_short(str(table)), []):
                detail = f"table {table}"
                edges.append(
                    Edge(
                        source=endpoint.id,
                        target=database.id,
                        relation=PREFIX + "table",
                        evidence=[Evidence(source=endpoint.locator, detail=detail)],
                    )
                )
    for flow in by_kind[Kind.esb_flow]:
        wsdls = [flow.attributes.get("wsdl")] + [
            (e.get("details") or {}).get("wsdl") for e in flow.attributes.get("endpoints", [])
        ]
        for wsdl in {posixpath.basename(str(w)) for w in wsdls if w}:
            for operation in operations.get(wsdl, []):
                edges.append(
                    Edge(
                        source=flow.id,
                        target=operation.id,
                        relation=PREFIX + "implements",
                        evidence=[Evidence(source=wsdl)],
                    )
                )
    unique = {edge.key: edge for edge in edges}
    return catalog.model_copy(update={"edges": sorted(unique.values(), key=lambda e: e.key)})
