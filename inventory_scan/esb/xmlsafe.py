"""Parse configuration XML without trusting it: no entities, no DTDs, no network, bounded size and depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 128


class UnsafeXml(ValueError):
    """The document is malformed, too large, too deep, or declares entities."""


def _parser(recover: bool = False) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        recover=recover,
    )


def parse_bytes(data: bytes, name: str = "document", notes: list[str] | None = None) -> etree._Element:
    """The document's root, parsed with the safe settings. A namespace URI that is no valid URI (a
    space in it) is the one fault read past: the document is parsed again, recovering, with the same
    safe settings, and the fault is added to `notes`; any other fault refuses the document."""
    if len(data) > MAX_BYTES:
        raise UnsafeXml(f"{name} is {len(data):,} bytes, over the {MAX_BYTES:,}-byte limit")
    strict = _parser()
    try:
        root = etree.fromstring(data, strict)
    except etree.XMLSyntaxError as exc:
        root = _recovered(data, exc, list(strict.error_log), name, notes)
    if root is None:
        raise UnsafeXml(f"{name} holds no XML element")
    doctype = root.getroottree().docinfo.internalDTD
    if doctype is not None and any(True for _ in doctype.iterentities()):  # type: ignore[union-attr]
        raise UnsafeXml(f"{name} declares XML entities (a DTD with ENTITY): refused as possibly hostile")
    if _depth(root) > MAX_DEPTH:
        raise UnsafeXml(f"{name} nests elements more than {MAX_DEPTH} deep: refused")
    return root


def _recovered(
    data: bytes, exc: etree.XMLSyntaxError, said: list[Any], name: str, notes: list[str] | None
) -> etree._Element:
    """`said`: the strict parser's own faults (this parse's only: lxml's global log keeps others')."""
    refused = UnsafeXml(f"{name} is not well-formed XML: {exc}")
    if not said or any(fault.domain_name != "NAMESPACE" for fault in said):
        raise refused from None
    parser = _parser(recover=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        raise refused from None
    faults = list(parser.error_log)
    if root is None or any(fault.domain_name != "NAMESPACE" for fault in faults):
        raise refused from None
    if notes is not None:
        notes += [f"line {fault.line}: {fault.message}; the rest of the document was read" for fault in faults]
    return root


def parse_file(path: Path, notes: list[str] | None = None) -> etree._Element:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnsafeXml(f"{path}: {exc.strerror or exc}") from None
    if size > MAX_BYTES:
        raise UnsafeXml(f"{path} is {size:,} bytes, over the {MAX_BYTES:,}-byte limit")
    return parse_bytes(path.read_bytes(), str(path), notes)


def _depth(root: etree._Element) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in element)
    return deepest


def local(tag: object) -> str:
    """The local name of an element tag (`{ns}flow` → `flow`); '' for comments and PIs."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(tag: object) -> str:
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def line(element: etree._Element) -> int | None:
    """The element's line in its document, when the parser knows it."""
    value = element.sourceline
    return value if isinstance(value, int) else None
