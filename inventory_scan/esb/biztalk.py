"""BizTalk Server binding files (`BindingInfo`): receive ports and locations, send ports, orchestrations.

Each receive location is an endpoint of its own, under its BizTalk name, with its adapter, address,
pipeline, handler, schedule and enabled state, consumed by its receive port. A send port's endpoint
carries its adapter, pipeline, handler and retries.

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
    "FILE": "file",
    "FTP": "ftp",
    "SFTP": "sftp",
    "HTTP": "http",
    "SOAP": "soap",
    "WCF-BASICHTTP": "soap",
    "WCF-WSHTTP": "soap",
    "WCF-CUSTOM": "soap",
    "WCF-WEBHTTP": "http",
    "WCF-SQL": "db",
    "SQL": "db",
    "MQSERIES": "mq",
    "WCF-NETMSMQ": "mq",
    "MSMQ": "mq",
    "POP3": "mail",
    "SMTP": "mail",
    "SB-MESSAGING": "amqp",
}
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


def _name(element: etree._Element, tag: str) -> str | None:
    found = element.find(tag)
    return found.get("Name") if found is not None and found.get("Name") else None


def _schedule(location: etree._Element) -> dict[str, str]:
    """When a receive location polls: its service window and recurrence, where they are set."""
    schedule: dict[str, str] = {}
    if _text(location, "ReceiveLocationServiceWindowEnabled") == "true":
        schedule["window"] = (
            f"{_text(location, 'ReceiveLocationFromTime')[11:16]}–{_text(location, 'ReceiveLocationToTime')[11:16]}"
        )
    recurrence = _text(location, "ScheduleRecurrenceType")
    if recurrence and recurrence != "None":
        schedule["recurrence"] = recurrence
        schedule["interval"] = _text(location, "ScheduleRecurrenceInterval")
    return schedule


def _receive_location(location: etree._Element) -> Endpoint | None:
    """A receive location: an endpoint of its own, named as BizTalk names it."""
    adapter = _adapter(location, "ReceiveLocationTransportType")
    address = _text(location, "Address")
    endpoint = _endpoint(address, adapter, "source", line(location))
    if endpoint is None:
        return None
    endpoint.name = location.get("Name") or None
    endpoint.details.update(
        {
            "location": location.get("Name"),
            "address": address,
            "enabled": _text(location, "Enable") == "true",
            "pipeline": _name(location, "ReceivePipeline"),
            "handler": _name(location, "ReceiveHandler"),
            **({"schedule": schedule} if (schedule := _schedule(location)) else {}),
        }
    )
    return endpoint


def _send_transport(port: etree._Element) -> Endpoint | None:
    primary = port.find("PrimaryTransport")
    if primary is None:
        return None
    address = _text(primary, "Address")
    endpoint = _endpoint(address, _adapter(primary, "TransportType"), "target", line(primary))
    if endpoint is None:
        return None
    endpoint.details.update(
        {
            "address": address,
            "pipeline": _name(port, "TransmitPipeline"),
            "handler": _name(primary, "SendHandler"),
            "retries": _text(primary, "RetryCount") or None,
            **(
                {"schedule": {"window": f"{_text(primary, 'FromTime')[11:16]}–{_text(primary, 'ToTime')[11:16]}"}}
                if _text(primary, "ServiceWindowEnabled") == "true"
                else {}
            ),
        }
    )
    return endpoint


@plugin("biztalk", recognises)
def read(root: etree._Element, source: str) -> Found:
    found = Found("biztalk")
    receive_flows: dict[str, Flow] = {}
    for port in root.iter("ReceivePort"):
        flow = Flow("biztalk", "receive-port", port.get("Name", "?"), line(port))
        for location in port.iter("ReceiveLocation"):
            endpoint = _receive_location(location)
            if endpoint:
                flow.endpoints.append(endpoint)
        flow.details["pipeline"] = next((p.get("Name") for p in port.iter("ReceivePipeline")), None)
        flow.details["maps"] = [t.get("FullName") for t in port.iter("Transform")]
        flow.exposes.append(f"receive-port:{flow.name}")
        receive_flows[flow.name] = flow
        found.flows.append(flow)
    for port in root.iter("SendPort"):
        flow = Flow("biztalk", "send-port", port.get("Name", "?"), line(port))
        endpoint = _send_transport(port)
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
