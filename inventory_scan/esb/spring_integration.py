"""Spring Integration XML: every adapter and gateway that names an endpoint, and the flows through
their channels.

Spring Integration is written in many namespaces (core, file, ftp/sftp, jms, amqp, http, ws, jdbc,
ip, mail, redis, mongodb, kafka …) inside any Spring context, usually a `<beans>` root with `int:`
prefixes, or with the integration namespace as the default. An element is read by its local name,
whatever its namespace's prefix:

- where messages come in: inbound channel adapters and gateways (`tcp-inbound-gateway`,
  `stored-proc-inbound-channel-adapter` …), message-driven adapters, and messaging gateways
  (`<int:gateway>`: the Java interface an application calls);
- where they go out: outbound channel adapters and gateways, also inside a `<chain>`.

A flow starts at each way in and follows its channels (`channel`, `request-channel`,
`input-channel` → `output-channel`, a gateway's `reply-channel`, a router's mappings) to the ways
out it reaches. A way out that no way in of its document reaches is a flow of its own, so it is
cataloged all the same. Each endpoint carries the element's id (or, without one, a name made the way
Spring makes bean names: `jdbc:outbound-gateway#0`), its protocol and its address: a folder, a
queue, a URL, a table or procedure, a host and port from the connection or session factory it names.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

BASE = "http://www.springframework.org/schema/integration"
BEANS = "http://www.springframework.org/schema/beans"
_INBOUND = {
    "inbound-channel-adapter",
    "message-driven-channel-adapter",
    "inbound-gateway",
    "inbound-streaming-channel-adapter",
    "stdin-channel-adapter",
    "imap-idle-channel-adapter",
    "queue-inbound-channel-adapter",
    "queue-inbound-gateway",
    "store-inbound-channel-adapter",
}
_OUTBOUND = {
    "outbound-channel-adapter",
    "outbound-gateway",
    "stdout-channel-adapter",
    "stderr-channel-adapter",
    "logging-channel-adapter",
    "queue-outbound-channel-adapter",
    "queue-outbound-gateway",
    "store-outbound-channel-adapter",
}
# module → the attributes that name its address, in order of preference
_ADDRESS = {
    "file": ("directory", "directory-expression"),
    "ftp": ("remote-directory", "remote-directory-expression"),
    "sftp": ("remote-directory", "remote-directory-expression"),
    "jms": ("destination-name", "destination", "request-destination-name", "request-destination"),
    "amqp": ("queue-names", "exchange-name", "routing-key"),
    "http": ("url", "path", "url-expression"),
    "ws": ("uri", "destination-provider"),
    "mail": ("store-uri", "mail-sender", "host"),
    "jdbc": ("query", "update", "stored-procedure-name", "data-source"),
    "jpa": ("entity-class", "jpa-query", "named-query"),
    "redis": ("topics", "topic", "queue", "key", "channel-expression"),
    "mongodb": ("collection-name", "collection-name-expression"),
    "kafka": ("topic", "topics", "topic-expression"),
    "mqtt": ("topics", "default-topic", "url"),
    "feed": ("url", "feed-url"),
    "ip": ("connection-factory", "host", "port"),
}


def _integration(element: etree._Element) -> bool:
    ns = namespace(element.tag)
    return ns == BASE or ns.startswith(BASE + "/")


def recognises(root: etree._Element) -> bool:
    """Any document that declares integration elements, whatever its root (`<beans>`,
    `<beans:beans>` with the integration namespace as the default, or a profile's nested beans)."""
    if any(str(ns) == BASE or str(ns).startswith(BASE + "/") for ns in root.nsmap.values()):
        return True
    return any(_integration(element) for element in root.iter() if isinstance(element.tag, str))


def _module(element: etree._Element) -> str:
    ns = namespace(element.tag)
    return ns[len(BASE) + 1 :] if ns.startswith(BASE + "/") else ""


def _role(element: etree._Element) -> str | None:
    """'source' for a way in, 'target' for a way out, None for the rest (channels, transformers …)."""
    name = local(element.tag)
    if name == "gateway" and not _module(element):
        return "source"  # a messaging gateway: the interface an application calls
    if name in _INBOUND or name.endswith(("-inbound-gateway", "-inbound-channel-adapter")):
        return "source"
    if name in _OUTBOUND or name.endswith(("-outbound-gateway", "-outbound-channel-adapter")):
        return "target"
    return None


class _Beans:
    """What the document's beans say of the endpoints that name them: hosts of session and mail
    factories (followed through a caching factory's constructor argument), queues of destinations,
    and the connection factories of the ip module."""

    def __init__(self, root: etree._Element) -> None:
        self.properties: dict[str, dict[str, str]] = {}
        self.refs: dict[str, str] = {}
        self.arguments: dict[str, str] = {}
        self.factories: dict[str, etree._Element] = {}
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            name, identity = local(element.tag), element.get("id", "")
            if namespace(element.tag) == BEANS and name == "bean" and identity:
                values = {p.get("name", ""): p.get("value", "") for p in element if local(p.tag) == "property"}
                self.properties[identity] = {k: v for k, v in values.items() if v}
                for argument in (a for a in element if local(a.tag) == "constructor-arg"):
                    if argument.get("ref"):
                        self.refs[identity] = argument.get("ref", "")
                    elif argument.get("value"):
                        self.arguments[identity] = argument.get("value", "")
            elif _integration(element) and name.endswith("connection-factory") and identity:
                self.factories[identity] = element

    def host(self, identity: str) -> str | None:
        seen: set[str] = set()
        while identity and identity not in seen:
            seen.add(identity)
            properties = self.properties.get(identity, {})
            if properties.get("host"):
                port = properties.get("port")
                return f"{properties['host']}:{port}" if port else properties["host"]
            identity = self.refs.get(identity, "")
        return None

    def destination(self, identity: str) -> str:
        """A destination bean's queue (`new ActiveMQQueue("queue.demo")`), else the bean's name."""
        return self.arguments.get(identity) or self.properties.get(identity, {}).get("physicalName") or identity


def _name(element: etree._Element, counters: dict[str, int]) -> str:
    if element.get("id"):
        return str(element.get("id"))
    kind = f"{_module(element) or 'int'}:{local(element.tag)}"
    number = counters[kind]
    counters[kind] += 1
    return f"{kind}#{number}"


def _endpoint(element: etree._Element, role: str, name: str, beans: _Beans) -> Endpoint | None:
    module = _module(element)
    operation = local(element.tag)
    at = line(element)
    if operation == "gateway" and not module:
        interface = element.get("service-interface") or "org.springframework.integration.gateway.RequestReplyExchanger"
        methods = [m.get("name", "") for m in element if local(m.tag) == "method"]
        return Endpoint(role, "java", f"java:{interface}", "call", at, {"methods": methods} if methods else {}, name)
    if module == "ip":
        return _socket(element, role, name, beans)
    value = next((element.get(a) for a in _ADDRESS.get(module, ()) if element.get(a)), None)
    if module in ("ftp", "sftp"):
        host = beans.host(element.get("session-factory", "")) or "{session-factory}"
        folder = value or "/"
        folder = folder if folder.startswith("/") else f"/~/{folder}".replace("/~/~", "/~")
        return Endpoint(role, module, f"{module}://{host}{folder}", operation, at, name=name)
    if value is None:
        return None
    if module == "file":
        locator = value if value.startswith("file:") else f"file:{value}"
        return Endpoint(role, "file", locator, operation, at, name=name)
    if module in ("jms", "amqp"):
        if module == "jms" and value in (element.get("destination"), element.get("request-destination")):
            value = beans.destination(value)
        return Endpoint(role, module, f"{module}:queue:{value}", operation, at, name=name)
    if module == "jdbc":
        return _database(element, role, name)
    if module == "jpa":
        return Endpoint(role, "db", f"jpa:{value}", operation, at, name=name)
    if module in ("redis", "mongodb", "kafka", "mqtt") and not value.startswith(("tcp:", "ssl:", "ws:")):
        return Endpoint(role, module, f"{module}:{value}", operation, at, name=name)
    if module == "mail" and value == element.get("mail-sender"):
        sender = beans.host(value)
        return Endpoint(role, "mail", f"smtp://{sender}" if sender else f"smtp://{{{value}}}", operation, at, name=name)
    family = "soap" if module == "ws" else (uris.protocol(value) or module)
    served = role == "source" and module == "http" and not value.startswith(("http:", "https:"))
    locator = f"http://{{app}}{value}" if served else uris.locator(value)
    return Endpoint(role, family, locator, operation, at, name=name)


def _database(element: etree._Element, role: str, name: str) -> Endpoint:
    statements = [element.get(a, "") for a in ("query", "update") if element.get(a)]
    procedure = element.get("stored-procedure-name")
    tables = sorted({t for sql in statements for t in uris.table_names(" ".join(sql.split()))})
    source = element.get("data-source", "dataSource")
    details: dict[str, object] = {"sql": " ; ".join(" ".join(s.split()) for s in statements), "tables": tables}
    if procedure:
        details = {"procedure": procedure}
    place = procedure or (tables[0] if len(tables) == 1 else "")
    return Endpoint(
        role, "db", f"jdbc:{source}" + (f"#{place}" if place else ""), local(element.tag), line(element), details, name
    )


def _socket(element: etree._Element, role: str, name: str, beans: _Beans) -> Endpoint | None:
    """A TCP or UDP endpoint: the host and port of the connection factory it names, or its own."""
    operation = local(element.tag)
    transport = "udp" if operation.startswith("udp") else "tcp"
    factory = beans.factories.get(element.get("connection-factory", ""))
    source = factory if factory is not None else element
    host, port = source.get("host"), source.get("port")
    if port is None and host is None:
        return None
    serving = (factory is not None and factory.get("type") == "server") or (factory is None and role == "source")
    place = f"{{app}}:{port}" if serving or not host else f"{host}:{port}" if port else host
    return Endpoint(role, transport, f"{transport}://{place}", operation, line(element), name=name)


def _reads(element: etree._Element) -> list[str]:
    """The channels an element takes its messages from."""
    if _role(element) == "target":
        channel = element.get("channel") or element.get("request-channel") or element.get("input-channel")
        return [channel or str(element.get("id", ""))]
    return [element.get("input-channel", "")]


def _sends(element: etree._Element) -> Iterator[str]:
    """The channels an element passes messages on to."""
    if _role(element) == "source":
        yield element.get("channel") or element.get("request-channel") or element.get("default-request-channel") or ""
        yield from (m.get("request-channel", "") for m in element if local(m.tag) == "method")
        if not (element.get("channel") or element.get("request-channel")) and local(element.tag) != "gateway":
            yield element.get("id", "")  # an adapter without a channel is the channel named by its id
        return
    for attribute in ("output-channel", "reply-channel", "default-output-channel", "discard-channel"):
        if element.get(attribute):
            yield element.get(attribute, "")
    for mapping in element:  # a router's mappings and recipients
        if isinstance(mapping.tag, str) and local(mapping.tag) in ("mapping", "recipient") and mapping.get("channel"):
            yield mapping.get("channel", "")


@plugin("spring-integration", recognises)
def read(root: etree._Element, source: str) -> Found:
    beans = _Beans(root)
    counters: dict[str, int] = defaultdict(int)
    consumers: dict[str, list[etree._Element]] = defaultdict(list)  # channel → elements reading it
    starts: list[etree._Element] = []
    outbound: list[etree._Element] = []
    names: dict[etree._Element, str] = {}
    for element in root.iter():
        if not isinstance(element.tag, str) or not _integration(element):
            continue
        role = _role(element)
        if role is not None:
            names[element] = _name(element, counters)
        parent = element.getparent()
        in_chain = parent is not None and local(parent.tag) == "chain" and _integration(parent)
        if role == "source":
            starts.append(element)
        elif role == "target":
            outbound.append(element)
        if in_chain:
            continue  # a chain's handlers read what the chain reads
        for channel in _reads(element) if role != "source" else []:
            if channel:
                consumers[channel].append(element)
    found = Found("spring-integration")
    reached: set[etree._Element] = set()
    for start in starts:
        flow = _flow(start, names[start], "source", beans)
        queue = deque(_sends(start))
        visited: set[str] = set()
        while queue:
            channel = queue.popleft()
            if not channel or channel in visited:
                continue
            visited.add(channel)
            for consumer in consumers.get(channel, []):
                handlers = list(consumer) if local(consumer.tag) == "chain" else [consumer]
                for handler in handlers:
                    if not isinstance(handler.tag, str) or not _integration(handler):
                        continue
                    if _role(handler) == "target":
                        reached.add(handler)
                        endpoint = _endpoint(handler, "target", names[handler], beans)
                        if endpoint:
                            flow.endpoints.append(endpoint)
                    else:
                        flow.details.setdefault("steps", []).append(local(handler.tag))
                queue.extend(_sends(consumer))
        flow.details["channels"] = sorted(visited)
        found.flows.append(flow)
    for element in outbound:
        if element not in reached:
            flow = _flow(element, names[element], "target", beans)
            if flow.endpoints:  # a console or a log is no integration point
                flow.details["channels"] = sorted({c for c in _reads(element) if c})
                found.flows.append(flow)
    return found


def _flow(element: etree._Element, name: str, role: str, beans: _Beans) -> Flow:
    flow = Flow("spring-integration", local(element.tag) if role == "target" else "channel-flow", name, line(element))
    endpoint = _endpoint(element, role, name, beans)
    if endpoint:
        flow.endpoints.append(endpoint)
    pollers = [p for p in element if local(p.tag) == "poller"]
    if pollers:
        flow.details["schedule"] = {k: v for k, v in pollers[0].attrib.items() if k != "id"}
    return flow
