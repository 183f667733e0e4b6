"""BizTalk Server binding files (`BindingInfo`): receive ports and locations, send ports, orchestrations.

A send port's filter on `BTS.ReceivePortName` is how BizTalk routes one port's messages to another:
it becomes a `calls` link from the receive port. `$(…)` placeholders are kept.
"""

from __future__ import annotations

import re

from lxml import etree

from inventory_scan.esb import uris
from inventory_scan.esb.base import Endpoint, Flow, Found, plugin
from inventory_scan.esb.xmlsafe import UnsafeXml, line, local, parse_bytes

# BizTalk adapter name → protocol family.
ADAPTERS = {
    "FILE": "file", "FTP": "ftp", "SFTP": "sftp", "HTTP": "http", "SOAP": "soap", "WCF-BASICHTTP": "soap",
    "WCF-WSHTTP": "soap", "WCF-CUSTOM": "soap", "WCF-WEBHTTP": "http", "WCF-SQL": "db", "SQL": "db",
    "MQSERIES": "mq", "WCF-NETMSMQ": "mq", "MSMQ": "mq", "POP3": "mail", "SMTP": "mail", "SB-MESSAGING": "amqp",
}  # fmt: skip
_MASK = re.compile(r"[*?]|%\w+%")


def recognises(root: etree._Element) -> bool:
    return local(root.tag) == "BindingInfo"


def _text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _adapter(element: etree._Element, tag: str) -> str:
    transport = element.find(tag)
    return transport.get("Name", "") if transport is not None else ""


def _endpoint(address: str, adapter: str, role: str, line: int | None) -> Endpoint | None:
    if not address:
        return None
    family = ADAPTERS.get(adapter.upper(), adapter.lower())
    details: dict[str, object] = {"adapter": adapter}
    folder = address
    if family in ("file", "ftp", "sftp"):
        separator = "\\" if "\\" in address and "://" not in address else "/"
        head, _, last = address.rpartition(separator)
        if _MASK.search(last):
            folder, details["file_mask"] = head, last
    if family == "file" and "://" not in folder:
        path = folder.replace("\\", "/")
        locator = f"file:///{path.lstrip('/')}" if re.match(r"^[A-Za-z]:/", path) else f"file:{path}"
    else:
        locator = uris.locator(folder)
    return Endpoint(role, family, locator, "listener" if role == "source" else "send", line, details)


def _filter_ports(send_port: etree._Element) -> list[str]:
    text = _text(send_port, "Filter")
    if not text:
        return []
    try:
        # BizTalk stores the filter as an XML document inside the element's text (declared utf-16).
        root = parse_bytes(re.sub(r"^<\?xml[^>]*\?>", "", text).encode(), "send port filter")
    except UnsafeXml:
        return []
    return [
        s.get("Value", "")
        for s in root.iter()
        if local(s.tag) == "Statement" and s.get("Property") == "BTS.ReceivePortName" and s.get("Operator") == "0"
    ]


@plugin("biztalk", recognises)
def read(root: etree._Element, source: str) -> Found:
    found = Found("biztalk")
    receive_flows: dict[str, Flow] = {}
    for port in root.iter("ReceivePort"):
        flow = Flow("biztalk", "receive-port", port.get("Name", "?"), line(port))
        for location in port.iter("ReceiveLocation"):
            adapter = _adapter(location, "ReceiveLocationTransportType")
            endpoint = _endpoint(_text(location, "Address"), adapter, "source", line(location))
            if endpoint:
                endpoint.details.update(
                    {"location": location.get("Name"), "enabled": _text(location, "Enable") == "true"}
                )
                flow.endpoints.append(endpoint)
        flow.details["pipeline"] = next((p.get("Name") for p in port.iter("ReceivePipeline")), None)
        flow.details["maps"] = [t.get("FullName") for t in port.iter("Transform")]
        flow.exposes.append(f"receive-port:{flow.name}")
        receive_flows[flow.name] = flow
        found.flows.append(flow)
    for port in root.iter("SendPort"):
        flow = Flow("biztalk", "send-port", port.get("Name", "?"), line(port))
        primary = port.find("PrimaryTransport")
        if primary is not None:
            adapter = _adapter(primary, "TransportType")
            endpoint = _endpoint(_text(primary, "Address"), adapter, "target", line(primary))
            if endpoint:
                flow.endpoints.append(endpoint)
        flow.details["maps"] = [t.get("FullName") for t in port.iter("Transform")]
        flow.exposes.append(f"send-port:{flow.name}")
        for receive_port in _filter_ports(port):
            flow.details.setdefault("subscribes_to", []).append(receive_port)
            if receive_port in receive_flows:
                receive_flows[receive_port].calls.append(f"send-port:{flow.name}")
        found.flows.append(flow)
    for service in root.iter("Service"):
        flow = Flow(
            "biztalk", "orchestration", service.get("Name", "?"), line(service), details={"state": service.get("State")}
        )
        for port in service.iter("Port"):
            for ref, kind in (("SendPortRef", "send-port"), ("ReceivePortRef", "receive-port")):
                bound = port.find(ref)
                if bound is not None and bound.get("Name"):
                    flow.calls.append(f"{kind}:{bound.get('Name')}")
        found.flows.append(flow)
    return found
