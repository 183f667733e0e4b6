"""XML: the root element and its namespace, with UBL, cXML and SOAP named as such.

Parsing is incremental over a bounded prefix, with entity resolution, DTD loading and network
access off, so a billion-laughs or XXE document costs nothing and reveals nothing.
"""

from __future__ import annotations

from lxml import etree

from inventory_scan.formats.base import Detected, Sample, detector

_UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
_SOAP = {"http://schemas.xmlsoap.org/soap/envelope/": "1.1", "http://www.w3.org/2003/05/soap-envelope": "1.2"}
_CXML_WRAPPERS = {"Request", "Response", "Message"}
_MAX_EVENTS = 200


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _start_tags(text: str) -> tuple[list[str], str | None]:
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False
    )
    tags: list[str] = []
    error = None
    try:
        parser.feed(text)
    except etree.XMLSyntaxError as exc:
        error = str(exc)
    for _, element in parser.read_events():
        tag = getattr(element, "tag", None)
        tags.append(tag if isinstance(tag, str) else "")  # comments and PIs have no str tag
        if len(tags) >= _MAX_EVENTS:
            break
    return tags, error


@detector("xml", order=50)
def detect_xml(sample: Sample) -> Detected | None:
    text = sample.text.lstrip()
    if not text.startswith("<"):
        return None
    tags, error = _start_tags(text)
    if not tags:
        return Detected("unknown", ["unknown"], {"looks_like": "xml", "error": error or "no root element"})
    namespace, root = _split(tags[0])
    details: dict[str, object] = {"root": root, "namespace": namespace}
    if error and not sample.truncated:
        details["error"] = error
    if namespace.startswith(_UBL):
        return Detected("ubl", [f"ubl:{root}"], details | {"document": namespace[len(_UBL) :]})
    if root == "cXML":
        locals_ = [_split(tag)[1] for tag in tags]
        for index, local in enumerate(locals_[:-1]):
            if local in _CXML_WRAPPERS:
                return Detected("cxml", [f"cxml:{locals_[index + 1]}"], details | {"wrapper": local})
        return Detected("cxml", ["cxml"], details)
    if namespace in _SOAP:
        locals_ = [_split(tag)[1] for tag in tags]
        if "Body" in locals_[:-1]:
            body_child = tags[locals_.index("Body") + 1]
            child_ns, child = _split(body_child)
            operation = f"{{{child_ns}}}{child}" if child_ns else child
            return Detected("soap", [f"soap:{operation}"], details | {"soap_version": _SOAP[namespace]})
        return Detected("soap", ["soap"], details | {"soap_version": _SOAP[namespace]})
    qualified = f"{{{namespace}}}{root}" if namespace else root
    return Detected("xml", [f"xml:{qualified}"], details)
