"""Apache Synapse and WSO2 ESB/MI: proxies, APIs, sequences, inbound endpoints, stores, processors, tasks.

A whole `definitions` file and single WSO2 artifacts (a `proxy` or `api` root) are both read. Named
endpoints and sequences are resolved where flows refer to them by key.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

NS = "http://ws.apache.org/ns/synapse"
_VFS_FOLDERS = {
    "transport.vfs.FileURI": ("source", "poll"),
    "transport.vfs.MoveAfterProcess": ("target", "move-after-process"),
    "transport.vfs.MoveAfterFailure": ("target", "move-after-failure"),
    "transport.vfs.ReplyFileURI": ("target", "reply"),
}
_VFS_DETAILS = (
    "transport.vfs.FileNamePattern",
    "transport.PollInterval",
    "transport.vfs.ActionAfterProcess",
    "transport.vfs.ActionAfterFailure",
    "transport.vfs.ContentType",
)


def recognises(root: etree._Element) -> bool:
    return namespace(root.tag) == NS


def _params(element: etree._Element) -> dict[str, str]:
    return {p.get("name", ""): (p.text or p.get("value") or "").strip() for p in element if local(p.tag) == "parameter"}


def _address(endpoint: etree._Element) -> tuple[str, dict[str, Any]] | None:
    for child in endpoint.iter():
        name = local(child.tag)
        if name == "address" and child.get("uri"):
            return child.get("uri", ""), {"format": child.get("format")} if child.get("format") else {}
        if name == "wsdl" and (child.get("uri") or child.get("service")):
            return child.get("uri", ""), {"service": child.get("service"), "port": child.get("port")}
        if name == "http" and child.get("uri-template"):
            return child.get("uri-template", ""), {"method": child.get("method")}
    return None


class _Reader:
    def __init__(self, root: etree._Element) -> None:
        self.named_endpoints = {
            e.get("name", ""): e for e in root.iter(f"{{{NS}}}endpoint") if e.get("name") and e.getparent() is root
        }
        if local(root.tag) == "endpoint" and root.get("name"):
            self.named_endpoints[root.get("name", "")] = root
        self.sequences = {e.get("name", ""): e for e in root.iter(f"{{{NS}}}sequence") if e.get("name")}
        self.stores = {e.get("name", ""): e for e in root.iter(f"{{{NS}}}messageStore") if e.get("name")}

    def keyed(self, key: str, role: str, operation: str) -> Endpoint | None:
        named = self.named_endpoints.get(key)
        return self.endpoint(named, role, operation) if named is not None else None

    def endpoint(self, element: etree._Element, role: str, operation: str) -> Endpoint | None:
        key = element.get("key")
        if key and key in self.named_endpoints:
            element = self.named_endpoints[key]
        found = _address(element)
        if found is None:
            return None
        uri, details = found
        family = uris.protocol(uri)
        if family is None:
            return None
        if family == "http" and details.get("format", "").startswith("soap"):
            family = "soap"
        return Endpoint(
            role, family, uris.locator(uri), operation, line(element), {k: v for k, v in details.items() if v}
        )

    def sends(self, scope: etree._Element, flow: Flow, seen: set[str] | None = None) -> None:
        """Targets of `send`, `call` and `callout` in a sequence, following named sequences once."""
        seen = set() if seen is None else seen
        for element in scope.iter():
            name = local(element.tag)
            if name in ("send", "call"):
                for endpoint in element:
                    if local(endpoint.tag) == "endpoint" and (found := self.endpoint(endpoint, "target", name)):
                        flow.endpoints.append(found)
            elif name == "callout" and element.get("serviceURL"):
                uri = element.get("serviceURL", "")
                flow.endpoints.append(
                    Endpoint("target", uris.protocol(uri) or "", uris.locator(uri), "callout", line(element))
                )
            elif name == "store" and element.get("messageStore"):
                flow.calls.append(f"store:{element.get('messageStore')}")
            ref = element.get("key") if name == "sequence" else None
            for attribute in ("inSequence", "outSequence", "faultSequence", "sequence", "onError"):
                if element is not scope and element.get(attribute) in self.sequences:
                    ref = element.get(attribute)
            if ref and ref in self.sequences and ref not in seen:
                seen.add(ref)
                flow.calls.append(f"sequence:{ref}")
                self.sends(self.sequences[ref], flow, seen)

    def transports(
        self, params: dict[str, str], transports: list[str], line: int | None, flow: Flow, served_at: str
    ) -> None:
        """Endpoints a proxy or inbound endpoint listens on: polled folders, queues, HTTP."""
        for name, (role, operation) in _VFS_FOLDERS.items():
            if params.get(name):
                uri = params[name]
                flow.endpoints.append(Endpoint(role, uris.protocol(uri) or "file", uris.locator(uri), operation, line))
        flow.details.update({k.rpartition(".")[2]: params[k] for k in _VFS_DETAILS if k in params})
        if "jms" in transports or params.get("transport.jms.Destination"):
            destination = params.get("transport.jms.Destination", flow.name)
            kind = "topic" if params.get("transport.jms.DestinationType") == "topic" else "queue"
            flow.endpoints.append(Endpoint("source", "jms", f"jms:{kind}:{destination}", "listener", line))
        served = [t for t in transports if t in ("http", "https", "local")]
        if served:
            protocol = "soap" if flow.kind == "proxy" else "http"
            flow.endpoints.append(Endpoint("source", protocol, served_at, "listener", line, {"transports": served}))


@plugin("synapse", recognises)
def read(root: etree._Element, source: str) -> Found:
    reader = _Reader(root)
    found = Found("synapse")
    top = [root] if local(root.tag) != "definitions" else list(root)
    for element in top:
        name, key = local(element.tag), element.get("name", "")
        if name == "proxy":
            flow = Flow("synapse", "proxy", key, line(element))
            transports = (element.get("transports") or "http https").split()
            reader.transports(_params(element), transports, line(element), flow, f"http://{{esb}}/services/{key}")
            for target in element.iter(f"{{{NS}}}target"):
                if target.get("endpoint") and (
                    found_endpoint := reader.keyed(target.get("endpoint", ""), "target", "send")
                ):
                    flow.endpoints.append(found_endpoint)
                for child in target:
                    if local(child.tag) == "endpoint" and (found_endpoint := reader.endpoint(child, "target", "send")):
                        flow.endpoints.append(found_endpoint)
                reader.sends(target, flow)
            wsdl = next((w.get("uri") or w.get("key") for w in element.iter(f"{{{NS}}}publishWSDL")), None)
            if wsdl:
                flow.details["wsdl"] = wsdl
            found.flows.append(flow)
        elif name == "api":
            flow = Flow("synapse", "api", key, line(element), details={"context": element.get("context")})
            for resource in element.iter(f"{{{NS}}}resource"):
                template = resource.get("uri-template") or resource.get("url-pattern") or "/*"
                served = f"http://{{esb}}{element.get('context', '')}{template}"
                methods = resource.get("methods", "GET POST PUT DELETE")
                flow.endpoints.append(
                    Endpoint("source", "http", served, "listener", line(resource), {"method": methods})
                )
                reader.sends(resource, flow)
            found.flows.append(flow)
        elif name == "inboundEndpoint":
            flow = Flow(
                "synapse", "inbound-endpoint", key, line(element), details={"protocol": element.get("protocol")}
            )
            params = {p.get("name", ""): (p.text or "").strip() for p in element.iter(f"{{{NS}}}parameter")}
            protocol = element.get("protocol", "")
            transports = ["vfs" if protocol == "file" else protocol]
            reader.transports(params, transports, line(element), flow, f"{protocol or 'http'}://{{esb}}/{key}")
            if element.get("sequence") in reader.sequences:
                flow.calls.append(f"sequence:{element.get('sequence')}")
                reader.sends(reader.sequences[element.get("sequence", "")], flow)
            found.flows.append(flow)
        elif name == "sequence":
            flow = Flow("synapse", "sequence", key, line(element))
            flow.exposes.append(f"sequence:{key}")
            reader.sends(element, flow)
            found.flows.append(flow)
        elif name == "messageProcessor":
            flow = Flow("synapse", "message-processor", key, line(element), details={"class": element.get("class")})
            store = element.get("messageStore", "")
            flow.calls.append(f"store:{store}")
            target_key = element.get("targetEndpoint") or _params(element).get("target.endpoint")
            if target_key and (found_endpoint := reader.keyed(target_key, "target", "send")):
                flow.endpoints.append(found_endpoint)
            found.flows.append(flow)
        elif name == "messageStore":
            flow = Flow("synapse", "message-store", key, line(element), details={"class": element.get("class")})
            flow.exposes.append(f"store:{key}")
            params = _params(element)
            if params.get("store.jms.destination"):
                flow.endpoints.append(
                    Endpoint("target", "jms", f"jms:queue:{params['store.jms.destination']}", "store", line(element))
                )
            found.flows.append(flow)
        elif name == "task":
            trigger = next((t for t in element if local(t.tag) == "trigger"), None)
            schedule = {str(k): str(v) for k, v in trigger.attrib.items()} if trigger is not None else {}
            found.flows.append(
                Flow(
                    "synapse", "task", key, line(element), details={"class": element.get("class"), "schedule": schedule}
                )
            )
    return found
