"""Business documents as data: X12, EDIFACT, CSV and XML parsed into JSON with stable paths.

The comparator, noise learning and mismatch tables work on JSON, so a partner's file is turned into
one: elements are keyed by their two-digit position, a composite element is a list of its
components, and a segment is an object where a transaction holds it once and a list where it can
repeat (the line and party segments, or any segment a document holds twice), so a path reads the
same for a one-line and a fifty-line order:

    X12      /ISA/06 (sender)   /ST/*/BEG/03 (PO number)   /ST/*/PO1/*/02 (quantity)
    EDIFACT  /UNB/02/0 (sender) /UNH/*/BGM/02 (document number)   /UNH/*/QTY/*/01/1
    CSV      /rows/*/<column>
    XML      /<root>/<child>/… by local names (cXML: /cXML/Header/From/Credential/Identity), `@name` for
             attributes, a list where a name repeats

`NOISE` lists what two ERPs always write differently for the same business content (control
numbers, creation dates and times): compared documents ignore it by default. A document also says
who sent it, its interchange control number, the business numbers it carries, and, for an
acknowledgement (997, 999, CONTRL), which interchange or group it answers and whether it accepted
it — enough to match each side's reply to the file that caused it.

The X12 and EDIFACT envelopes are read as the scanner reads them (inventory_scan.formats): ISA's
fixed positions give the delimiters, UNA the service characters, and the release character escapes
a separator inside a value.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from inventory_scan.formats.x12 import read_delimiters as x12_delimiters
from inventory_scan.formats.x12 import segments as x12_segments
from legacy_adapters import xmljson

KINDS = ("x12", "edifact", "csv", "xml")
# segments that repeat within a transaction (lines, parties, references, dates): always lists
REPEATING = frozenset(
    {
        # X12
        "PO1",
        "PID",
        "PO4",
        "SAC",
        "N1",
        "N2",
        "N3",
        "N4",
        "REF",
        "PER",
        "DTM",
        "IT1",
        "SLN",
        "ACK",
        "HL",
        "LIN",
        "SN1",
        "TD1",
        "TD5",
        "MAN",
        "AK2",
        "AK3",
        "AK4",
        "AK5",
        "IK3",
        "IK4",
        "IK5",
        "QTY",
        "CTP",
        "MSG",
        "FOB",
        "ITD",
        "TXI",
        "CUR",
        "PRF",
        # EDIFACT
        "NAD",
        "RFF",
        "IMD",
        "PIA",
        "PRI",
        "MOA",
        "ALC",
        "TAX",
        "LOC",
        "FTX",
        "CUX",
        "PAT",
        "CPS",
        "PAC",
        "GIN",
        "UCI",
        "UCM",
        "UCS",
        "UCD",
        "DOC",
        "ERC",
    }
)
# what differs between two ERPs' documents for the same content: never a difference by default
NOISE = (
    "/ISA/09",
    "/ISA/10",
    "/ISA/13",
    "/GS/04",
    "/GS/05",
    "/GS/06",
    "/ST/*/ST/02",
    "/ST/*/SE/02",
    "/IEA/02",
    "/GE/02",
    "/UNB/04",
    "/UNB/05",
    "/UNH/*/UNH/01",
    "/UNH/*/UNT/02",
    "/UNZ/02",
    "/ST/*/BAK/04",
    "/ST/*/BSN/03",
    "/ST/*/BSN/04",
    "/UNH/*/DTM",
)
# where the business number of a document is, by transaction set or message type
_X12_NUMBER = {
    "850": ("BEG", 3),
    "855": ("BAK", 3),
    "856": ("BSN", 2),
    "810": ("BIG", 2),
    "860": ("BCH", 3),
    "865": ("BCA", 3),
    "846": ("BIA", 3),
    "852": ("XQ", 2),
}


_X12_TAG, _EDIFACT_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}"), re.compile(r"[A-Z]{3}")
_X12_ENVELOPE = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA", "TA1"})
_EDIFACT_ENVELOPE = frozenset({"UNA", "UNB", "UNG", "UNH", "UNT", "UNE", "UNZ"})
# the segments a document's facts come from (its numbers, what an acknowledgement answers): what a
# flow reads of a file to route it, besides the segments its pointers name
FACTS = frozenset({tag for tag, _ in _X12_NUMBER.values()} | {"AK1", "AK9", "PRF", "BIG", "BGM", "RFF", "UCI"})


class DocumentError(ValueError):
    """A file that is not a document of the kind expected; the message says where it broke."""


@dataclass
class Document:
    kind: str  # x12, edifact, csv
    data: dict[str, Any]  # the JSON shape
    sender: str | None = None  # ISA06 / UNB sender id: the trading partner
    receiver: str | None = None
    control: str | None = None  # the interchange control number (ISA13 / UNB 0020)
    groups: list[str] = field(default_factory=list)  # X12 group control numbers (GS06)
    types: list[str] = field(default_factory=list)  # transaction sets (850) or message types (ORDERS)
    numbers: list[str] = field(default_factory=list)  # the business numbers: PO, order, invoice
    answers: list[str] = field(default_factory=list)  # for an acknowledgement: the controls it answers
    accepted: bool | None = None  # for an acknowledgement: A (or 7) is True, R (or 4) is False

    @property
    def acknowledgement(self) -> bool:
        return bool(self.answers)


def detect(data: bytes) -> str | None:
    """x12, edifact or csv by the first bytes; None when it is none of them."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"ISA") and len(head) > 3 and not head[3:4].isalnum():
        return "x12"
    if head.startswith((b"UNA", b"UNB", b"UNH")):
        return "edifact"
    if head.startswith(b"<"):
        return "xml"
    if head and b"\x00" not in head:
        first = head.split(b"\n", 1)[0]
        if b"," in first or b";" in first or b"\t" in first:
            return "csv"
    return None


def parse(data: bytes, kind: str = "auto", partial: bool = False, only: Collection[str] | None = None) -> Document:
    """Parse a document; DocumentError when it is not one of `kind` (or of any kind, for auto).
    `partial`: `data` is the head of a larger file, read for its envelope and header only, so a
    transaction that does not end in it is no fault (`ends_whole` checks the file's tail).
    `only`: the segments wanted besides the envelope (e.g. FACTS): the others are checked for a
    segment tag and skipped, which is most of an order's bytes (its lines)."""
    found = detect(data) if kind == "auto" else kind
    if found not in KINDS:
        raise DocumentError("not an X12, EDIFACT, CSV or XML document")
    if found == "xml":
        return _xml(data, partial)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # EDI is often ISO 8859-1; every byte is a character there
    text = text.lstrip("\ufeff")
    if found == "x12":
        return _x12(text, partial, only)
    if found == "edifact":
        return _edifact(text, partial, only)
    return _csv(text)


def ends_whole(kind: str, tail: bytes) -> bool:
    """Does a large file's last bytes hold its trailer (IEA for X12; UNZ, or UNT without an
    envelope, for EDIFACT)? A transfer cut short does not."""
    text = tail.decode("latin-1").rstrip(" \t\r\n\x00")
    if kind == "x12":
        return bool(re.search(r"IEA.{1,40}$", text, re.DOTALL))
    if kind == "edifact":
        return bool(re.search(r"UN[ZT].{1,60}$", text, re.DOTALL))
    if kind == "xml":
        return bool(re.search(r"</[^<>]{1,200}>$", text))  # a closing tag: the root's, if whole
    return text.endswith(("\n",)) or bool(text)


def _elements(fields: list[str], component: str, release: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for position, value in enumerate(fields[1:], start=1):
        if value == "":
            continue
        parts = _split(value, component, release) if component and component in value else None
        out[f"{position:02d}"] = [_unescape(p, release) for p in parts] if parts else _unescape(value, release)
    return out


def _put(target: dict[str, Any], tag: str, value: dict[str, Any], repeating: bool) -> None:
    if tag in target:
        held = target[tag]
        target[tag] = (held if isinstance(held, list) else [held]) + [value]
    else:
        target[tag] = [value] if repeating else value


# -- XML --------------------------------------------------------------------------------------------
_XML = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def _xml(data: bytes, partial: bool) -> Document:
    """An XML document (cXML, UBL, an ERP's own) as JSON keyed by its root's local name, through the
    routes' XML ↔ JSON rules. A DOCTYPE that only names an external DTD (as cXML's do) is allowed and
    never fetched; one with declarations of its own (entities) is refused. Only a whole document is
    read: a larger file is routed by its name or a fixed entity."""
    if partial:
        return Document("xml", {})
    try:
        root = etree.fromstring(data, _XML)
    except etree.XMLSyntaxError as exc:
        raise DocumentError(f"not well-formed XML: {exc}") from None
    declared = root.getroottree().docinfo.internalDTD
    if declared is not None and (list(declared.iterentities()) or list(declared.iterelements())):  # type: ignore[union-attr]
        raise DocumentError("its DOCTYPE declares entities or elements of its own: refused")
    name = xmljson.local(root.tag)
    return Document("xml", {name: xmljson.to_json(root)}, types=[name])


# -- X12 --------------------------------------------------------------------------------------------
def _x12(text: str, partial: bool = False, only: Collection[str] | None = None) -> Document:
    start = text.find("ISA")
    if start < 0:
        raise DocumentError("no ISA segment: not an X12 interchange")
    text = text[start:]
    delimiters = x12_delimiters(text) if len(text) > 20 else None
    if delimiters is None:
        raise DocumentError("the ISA segment is cut short: its delimiters cannot be read")
    element, component, terminator = delimiters
    data: dict[str, Any] = {"ST": []}
    document = Document("x12", data)
    transaction: dict[str, Any] | None = None
    for number, segment in enumerate(x12_segments(text, terminator), start=1):
        tag = segment.split(element, 1)[0].strip()
        if not _X12_TAG.fullmatch(tag):
            raise DocumentError(f"segment {number} is not an X12 segment: {segment[:20]!r}")
        if only is not None and tag not in only and tag not in _X12_ENVELOPE:
            if transaction is None:
                raise DocumentError(f"segment {number} ({tag}) comes before any ST")
            continue
        fields = [f.strip() for f in segment.split(element)]
        values = _elements(fields, "" if tag == "ISA" else component)
        if tag == "ISA":
            document.sender = document.sender or values.get("06")
            document.receiver = document.receiver or values.get("08")
            document.control = document.control or values.get("13")
            data.setdefault("ISA", values)
        elif tag in ("GS", "GE", "IEA", "TA1"):
            data.setdefault(tag, values)
            if tag == "GS" and values.get("06"):
                document.groups.append(str(values["06"]))
            if tag == "TA1" and values.get("01"):
                document.answers.append(str(values["01"]))
                document.accepted = values.get("04") == "A"
        elif tag == "ST":
            transaction = {"ST": values}
            data["ST"].append(transaction)
            document.types.append(str(values.get("01", "")))
        elif transaction is None:
            raise DocumentError(f"segment {number} ({tag}) comes before any ST")
        else:
            _put(transaction, tag, values, tag in REPEATING)
            if tag == "SE":
                _x12_facts(document, transaction)
                transaction = None
    if "ISA" not in data:
        raise DocumentError("no ISA segment: not an X12 interchange")
    if transaction is not None and not partial:
        raise DocumentError(f"transaction set {transaction['ST'].get('02', '?')} has no SE: the file is cut short")
    if not data["ST"] and "TA1" not in data:
        raise DocumentError("the interchange holds no transaction set: it is cut short, or empty")
    return document


def _first(value: Any) -> dict[str, Any]:
    return value[0] if isinstance(value, list) and value else value if isinstance(value, dict) else {}


def _x12_facts(document: Document, transaction: dict[str, Any]) -> None:
    kind = str(transaction["ST"].get("01", ""))
    where = _X12_NUMBER.get(kind)
    if where is not None and (number := _first(transaction.get(where[0])).get(f"{where[1]:02d}")):
        document.numbers.append(str(number))
    ordered = {"810": ("BIG", "04"), "856": ("PRF", "01")}.get(kind)  # the order an invoice or a shipment is for
    if ordered is not None:
        for reference in _listed(transaction.get(ordered[0])):
            if reference.get(ordered[1]):
                document.numbers.append(str(reference[ordered[1]]))
    if kind in ("997", "999"):
        for answered in _listed(transaction.get("AK1")):
            if answered.get("02"):
                document.answers.append(str(answered["02"]))
        verdict = _first(transaction.get("AK9")).get("01")
        if verdict:
            document.accepted = verdict in ("A", "E")  # E: accepted, errors noted


def _listed(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


# -- EDIFACT ----------------------------------------------------------------------------------------
def _split(text: str, separator: str, release: str) -> list[str]:
    if not release.strip():
        return text.split(separator)
    return re.split(rf"(?<!{re.escape(release)}){re.escape(separator)}", text)


def _unescape(value: str, release: str) -> str:
    if not release.strip() or release not in value:
        return value
    return re.sub(rf"{re.escape(release)}(.)", r"\1", value)


def _edifact(text: str, partial: bool = False, only: Collection[str] | None = None) -> Document:
    start = min((i for i in (text.find("UNA"), text.find("UNB"), text.find("UNH")) if i >= 0), default=-1)
    if start < 0:
        raise DocumentError("no UNA, UNB or UNH segment: not an EDIFACT interchange")
    text = text[start:]
    service = ":+.? '"
    if text.startswith("UNA"):
        if len(text) < 9:
            raise DocumentError("the UNA service string is cut short")
        service, text = text[3:9], text[9:]
    component, element, release, terminator = service[0], service[1], service[3], service[5]
    data: dict[str, Any] = {"UNH": []}
    document = Document("edifact", data)
    message: dict[str, Any] | None = None
    for number, raw in enumerate(_split(text, terminator, release), start=1):
        segment = raw.strip(" \t\r\n")
        if not segment:
            continue
        tag = segment[:3]
        if not _EDIFACT_TAG.fullmatch(tag) or segment[3:4] not in ("", element):
            raise DocumentError(f"segment {number} is not an EDIFACT segment: {segment[:20]!r}")
        if only is not None and tag not in only and tag not in _EDIFACT_ENVELOPE:
            if message is None:
                raise DocumentError(f"segment {number} ({tag}) comes before any UNH")
            continue
        fields = _split(segment, element, release)
        values = _elements(fields, component, release)
        if tag == "UNB":
            data.setdefault("UNB", values)
            document.sender = document.sender or _component(values.get("02"))
            document.receiver = document.receiver or _component(values.get("03"))
            document.control = document.control or _component(values.get("05"))
        elif tag in ("UNZ", "UNG", "UNE"):
            data.setdefault(tag, values)
        elif tag == "UNH":
            message = {"UNH": values}
            data["UNH"].append(message)
            document.types.append(_component(values.get("02")) or "")
        elif message is None:
            raise DocumentError(f"segment {number} ({tag}) comes before any UNH")
        else:
            _put(message, tag, values, tag in REPEATING)
            if tag == "UNT":
                _edifact_facts(document, message)
                message = None
    if message is not None and not partial:
        raise DocumentError(f"message {_component(message['UNH'].get('01')) or '?'} has no UNT: the file is cut short")
    if not data["UNH"]:
        raise DocumentError("the interchange holds no message: it is cut short, or empty")
    return document


def _component(value: Any, index: int = 0) -> str | None:
    if isinstance(value, list):
        return str(value[index]) if len(value) > index and value[index] != "" else None
    return str(value) if value is not None and index == 0 else None


def _edifact_facts(document: Document, message: dict[str, Any]) -> None:
    kind = _component(message["UNH"].get("02")) or ""
    if kind == "CONTRL":
        for answered in _listed(message.get("UCI")):
            if (control := _component(answered.get("01"))) is not None:
                document.answers.append(control)
            action = _component(answered.get("04"))
            if action is not None:
                document.accepted = action in ("7", "8")  # 4: rejected
        return
    number = _component(_first(message.get("BGM")).get("02"))
    if number:
        document.numbers.append(number)
    if kind in ("ORDRSP", "APERAK", "DESADV", "INVOIC"):  # the order it answers: RFF+ON
        for reference in _listed(message.get("RFF")):
            if _component(reference.get("01")) == "ON" and (order := _component(reference.get("01"), 1)):
                document.numbers.append(order)


# -- CSV --------------------------------------------------------------------------------------------
def _csv(text: str) -> Document:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if not reader.fieldnames:
        raise DocumentError("no header row")
    rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
    return Document("csv", {"rows": rows})


def value_at(document: Document, pointer: str) -> str | None:
    """The first value at a JSON pointer with `*` (e.g. /ST/*/BEG/03); None when there is none."""
    found = _walk(document.data, [p for p in pointer.split("/")[1:]])
    return None if found is None else str(found)


def _walk(node: Any, steps: list[str]) -> Any:
    if not steps:
        return node if not isinstance(node, (dict, list)) else _scalar(node)
    step, rest = steps[0], steps[1:]
    if isinstance(node, list):
        if step == "*":
            for item in node:
                if (found := _walk(item, rest)) is not None:
                    return found
            return None
        if step.isdigit() and int(step) < len(node):
            return _walk(node[int(step)], rest)
        return None if not node else _walk(node[0], steps)  # a repeating segment read without its index
    if isinstance(node, dict) and step in node:
        return _walk(node[step], rest)
    return None


def _scalar(node: Any) -> Any:
    while isinstance(node, list) and node:
        node = node[0]
    return None if isinstance(node, (dict, list)) else node
