"""Scan ESB configurations and WSDL contracts (files, folders, URLs) into a catalog."""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

from lxml import etree

from inventory_scan.catalog import Catalog, Direction, Edge, Evidence, Interface, Kind, ScanWarning, Source
from inventory_scan.entities import EntityRule, Subject, resolve
from inventory_scan.errors import SourceError
from inventory_scan.esb import biztalk, camel, mule, spring_integration, synapse, uris, wsdl  # noqa: F401  (registers)
from inventory_scan.esb.base import Endpoint, Flow, Found, SoapOperation, recognise
from inventory_scan.esb.properties import Properties, project_root
from inventory_scan.esb.xmlsafe import MAX_BYTES, UnsafeXml, local, parse_bytes, parse_file
from inventory_scan.uri import split

FETCH_TIMEOUT = 15.0
MAX_IMPORT_DEPTH = 5
MAX_WARNINGS = 200
_EFFECTS = ("mail", "http", "soap")  # what a flow's targets do to the outside world
_SKIP_DIRS = {".git", ".svn", "node_modules", "target", "bin", "obj", "__pycache__"}


Loader = Callable[[str], etree._Element | None]  # an import's location → its document, if allowed


@dataclass
class EsbSource:
    target: str  # a folder, a file or an http(s) URL
    system: str | None = None


@dataclass
class _Log:
    locator: str
    warnings: list[ScanWarning] = field(default_factory=list)
    dropped: int = 0
    documents: int = 0
    unreadable: int = 0  # documents that may hold flows but could not be read: the source is partial

    def warn(self, path: str, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(ScanWarning(path=path, message=message))
        else:
            self.dropped += 1


@dataclass
class _Document:
    name: str
    root: etree._Element
    found: Found
    properties: Properties | None = None


def _looks_like_xml(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return True  # let the parse report why it cannot be read
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


async def _fetch(url: str) -> bytes:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        if response.status != 200:
            raise SourceError(f"{url}: HTTP {response.status} {response.reason}")
        data = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            data += chunk
            if len(data) > MAX_BYTES:
                raise SourceError(f"{url}: more than {MAX_BYTES:,} bytes, refused")
        return bytes(data)


def fetch(url: str) -> bytes:
    try:
        return asyncio.run(_fetch(url))
    except SourceError:
        raise
    except TimeoutError:
        raise SourceError(f"{url}: no answer within {FETCH_TIMEOUT:g} s") from None
    except Exception as exc:  # aiohttp's client errors have no common base worth naming here
        raise SourceError(f"{url}: cannot fetch: {exc}") from None


def _inside(base_url: str, url: str) -> bool:
    """An import may not leave the site and folder of the document that names it."""
    base, other = split(base_url), split(url)
    folder = posixpath.dirname(base.path) + "/"
    return (base.scheme, base.host, base.port) == (other.scheme, other.host, other.port) and posixpath.normpath(
        other.path
    ).startswith(folder)


class EsbScan:
    def __init__(self, rules: list[EntityRule] | None = None) -> None:
        self.rules = rules or []
        self.documents: list[_Document] = []
        self._root: Path | None = None
        self._properties: dict[Path, Properties] = {}

    def run(self, sources: list[EsbSource]) -> tuple[Catalog, list[str]]:
        catalog = Catalog()
        errors: list[str] = []
        for source in sources:
            log = _Log(source.target)
            self.documents = []
            self._properties = {}
            reason = None
            try:
                if source.target.startswith(("http://", "https://")):
                    self._url(source.target, log)
                else:
                    self._path(Path(source.target).expanduser(), log)
            except SourceError as exc:
                reason = str(exc)
            if reason is None and log.unreadable:
                total = log.unreadable + log.documents
                reason = f"{log.unreadable} of {total} documents could not be read (see the warnings)"
            if reason is not None:
                errors.append(f"{source.target}: {reason}")
            interfaces, edges = build(self.documents, source.system, log)
            interfaces = [_with_entity(interface, self.rules) for interface in interfaces]
            record = Source(
                locator=source.target if "://" in source.target else str(Path(source.target).expanduser().absolute()),
                kind="esb",
                scanned_at=datetime.now(UTC),
                complete=reason is None,
                reason=reason,
                warnings=log.warnings,
                warnings_dropped=log.dropped,
                stats={
                    "documents": log.documents,
                    "flows": sum(i.kind is Kind.esb_flow for i in interfaces),
                    "endpoints": sum(i.kind is Kind.esb_endpoint for i in interfaces),
                    "operations": sum(i.kind is Kind.soap_operation for i in interfaces),
                },
            )
            catalog = catalog.merge(Catalog(interfaces=interfaces, edges=edges, sources=[record]))
        return catalog, errors

    def _path(self, path: Path, log: _Log) -> None:
        self._root = path if path.is_dir() else path.parent
        if path.is_file():
            self._file(path, log, explicit=True)
            return
        if not path.is_dir():
            raise SourceError(f"{path} is neither a file nor a folder")
        for folder, dirs, files in os.walk(
            path, onerror=lambda exc: log.warn(str(exc.filename), f"cannot list folder: {exc.strerror}")
        ):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(files):
                file = Path(folder) / name
                if file.is_file() and _looks_like_xml(file):
                    self._file(file, log, explicit=False)

    def _file(self, path: Path, log: _Log, explicit: bool) -> None:
        notes: list[str] = []
        try:
            root = parse_file(path, notes)
        except UnsafeXml as exc:
            log.warn(str(path), f"skipped: {exc}")
            log.unreadable += 1
            return
        for note in notes:
            log.warn(str(path), note)
        self._document(
            str(path.absolute()), root, log, lambda location: self._import_file(path, location, log), explicit
        )
        if self.documents and self.documents[-1].root is root:
            self.documents[-1].properties = self._project_properties(path, log)

    def _project_properties(self, document: Path, log: _Log) -> Properties:
        """The property files of the document's project, read once per project."""
        project = project_root(document, self._root or document.parent)
        if project not in self._properties:
            self._properties[project] = Properties.of_project(project, log.warn)
        return self._properties[project]

    def _url(self, url: str, log: _Log) -> None:
        try:
            root = parse_bytes(fetch(url), url)
        except UnsafeXml as exc:
            raise SourceError(str(exc)) from None
        self._document(url, root, log, lambda location: self._import_url(url, location, log), explicit=True)

    def _document(self, name: str, root: etree._Element, log: _Log, load_import: Loader, explicit: bool) -> None:
        plugin = recognise(root)
        if plugin is None:
            log.warn(name, f"skipped: not an ESB or WSDL document (root element <{local(root.tag)}>)")
            return
        try:
            found = plugin.read(root, name)
        except Exception as exc:  # a plug-in bug must not cost the rest of the scan
            log.warn(name, f"skipped: the {plugin.name} reader failed on it: {type(exc).__name__}: {exc}")
            log.unreadable += 1
            return
        log.documents += 1
        if plugin.name == "wsdl" and root.tag == f"{{{wsdl.WSDL11}}}definitions":
            documents = [root, *self._imports(root, load_import)]
            found.operations = wsdl.operations(documents)
        self.documents.append(_Document(name, root, found))

    def _imports(self, root: etree._Element, load: Loader, depth: int = 0) -> list[etree._Element]:
        loaded: list[etree._Element] = []
        if depth >= MAX_IMPORT_DEPTH:
            return loaded
        for location in wsdl.imports(root):
            imported = load(location)
            if imported is not None:
                loaded.append(imported)
                loaded.extend(self._imports(imported, load, depth + 1))
        return loaded

    def _import_file(self, document: Path, location: str, log: _Log) -> etree._Element | None:
        folder = document.parent.resolve()
        target = (folder / location).resolve()
        if "://" in location or not target.is_relative_to(folder):
            log.warn(str(document), f"import {location!r} refused: it points outside the document's folder")
            return None
        try:
            return parse_file(target)
        except UnsafeXml as exc:
            log.warn(str(document), f"import {location!r} skipped: {exc}")
            return None

    def _import_url(self, document: str, location: str, log: _Log) -> etree._Element | None:
        url = urljoin(document, location)
        if not _inside(document, url):
            log.warn(document, f"import {location!r} refused: it points outside the document's site and folder")
            return None
        try:
            return parse_bytes(fetch(url), url)
        except (UnsafeXml, SourceError) as exc:
            log.warn(document, f"import {location!r} skipped: {exc}")
            return None


def _with_entity(interface: Interface, rules: list[EntityRule]) -> Interface:
    """Entity rules look at the document's path (flows, operations) or the endpoint's address."""
    if not rules:
        return interface
    where = str(interface.attributes.get("document") or interface.attributes.get("wsdl") or "")
    host = None
    if interface.kind is Kind.esb_endpoint:
        parts = split(interface.locator)
        where, host = parts.path or interface.locator, parts.host or None
    rule = resolve(rules, Subject(where, host))
    if rule is None:
        return interface
    return interface.model_copy(update={"entity": rule.entity})


LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}


def _endpoint_system(endpoint: Endpoint, product: str) -> str:
    """The host an endpoint's address names; for a folder, a queue or this machine (file:, jms:,
    localhost), the ESB whose flows use it: a scheme or `localhost` is not a system anyone owns."""
    host = split(endpoint.locator).host
    return host if host and host.lower() not in LOOPBACK else product


def _flow_locator(document: str, flow: Flow) -> str:
    return f"{flow.product}:{document}#{flow.kind}:{flow.name}"


def _operation_interface(document: str, operation: SoapOperation, system: str | None) -> Interface:
    protocols = {b["protocol"] for b in operation.bindings}
    return Interface.build(
        kind=Kind.soap_operation,
        system=system or operation.service,
        locator=f"wsdl:{document}#{operation.service}.{operation.operation}",
        name=f"{operation.service}.{operation.operation}",
        protocol="soap" if any(p.startswith("soap") for p in protocols) else "http",
        direction=Direction.into,
        formats=[f"xml:{{{operation.namespace}}}{operation.input}"] if operation.input else [],
        evidence=[Evidence(source=document, line=operation.line, detail=f"operation {operation.operation}")],
        attributes={
            "wsdl": document,
            "service": operation.service,
            "operation": operation.operation,
            "namespace": operation.namespace,
            "input": operation.input,
            "output": operation.output,
            "faults": operation.faults,
            "bindings": operation.bindings,
            "addresses": sorted({p["address"] for b in operation.bindings for p in b["ports"] if p["address"]}),
        },
    )


def _resolve(endpoint: Endpoint, properties: Properties) -> None:
    """Replace the endpoint's placeholders by the project's values, keeping the template beside."""
    resolved = properties.resolve(endpoint.locator)
    if resolved == endpoint.locator:
        return
    endpoint.details["template"] = endpoint.locator
    if not endpoint.protocol:  # the whole address was a placeholder: now its scheme says what it is
        endpoint.protocol = uris.protocol(resolved) or ""
    # `/${drop.root}/in` read as a relative folder, resolved to an absolute one: one slash is enough.
    endpoint.locator = re.sub(r"^(file|sftp|ftp)://(/?[^/]*)//+", r"\1://\2/", uris.locator(resolved))


def build(documents: list[_Document], system: str | None, log: _Log) -> tuple[list[Interface], list[Edge]]:
    """Interfaces and edges for the documents of one source."""
    interfaces: list[Interface] = []
    edges: list[Edge] = []
    endpoint_uses: dict[str, list[tuple[str, Endpoint, str]]] = defaultdict(list)
    flows: list[tuple[str, Flow, Interface]] = []
    for document in documents:
        for flow in document.found.flows:
            if document.properties is not None:
                for endpoint in flow.endpoints:
                    _resolve(endpoint, document.properties)
            endpoints = [e for e in flow.endpoints if e.locator]
            sources = [e.locator for e in endpoints if e.role == "source"]
            targets = [e.locator for e in endpoints if e.role == "target"]
            direction = Direction.both if sources and targets else (Direction.into if sources else Direction.out_of)
            interface = Interface.build(
                kind=Kind.esb_flow,
                system=system or flow.product,
                locator=_flow_locator(document.name, flow),
                name=flow.name,
                protocol=flow.product,
                direction=direction if endpoints else Direction.unknown,
                reads=sorted(set(sources)),
                writes=sorted(set(targets)),
                side_effects=sorted({e.protocol for e in endpoints if e.role == "target" and e.protocol in _EFFECTS}),
                evidence=[Evidence(source=document.name, line=flow.line, detail=f"{flow.product} {flow.kind}")],
                attributes={
                    "product": flow.product,
                    "flow_kind": flow.kind,
                    "document": document.name,
                    "endpoints": [
                        {
                            "role": e.role,
                            "protocol": e.protocol,
                            "locator": e.locator,
                            "operation": e.operation,
                            "line": e.line,
                            **({"details": e.details} if e.details else {}),
                        }
                        for e in endpoints
                    ],
                    "calls": flow.calls,
                    **flow.details,
                },
            )
            interfaces.append(interface)
            flows.append((document.name, flow, interface))
            for endpoint in endpoints:
                endpoint_uses[endpoint.locator].append((document.name, endpoint, interface.id))
        for operation in document.found.operations:
            interfaces.append(_operation_interface(document.name, operation, system))

    products = {interface.id: flow.product for _, flow, interface in flows}
    for locator, uses in sorted(endpoint_uses.items()):
        directions = {endpoint.direction for _, endpoint, _ in uses}
        # One address, several readings (plain HTTP here, SOAP 1.2 there): keep the most specific.
        protocol = max((e.protocol for _, e, _ in uses), key=lambda p: (p == "soap", p != "", p))
        details: dict[str, object] = {}
        for _, endpoint, _ in uses:
            details.update(endpoint.details)
        first = uses[0][1]
        endpoint_interface = Interface.build(
            kind=Kind.esb_endpoint,
            system=system or _endpoint_system(first, products.get(uses[0][2], "unknown")),
            locator=locator,
            name=", ".join(sorted({e.name for _, e, _ in uses if e.name})) or locator,
            protocol=protocol or "unknown",
            direction=directions.pop() if len(directions) == 1 else Direction.both,
            evidence=[Evidence(source=doc, line=e.line, detail=f"{e.operation}") for doc, e, _ in uses[:20]],
            attributes={"operations": sorted({e.operation for _, e, _ in uses}), **details},
        )
        interfaces.append(endpoint_interface)
        for doc, endpoint, flow_id in uses:
            relation = "consumes" if endpoint.role == "source" else "produces"
            edges.append(
                Edge(
                    source=flow_id,
                    target=endpoint_interface.id,
                    relation=relation,
                    evidence=[Evidence(source=doc, line=endpoint.line)],
                )
            )

    # Internal links: a flow that calls an address another flow of the same product exposes.
    exposed: dict[tuple[str, str], list[Interface]] = defaultdict(list)
    for _, flow, interface in flows:
        for address in flow.exposes:
            exposed[(flow.product, address)].append(interface)
    for doc_name, flow, interface in flows:
        for address in flow.calls:
            for callee in exposed.get((flow.product, address), []):
                if callee.id != interface.id:
                    edges.append(
                        Edge(
                            source=interface.id,
                            target=callee.id,
                            relation="calls",
                            evidence=[Evidence(source=doc_name, detail=address)],
                        )
                    )
    unique_edges = {edge.key: edge for edge in edges}
    return interfaces, list(unique_edges.values())
