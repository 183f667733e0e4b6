"""Apache Camel XML routes: Spring (`beans` → `camelContext`), Blueprint, and standalone `routes`.

Each route's `from` is its source; `to`, `toD`, `wireTap`, `enrich`, `inOnly`, `inOut` are
targets, `pollEnrich` reads. `direct:`/`seda:`/`vm:` addresses link routes to each other instead of
naming an external endpoint. `{{placeholders}}` are kept as written.
"""

from __future__ import annotations

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

NAMESPACES = {
    "http://camel.apache.org/schema/spring",
    "http://camel.apache.org/schema/blueprint",
    "http://camel.apache.org/schema/xml-io",
}
CXF = "http://camel.apache.org/schema/cxf"
_TARGETS = {"to": "send", "toD": "send", "wireTap": "wiretap", "enrich": "enrich", "inOnly": "send", "inOut": "request"}
_SQL_HOLDERS = ("constant", "simple")


def _camel(element: etree._Element) -> bool:
    return namespace(element.tag) in NAMESPACES


def recognises(root: etree._Element) -> bool:
    if _camel(root):
        return True
    return local(root.tag) in ("beans", "blueprint") and any(
        _camel(e) and local(e.tag) in ("camelContext", "routeContext", "routes") for e in root.iter()
    )


def _cxf_endpoints(root: etree._Element) -> dict[str, dict[str, str]]:
    endpoints = {}
    for element in root.iter(f"{{{CXF}}}cxfEndpoint"):
        endpoints[element.get("id", "")] = {str(k): str(v) for k, v in element.attrib.items() if k != "id"}
    return endpoints


def _named_endpoints(root: etree._Element) -> dict[str, str]:
    return {e.get("id", ""): e.get("uri", "") for e in root.iter() if _camel(e) and local(e.tag) == "endpoint"}


def _resolve(element: etree._Element, named: dict[str, str]) -> str:
    uri = element.get("uri") or ""
    ref = element.get("ref")
    if not uri and ref:
        uri = named.get(ref, f"ref:{ref}")
    if uri.startswith("ref:"):
        uri = named.get(uri[4:], uri)
    return uri


def _endpoint(
    uri: str, role: str, operation: str, line: int | None, sql: str, cxf: dict[str, dict[str, str]]
) -> Endpoint | None:
    family = uris.protocol(uri)
    if family is None:
        return None
    details: dict[str, object] = {}
    locator = uris.locator(uri)
    found = uris.scheme(uri)
    if found == "cxf" and uri.startswith("cxf:bean:"):
        bean = cxf.get(uri[len("cxf:bean:") :].split("?")[0], {})
        details = {
            "wsdl": bean.get("wsdlURL"),
            "service": bean.get("serviceName"),
            "endpoint": bean.get("endpointName"),
        }
        locator = uris.strip_credentials(bean.get("address") or uri)
    elif found == "sql":
        query = uri[4:].split("?", 1)[0]
        details = {"sql": query, "tables": uris.table_names(query)}
        locator = "sql:" + (uri.split("dataSource=", 1)[1].split("&")[0] if "dataSource=" in uri else "default")
    elif family == "db" and sql:
        details = {"sql": sql[:500], "tables": uris.table_names(sql)}
    tables = details.get("tables")
    if isinstance(tables, list) and len(tables) == 1:
        locator = f"{locator}#{tables[0]}"
    if family == "db":
        operation = uris.sql_verb(str(details.get("sql", ""))) or operation
    return Endpoint(role, family or uris.scheme(uri), locator, operation, line, details)


def _route(route: etree._Element, index: int, named: dict[str, str], cxf: dict[str, dict[str, str]]) -> Flow:
    flow = Flow("camel", "route", route.get("id") or f"route{index}", line(route))
    sql = ""
    for element in route.iter():
        name = local(element.tag)
        if name in _SQL_HOLDERS and uris.sql_verb(element.text or ""):
            sql = (element.text or "").strip()
            continue
        if name == "from" or name in _TARGETS or name == "pollEnrich":
            uri = _resolve(element, named)
            if not uri and name == "pollEnrich":
                uri = "".join(str(text) for text in element.itertext()).strip()
            if not uri:
                continue
            if uris.scheme(uri) in uris.LINKS:
                address = uri.split("?", 1)[0]
                (flow.exposes if name == "from" else flow.calls).append(address)
                continue
            if uris.scheme(uri) in ("timer", "scheduler", "quartz") and name == "from":
                flow.details["schedule"] = uri
                continue
            role = "source" if name in ("from", "pollEnrich") else "target"
            operation = "listener" if name == "from" else ("poll" if name == "pollEnrich" else _TARGETS[name])
            endpoint = _endpoint(uri, role, operation, line(element), sql, cxf)
            if endpoint:
                flow.endpoints.append(endpoint)
    return flow


@plugin("camel", recognises)
def read(root: etree._Element, source: str) -> Found:
    found = Found("camel")
    named, cxf = _named_endpoints(root), _cxf_endpoints(root)
    routes = [e for e in root.iter() if _camel(e) and local(e.tag) == "route"]
    for index, route in enumerate(routes, start=1):
        found.flows.append(_route(route, index, named, cxf))
    return found
