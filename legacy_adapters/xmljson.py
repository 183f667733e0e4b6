"""XML ↔ canonical JSON, deterministic, with a parser that refuses hostile documents.

Element → object keyed by local name; repeated names become arrays; text-only elements become
strings; attributes are kept under `@name`. Namespaces are resolved away (they are the contract's
business, not the payload's).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

__all__ = ["HostileXml", "NotXml", "etree", "from_json", "local", "parse", "to_json"]

MAX_XML_BYTES = 10 * 1024 * 1024


class HostileXml(ValueError):
    """Malformed, oversized, or declaring entities (XXE, billion laughs)."""


_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def parse(data: bytes) -> etree._Element:
    if len(data) > MAX_XML_BYTES:
        raise HostileXml(f"XML body of {len(data):,} bytes is over the {MAX_XML_BYTES:,}-byte limit")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise HostileXml(f"not well-formed XML: {exc}") from None
    doctype = root.getroottree().docinfo.internalDTD
    if doctype is not None:
        raise HostileXml("XML with a document type declaration is refused (entities are not allowed)")
    return root


def local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def to_json(element: etree._Element) -> Any:
    children = [child for child in element if isinstance(child.tag, str)]
    attributes = {
        f"@{local(k)}": v
        for k, v in element.attrib.items()
        if not str(k).startswith("{http://www.w3.org/2001/XMLSchema-instance}")
    }
    if not children and not attributes:
        return (element.text or "").strip()
    result: dict[str, Any] = dict(attributes)
    for child in children:
        name, value = local(child.tag), to_json(child)
        if name in result:
            if not isinstance(result[name], list):
                result[name] = [result[name]]
            result[name].append(value)
        else:
            result[name] = value
    text = (element.text or "").strip()
    if text:
        result["#text"] = text
    return result


class NotXml(ValueError):
    """A JSON value XML cannot carry: control characters, or a key that is no element name."""


def from_json(name: str, value: Any, namespace: str | None = None) -> etree._Element:
    """An element named `name` (in `namespace`) holding `value`; lists repeat the element."""
    tag = f"{{{namespace}}}{name}" if namespace else name
    try:
        element = etree.Element(tag)
        _fill(element, value, namespace)
    except ValueError as exc:
        raise NotXml(f"the request cannot be written as XML: {exc}") from None
    return element


def _fill(element: etree._Element, value: Any, namespace: str | None) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("@"):
                element.set(key[1:], str(item))
                continue
            items = item if isinstance(item, list) else [item]
            for entry in items:
                child = etree.SubElement(element, f"{{{namespace}}}{key}" if namespace else key)
                _fill(child, entry, namespace)
    elif value is None:
        element.text = ""
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
