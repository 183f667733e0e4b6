"""An export's records, whatever its format, as a header and rows of strings, streamed.

    records: {format: csv, key: [sku]}
    records: {format: fixed, key: [sku], record: LIN,
              columns: [{name: sku, start: 8, width: 13}, {name: quantity, start: 76, width: 16}]}
    records: {format: x12, key: [sku], record: LIN,                # an 846: a record per LIN loop
              fields: {sku: LIN/03, on_hand: "QTY[01=33]/02"}}
    records: {format: edifact, key: [gtin], record: LIN,           # an INVRPT or a PRICAT
              fields: {gtin: LIN/03/0, quantity: "QTY[01/0=145]/01/1"}}
    records: {format: xml, key: [sku], record: Item, fields: {sku: Sku, quantity: Qty, unit: Qty/@uom}}

Each is read in one pass with memory bounded by one record: a CSV's dialect is sniffed from its
head; fixed-width lines are sliced (a `record` prefix picks the record lines, e.g. LIN); X12 and
EDIFACT are split into segments as they are read (the delimiters from ISA, or UNA), a record runs
from its `record` segment to the next one or to the loop's end (CTT, SE, UNS, UNT), and a field
is the first of its segments in the record (with the qualifier given, e.g. QTY whose 01 is 33),
by element and, for a composite, component; XML is parsed incrementally (no entities, no network)
and each `record` element is read by paths relative to it, then dropped.

`open_records` is what the batch comparison reads (flows/batches.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lxml import etree

from flows.documents import _split, _unescape
from specs.flows import FIELD_PATH, Records

CHUNK = 1 << 16
TRAILERS = {"x12": {"CTT", "SE", "GE", "IEA"}, "edifact": {"UNS", "CNT", "UNT", "UNZ"}}


class RecordsError(ValueError):
    """An export that cannot be read as its flow says; the message says where."""


def open_records(path: Path, spec: Records) -> tuple[list[str], Iterator[list[str]], IO[Any]]:
    """The export's header, its records as lists of strings, and the open file (the caller closes it)."""
    if spec.format == "csv":
        return _csv(path)
    if spec.format == "fixed":
        handle = path.open(encoding="utf-8", errors="replace", newline="")
        return [column.name for column in spec.columns], _fixed(handle, spec), handle
    if spec.format == "xml":
        binary = path.open("rb")
        return list(spec.fields), _xml(binary, spec), binary
    handle = path.open(encoding="latin-1", newline="")  # EDI is often ISO 8859-1: every byte is a character
    return list(spec.fields), _edi(handle, spec), handle


def _csv(path: Path) -> tuple[list[str], Iterator[list[str]], IO[Any]]:
    handle = path.open(encoding="utf-8", errors="replace", newline="")
    head = handle.read(4096)
    handle.seek(0)
    try:
        dialect: Any = csv.Sniffer().sniff(head, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(handle, dialect)
    header = next(reader, [])
    return header, reader, handle


def _fixed(handle: IO[str], spec: Records) -> Iterator[list[str]]:
    slices = [(column.start - 1, column.start - 1 + column.width) for column in spec.columns]
    for line in handle:
        line = line.rstrip("\r\n")
        if spec.record and not line.startswith(spec.record):
            continue
        yield [line[start:end].strip() for start, end in slices]


# -- X12 and EDIFACT --------------------------------------------------------------------------------
Segment = tuple[str, list[list[str]]]  # tag, elements (each a list of components; element 01 at index 1)


def _edi(handle: IO[str], spec: Records) -> Iterator[list[str]]:
    fields = [_parse_field(name, where) for name, where in spec.fields.items()]
    trailers = TRAILERS[spec.format]
    record: list[Segment] | None = None
    for segment in _segments(handle, spec.format):
        tag = segment[0]
        if tag == spec.record:
            if record is not None:
                yield _fields(record, fields)
            record = [segment]
        elif tag in trailers:
            if record is not None:
                yield _fields(record, fields)
            record = None
        elif record is not None:
            record.append(segment)
    if record is not None:
        yield _fields(record, fields)


def _parse_field(name: str, where: str) -> tuple[str, str | None, str, str]:
    found = FIELD_PATH.match(where)
    if found is None:
        raise RecordsError(f"field {name}: {where!r} is not SEG/NN, SEG/NN/C or SEG[NN=value]/NN")
    return found["tag"], found["test"], found["want"] or "", found["at"]


def _value(segment: Segment, at: str) -> str:
    element, _, component = at.partition("/")
    elements = segment[1]
    index = int(element)
    if index >= len(elements):
        return ""
    parts = elements[index]
    place = int(component) if component else 0
    return parts[place] if place < len(parts) else ""


def _fields(record: list[Segment], fields: list[tuple[str, str | None, str, str]]) -> list[str]:
    row = []
    for tag, test, want, at in fields:
        found = next((s for s in record if s[0] == tag and (test is None or _value(s, test) == want)), None)
        row.append(_value(found, at) if found is not None else "")
    return row


def _segments(handle: IO[str], kind: str) -> Iterator[Segment]:
    """Segments as they are read, a chunk at a time."""
    head = handle.read(CHUNK).removeprefix("\xef\xbb\xbf").lstrip("\ufeff \t\r\n")  # a UTF-8 BOM, read as latin-1
    if kind == "x12":
        if not head.startswith("ISA") or len(head) < 106:
            raise RecordsError("not an X12 interchange: no whole ISA segment at its start")
        element, component, terminator, release = head[3], head[104], head[105], ""
    else:
        service = ":+.? '"
        if head.startswith("UNA"):
            service, head = head[3:9], head[9:]
        component, element, release, terminator = service[0], service[1], service[3].strip(), service[5]
    pending = head
    while True:
        parts = _split(pending, terminator, release)
        for raw in parts[:-1]:
            if text := raw.strip(" \t\r\n"):
                yield _segment(text, element, component, release)
        pending = parts[-1]
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        pending += chunk
    if text := pending.strip(" \t\r\n"):
        yield _segment(text, element, component, release)


def _segment(text: str, element: str, component: str, release: str) -> Segment:
    values = _split(text, element, release)
    return values[0], [[_unescape(part, release) for part in _split(value, component, release)] for value in values]


# -- XML --------------------------------------------------------------------------------------------
def _xml(handle: IO[bytes], spec: Records) -> Iterator[list[str]]:
    paths = [_xml_path(where) for where in spec.fields.values()]
    tag = spec.record if (spec.record or "").startswith("{") else f"{{*}}{spec.record}"
    try:
        for _, element in etree.iterparse(
            handle, events=("end",), tag=tag, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        ):
            yield [_xml_value(element, path, attribute) for path, attribute in paths]
            element.clear()
            while element.getprevious() is not None:  # what was read is dropped: memory stays one record
                del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise RecordsError(f"not well-formed XML: {exc}") from None


def _xml_path(where: str) -> tuple[str | None, str | None]:
    """Steps relative to the record (any namespace), and an attribute at the end (`Qty/@uom`)."""
    steps, attribute = where.split("/"), None
    if steps[-1].startswith("@"):
        attribute = steps.pop()[1:]
    path = "/".join(step if step.startswith("{") else f"{{*}}{step}" for step in steps) or None
    return path, attribute


def _xml_value(element: Any, path: str | None, attribute: str | None) -> str:
    found = element.find(path) if path else element
    if found is None:
        return ""
    if attribute is not None:
        return str(found.get(attribute, ""))
    return str(found.text or "").strip()
