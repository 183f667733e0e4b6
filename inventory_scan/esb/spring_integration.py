"""Spring Integration XML: channel adapters and gateways, chained into flows through their channels.

A flow starts at each inbound adapter or gateway and follows `input-channel` → `output-channel`
through transformers and activators to the outbound adapters it reaches.
"""

from __future__ import annotations

from collections import defaultdict, deque

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

BASE = "http://www.springframework.org/schema/integration"
_INBOUND = {
    "inbound-channel-adapter",
    "message-driven-channel-adapter",
    "inbound-gateway",
    "inbound-streaming-channel-adapter",
}
_OUTBOUND = {"outbound-channel-adapter", "outbound-gateway"}
# module → the attributes that name its address, in order of preference
_ADDRESS = {
    "file": ("directory",),
    "ftp": ("remote-directory", "remote-directory-expression"),
    "sftp": ("remote-directory", "remote-directory-expression"),
    "jms": ("destination-name", "destination", "request-destination-name", "request-destination"),
    "amqp": ("queue-names", "exchange-name", "routing-key"),
    "http": ("url", "path", "request-mapping"),
    "ws": ("uri", "path"),
    "mail": ("store-uri", "mail-sender", "host"),
    "jdbc": ("query", "data-source"),
}


def recognises(root: etree._Element) -> bool:
    return local(root.tag) == "beans" and any(str(ns).startswith(BASE) for ns in root.nsmap.values())


def _module(element: etree._Element) -> str:
    ns = namespace(element.tag)
    return ns[len(BASE) + 1 :] if ns.startswith(BASE + "/") else ""


def _session_hosts(root: etree._Element) -> dict[str, str]:
    """Session factory beans → host[:port], for ftp/sftp adapters."""
    hosts = {}
    for bean in root.iter("{http://www.springframework.org/schema/beans}bean"):
        properties = {p.get("name"): p.get("value") for p in bean if local(p.tag) == "property"}
        if properties.get("host"):
            port = properties.get("port")
            hosts[bean.get("id", "")] = f"{properties['host']}:{port}" if port else str(properties["host"])
    return hosts


def _endpoint(element: etree._Element, role: str, hosts: dict[str, str]) -> Endpoint | None:
    module = _module(element)
    value = next((element.get(a) for a in _ADDRESS.get(module, ()) if element.get(a)), None)
    if value is None:
        return None
    operation = local(element.tag)
    if module == "file":
        locator = value if value.startswith("file:") else f"file:{value}"
        return Endpoint(role, "file", locator, operation, line(element))
    if module in ("ftp", "sftp"):
        host = hosts.get(element.get("session-factory", ""), "{session-factory}")
        folder = value if value.startswith("/") else f"/~/{value}".replace("/~/~", "/~")
        return Endpoint(role, module, f"{module}://{host}{folder}", operation, line(element))
    if module in ("jms", "amqp"):
        return Endpoint(role, module, f"{module}:queue:{value}", operation, line(element))
    if module == "jdbc":
        tables = uris.table_names(value) if " " in value else []
        locator = f"jdbc:{element.get('data-source', 'dataSource')}" + (f"#{tables[0]}" if len(tables) == 1 else "")
        return Endpoint(role, "db", locator, operation, line(element), {"sql": value, "tables": tables})
    family = "soap" if module == "ws" else (uris.protocol(value) or module)
    served = role == "source" and not value.startswith(("http:", "https:"))
    return Endpoint(role, family, f"http://{{app}}{value}" if served else uris.locator(value), operation, line(element))


@plugin("spring-integration", recognises)
def read(root: etree._Element, source: str) -> Found:
    hosts = _session_hosts(root)
    consumers: dict[str, list[etree._Element]] = defaultdict(list)  # channel → elements reading it
    starts: list[etree._Element] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or not namespace(element.tag).startswith(BASE):
            continue
        name = local(element.tag)
        if name in _INBOUND:
            starts.append(element)
        channel = element.get("input-channel") or (
            element.get("channel") or element.get("id") if name in _OUTBOUND else None
        )
        if channel:
            consumers[channel].append(element)
    found = Found("spring-integration")
    for start in starts:
        flow = Flow("spring-integration", "channel-flow", start.get("id") or local(start.tag), line(start))
        first = _endpoint(start, "source", hosts)
        if first:
            flow.endpoints.append(first)
        pollers = [p for p in start if local(p.tag) == "poller"]
        if pollers:
            flow.details["schedule"] = {k: v for k, v in pollers[0].attrib.items() if k != "id"}
        queue = deque([start.get("channel") or start.get("request-channel") or start.get("id")])
        visited: set[str] = set()
        while queue:
            channel = queue.popleft()
            if not channel or channel in visited:
                continue
            visited.add(channel)
            for consumer in consumers.get(channel, []):
                if local(consumer.tag) in _OUTBOUND:
                    endpoint = _endpoint(consumer, "target", hosts)
                    if endpoint:
                        flow.endpoints.append(endpoint)
                    queue.append(consumer.get("reply-channel"))
                else:
                    flow.details.setdefault("steps", []).append(local(consumer.tag))
                    queue.append(consumer.get("output-channel"))
        flow.details["channels"] = sorted(visited)
        found.flows.append(flow)
    return found
