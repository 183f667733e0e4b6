"""WSDL 1.1 (and 2.0): services, ports and addresses, bindings (SOAP 1.1, SOAP 1.2, HTTP), operations.

One `SoapOperation` per service and operation, listing every binding and port that offers it. Imported
WSDL documents are read by the scanner (relative to this one, never outside its folder or site) and
their definitions merged before services are resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from inventory_scan.esb.base import Found, SoapOperation, plugin
from inventory_scan.esb.xmlsafe import line, local, namespace

WSDL11 = "http://schemas.xmlsoap.org/wsdl/"
WSDL20 = "http://www.w3.org/ns/wsdl"
_BINDING_PROTOCOLS = {
    "http://schemas.xmlsoap.org/wsdl/soap/": "soap1.1",
    "http://schemas.xmlsoap.org/wsdl/soap12/": "soap1.2",
    "http://schemas.xmlsoap.org/wsdl/http/": "http",
}


def recognises(root: etree._Element) -> bool:
    return root.tag in (f"{{{WSDL11}}}definitions", f"{{{WSDL20}}}description")


def _name(qname: str | None) -> str:
    return (qname or "").rpartition(":")[2]


@dataclass
class Definitions:
    """The named parts of one or more WSDL 1.1 documents."""

    messages: dict[str, str] = field(default_factory=dict)  # message → element or type of its first part
    port_types: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, root: etree._Element) -> None:
        for message in root.iter(f"{{{WSDL11}}}message"):
            part = message.find(f"{{{WSDL11}}}part")
            self.messages[message.get("name", "")] = (
                _name(part.get("element") or part.get("type")) if part is not None else ""
            )
        for port_type in root.iter(f"{{{WSDL11}}}portType"):
            operations = []
            for operation in port_type.findall(f"{{{WSDL11}}}operation"):
                io = {local(c.tag): _name(c.get("message")) for c in operation if local(c.tag) in ("input", "output")}
                faults = [_name(c.get("message")) for c in operation if local(c.tag) == "fault"]
                operations.append({"name": operation.get("name"), "line": line(operation), **io, "faults": faults})
            self.port_types[port_type.get("name", "")] = operations
        for binding in root.iter(f"{{{WSDL11}}}binding"):
            protocol = next(
                (_BINDING_PROTOCOLS[namespace(c.tag)] for c in binding if namespace(c.tag) in _BINDING_PROTOCOLS),
                "other",
            )
            actions = {}
            for operation in binding.findall(f"{{{WSDL11}}}operation"):
                soap = next(
                    (c for c in operation if local(c.tag) == "operation" and namespace(c.tag) in _BINDING_PROTOCOLS),
                    None,
                )
                actions[operation.get("name", "")] = (
                    soap.get("soapAction") or soap.get("location") if soap is not None else None
                )
            self.bindings[binding.get("name", "")] = {
                "type": _name(binding.get("type")),
                "protocol": protocol,
                "actions": actions,
            }


def imports(root: etree._Element) -> list[str]:
    """Locations of the WSDL documents this one imports (XSD imports are not followed)."""
    tags = (f"{{{WSDL11}}}import", f"{{{WSDL20}}}import", f"{{{WSDL20}}}include")
    return [e.get("location", "") for e in root.iter(*tags) if e.get("location")]


def _read11(root: etree._Element, definitions: Definitions) -> list[SoapOperation]:
    target = root.get("targetNamespace", "")
    found: dict[tuple[str, str], SoapOperation] = {}
    for service in root.iter(f"{{{WSDL11}}}service"):
        for port in service.findall(f"{{{WSDL11}}}port"):
            binding_name = _name(port.get("binding"))
            binding = definitions.bindings.get(binding_name)
            if binding is None:
                continue
            address = next((c.get("location") for c in port if local(c.tag) == "address"), None)
            for operation in definitions.port_types.get(binding["type"], []):
                key = (service.get("name", ""), operation["name"])
                entry = found.get(key)
                if entry is None:
                    entry = found[key] = SoapOperation(
                        service=key[0],
                        operation=key[1],
                        namespace=target,
                        line=operation["line"],
                        input=definitions.messages.get(operation.get("input", ""), operation.get("input")),
                        output=definitions.messages.get(operation.get("output", ""), operation.get("output")),
                        faults=operation["faults"],
                    )
                listed = next((b for b in entry.bindings if b["name"] == binding_name), None)
                if listed is None:
                    listed = {
                        "name": binding_name,
                        "protocol": binding["protocol"],
                        "soap_action": binding["actions"].get(operation["name"]),
                        "ports": [],
                    }
                    entry.bindings.append(listed)
                listed["ports"].append({"name": port.get("name"), "address": address})
    return list(found.values())


def _read20(root: etree._Element) -> list[SoapOperation]:
    target = root.get("targetNamespace", "")
    interfaces = {i.get("name", ""): i for i in root.iter(f"{{{WSDL20}}}interface")}
    bindings = {b.get("name", ""): b for b in root.iter(f"{{{WSDL20}}}binding")}
    found = []
    for service in root.iter(f"{{{WSDL20}}}service"):
        interface = interfaces.get(_name(service.get("interface")))
        if interface is None:
            continue
        for operation in interface.findall(f"{{{WSDL20}}}operation"):
            entry = SoapOperation(service.get("name", ""), operation.get("name", ""), target, line(operation))
            io = {local(c.tag): _name(c.get("element")) for c in operation if local(c.tag) in ("input", "output")}
            entry.input, entry.output = io.get("input"), io.get("output")
            for endpoint in service.findall(f"{{{WSDL20}}}endpoint"):
                binding = bindings.get(_name(endpoint.get("binding")))
                kind = binding.get("type", "") if binding is not None else ""
                protocol = "soap" if "soap" in kind else ("http" if "http" in kind else "other")
                entry.bindings.append(
                    {
                        "name": _name(endpoint.get("binding")),
                        "protocol": protocol,
                        "soap_action": None,
                        "ports": [{"name": endpoint.get("name"), "address": endpoint.get("address")}],
                    }
                )
            found.append(entry)
    return found


@plugin("wsdl", recognises)
def read(root: etree._Element, source: str) -> Found:
    found = Found("wsdl", imports=imports(root))
    if root.tag == f"{{{WSDL20}}}description":
        found.operations = _read20(root)
    return found


def operations(documents: list[etree._Element]) -> list[SoapOperation]:
    """The operations of a WSDL 1.1 document read together with the documents it imports."""
    definitions = Definitions()
    for document in documents:
        definitions.add(document)
    return _read11(documents[0], definitions)
