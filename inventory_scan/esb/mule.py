"""Mule 3 and Mule 4 applications: flows, their message sources and operations, resolved configs.

Mule 3 names endpoints by address (`sftp://…`) or by host/port/path attributes; Mule 4 puts host and
port in a global config (`config-ref`) and the folder, queue or path on the operation. Both are read
into the same endpoint locators, so a migrated application yields the endpoints of its original.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

CORE = "http://www.mulesoft.org/schema/mule/core"
_DB_OPERATIONS = {
    "select",
    "insert",
    "update",
    "delete",
    "stored-procedure",
    "bulk-insert",
    "bulk-update",
    "bulk-delete",
    "execute-ddl",
    "execute-script",
    "query-single",
}
_FILE_MODULES = {"file", "sftp", "ftp", "ftps"}
# What a Mule 3 outbound endpoint does, named as its Mule 4 operation is.
_OUTBOUND = {"file": "write", "sftp": "write", "ftp": "write", "jms": "publish", "amqp": "publish", "http": "request"}
_LITERAL = re.compile(r"""['"]([^'"]*)['"]""")


def _module(element: etree._Element) -> str:
    """`http://www.mulesoft.org/schema/mule/sftp` → `sftp`; the core namespace → ``."""
    ns = namespace(element.tag)
    return "" if ns == CORE else ns.rstrip("/").rpartition("/")[2]


def _literal(value: str | None) -> str | None:
    """A DataWeave or MEL expression's leading literal (`#['/target/' ++ x]` → `/target/`)."""
    if value is None or not value.startswith("#["):
        return value
    match = _LITERAL.search(value)
    return match.group(1) if match else None


def _folder(path: str | None) -> str:
    """A remote folder: absolute, or `~/…` for one relative to the login's home (`/~/x` in Mule 3)."""
    path = (path or "").rstrip("/") or "/"
    if path.startswith("/~/") or path == "/~":
        return path[1:]
    return path if path.startswith(("/", "~", "$")) else f"~/{path}"


def _remote(scheme: str, netloc: str, folder: str) -> str:
    return f"{scheme}://{netloc}{'' if folder.startswith('/') else '/'}{folder}"


class _Configs:
    """Global configs by name, with their connection's attributes folded in."""

    def __init__(self, root: etree._Element) -> None:
        self._by_name: dict[str, dict[str, Any]] = {}
        for element in root:
            name = element.get("name")
            if not isinstance(element.tag, str) or not name or local(element.tag) in ("flow", "sub-flow"):
                continue
            connection = next((local(child.tag) for child in element if local(child.tag).endswith("connection")), "")
            attributes: dict[str, Any] = {
                "_module": _module(element),
                "_kind": local(element.tag),
                "_connection": connection,
            }
            for node in element.iter():
                if isinstance(node.tag, str):
                    attributes.update({str(k): v for k, v in node.attrib.items() if k not in attributes})
            self._by_name[name] = attributes

    def get(self, element: etree._Element) -> dict[str, Any]:
        ref = element.get("config-ref") or element.get("connector-ref")
        return self._by_name.get(ref or "", {})


def _netloc(config: dict[str, Any], element: etree._Element) -> str:
    host = element.get("host") or config.get("host") or "localhost"
    port = element.get("port") or config.get("port")
    return f"{host}:{port}" if port else host


def _sql(element: etree._Element) -> str:
    for node in element.iter():
        if local(node.tag) in ("sql", "parameterized-query", "dynamic-query", "template-query"):
            return (node.text or "").strip()
    return element.get("sql") or element.get("query") or ""


def _db_locator(config: dict[str, Any]) -> str:
    url = config.get("url")
    if url:
        return re.split(r"[;?]", uris.strip_credentials(url), maxsplit=1)[0]
    # db:my-sql-connection → mysql; Mule 3's db:oracle-config → oracle
    kind = str(config.get("_connection") or config.get("_kind") or "db")
    kind = kind.replace("-connection", "").replace("-config", "").replace("-", "")
    host = config.get("host", "localhost")
    port = f":{config['port']}" if config.get("port") else ""
    return f"{kind}://{host}{port}/{config.get('database', '')}"


def _endpoint(element: etree._Element, configs: _Configs) -> Endpoint | str | None:
    """An element of a flow as an endpoint, a flow reference (str), or None."""
    module, name = _module(element), local(element.tag)
    config = configs.get(element)
    at = line(element)
    if module == "" and name == "flow-ref":
        return element.get("name") or None
    address = element.get("address")
    if name in ("inbound-endpoint", "outbound-endpoint"):
        role = "source" if name.startswith("inbound") else "target"
        if not address and module in _FILE_MODULES:
            address = f"{module}://{_netloc(config, element)}{element.get('path', '')}"
        elif not address and module == "jms":
            address = f"jms://{element.get('queue') or element.get('topic') or ''}"
        if not address:
            return None
        family = uris.protocol(address)
        if family is None:
            return None
        target = uris.locator(address)
        if family in ("sftp", "ftp"):
            scheme, _, rest = target.partition("://")
            host, _, remote_path = rest.partition("/")
            target = _remote(scheme, host, _folder("/" + remote_path))
        return Endpoint(role, family, target, "listener" if role == "source" else _OUTBOUND.get(family, "send"), at)
    if module in _FILE_MODULES and name in ("listener", "write", "read", "list"):
        role = "source" if name == "listener" else "target"
        field = "directory" if name in ("listener", "list") else "path"
        path = _literal(element.get(field)) or ""
        if name == "write" and path and not path.endswith("/"):
            path = path.rsplit("/", 1)[0] or "/"  # write names a file: its folder is the endpoint
        if module == "file":
            base = str(config.get("workingDir", ""))
            folder = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
            folder = folder.rstrip("/") or "/"
            return Endpoint(role, "file", f"file://{folder}" if folder.startswith("/") else f"file:{folder}", name, at)
        family = "sftp" if module == "sftp" else "ftp"
        return Endpoint(role, family, _remote(module, _netloc(config, element), _folder(path)), name, at)
    if module == "http" and name == "request" and element.get("url"):
        method = element.get("method") or "GET"
        return Endpoint("target", "http", uris.locator(str(element.get("url"))), name, at, {"method": method})
    if module == "http" and name in ("listener", "request"):
        base = config.get("basePath", "")
        route = f"/{base.strip('/')}/{(element.get('path') or '').lstrip('/')}".replace("//", "/")
        scheme = str(config.get("protocol", "http")).lower()
        http: dict[str, Any] = {
            "method": element.get("method") or element.get("allowedMethods") or ("GET" if name == "request" else "*")
        }
        role = "source" if name == "listener" else "target"
        return Endpoint(role, "http", f"{scheme}://{_netloc(config, element)}{route}", name, at, http)
    if module in ("jms", "amqp") and name in ("listener", "publish", "consume", "publish-consume"):
        destination = _literal(element.get("destination") or element.get("queueName") or element.get("exchangeName"))
        kind = "topic" if element.get("destinationType", "").upper() == "TOPIC" else "queue"
        role = "source" if name in ("listener", "consume") else "target"
        return Endpoint(role, module, f"{module}:{kind}:{destination}", name, at)
    if module == "db" and name in _DB_OPERATIONS:
        sql = _sql(element)
        tables = uris.table_names(sql) if sql else []
        target = _db_locator(config)
        locator = f"{target}#{tables[0]}" if len(tables) == 1 else target
        return Endpoint("target", "db", locator, name, at, {"tables": tables, "sql": sql[:500]})
    if module in ("wsc", "ws") and name in ("consume", "consumer"):
        address = config.get("address") or config.get("wsdlLocation") or ""
        details: dict[str, Any] = {
            "operation": element.get("operation"),
            "service": config.get("service"),
            "port": config.get("port"),
            "wsdl": config.get("wsdlLocation"),
        }
        return Endpoint("target", "soap", uris.strip_credentials(address), "consume", at, details)
    if module in ("email", "smtp") and name in ("send", "outbound-endpoint"):
        return Endpoint("target", "mail", f"smtp://{_netloc(config, element)}", "send", at)
    if module == "" and name in ("scheduler", "poll"):
        return Endpoint(
            "source", "", "schedule:", "schedule", at, {"schedule": dict(element[0].attrib) if len(element) else {}}
        )
    return None


def recognises(root: etree._Element) -> bool:
    return root.tag == f"{{{CORE}}}mule"


@plugin("mule", recognises)
def read(root: etree._Element, source: str) -> Found:
    configs = _Configs(root)
    found = Found("mule")
    for element in root:
        if local(element.tag) not in ("flow", "sub-flow") or namespace(element.tag) != CORE:
            continue
        flow = Flow("mule", local(element.tag), element.get("name", "?"), line(element))
        flow.exposes.append(flow.name)  # what flow-ref names
        for node in element.iter():
            if node is element or not isinstance(node.tag, str):
                continue
            found_endpoint = _endpoint(node, configs)
            if isinstance(found_endpoint, str):
                flow.calls.append(found_endpoint)
            elif found_endpoint is not None and found_endpoint.operation != "schedule":
                flow.endpoints.append(found_endpoint)
            elif found_endpoint is not None:
                flow.details["schedule"] = found_endpoint.details["schedule"]
        found.flows.append(flow)
    return found
