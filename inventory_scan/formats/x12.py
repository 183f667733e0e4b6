"""ANSI X12: the ISA segment declares the delimiters, which vary from partner to partner.

A translator reads ISA by its fixed positions: the element separator is the 4th character, ISA16
(the component separator) the 105th and the segment terminator the 106th, whatever bytes they are —
some VANs send control characters. A sloppy ISA (fields not padded to their width) falls back to
counting elements. Line breaks around segments are not data unless the terminator is one. An
interchange may hold only interchange acknowledgements (TA1) and no functional group.
"""

from __future__ import annotations

import re
from collections import Counter

from inventory_scan.formats.base import BLANKS, Detected, Sample, detector, envelope_start

_ISA = re.compile(r"ISA[^A-Za-z0-9 ]")
ISA_LENGTH = 106


def segments(body: str, terminator: str) -> list[str]:
    if terminator in "\r\n":
        raw = re.split(r"\r\n|\r|\n", body)
    else:
        raw = body.replace("\r", "").replace("\n", "").split(terminator)
    return [segment.strip(BLANKS) for segment in raw if segment.strip(BLANKS)]


def read_delimiters(text: str) -> tuple[str, str, str] | None:
    """(element, component, segment) separators from the ISA at the start of `text`."""
    element = text[3]
    if len(text) >= ISA_LENGTH and text[103] == element and text.count(element, 0, 104) == 16:
        component, terminator = text[104], text[105]
        if terminator == "\r" and text[106:107] == "\n":
            terminator = "\n"
        return element, component, terminator
    isa = text.split(element, 16)
    if len(isa) < 17 or len(isa[16]) < 2:
        return None
    component, terminator = isa[16][0], isa[16][1]
    if terminator == "\r" and isa[16][2:3] == "\n":
        terminator = "\n"
    return element, component, terminator


@detector("x12", order=10)
def detect_x12(sample: Sample) -> Detected | None:
    start = envelope_start(sample.text, _ISA)
    if start is None:
        return None
    offset, warnings = start
    text = sample.text[offset:]
    if len(text) < 20:
        return None
    delimiters = read_delimiters(text)
    if delimiters is None:
        return None
    element, component, terminator = delimiters
    interchanges = 0
    senders: set[str] = set()
    receivers: set[str] = set()
    groups: Counter[str] = Counter()
    versions: set[str] = set()
    sets: Counter[str] = Counter()
    acknowledgements = 0
    for segment in segments(text, terminator):
        fields = segment.split(element)
        tag = fields[0]
        if tag == "ISA" and len(fields) >= 13:
            interchanges += 1
            senders.add(fields[6].strip())
            receivers.add(fields[8].strip())
            versions.add(f"ISA12={fields[12].strip()}")
        elif tag == "GS" and len(fields) >= 9:
            groups[fields[1].strip()] += 1
            versions.add(fields[8].strip())
        elif tag == "ST" and len(fields) >= 2:
            sets[fields[1].strip()] += 1
        elif tag == "TA1":
            acknowledgements += 1
    if interchanges == 0:
        return None
    formats = [f"x12:{code}" for code in sorted(sets)]
    if acknowledgements:
        formats.append("x12:TA1")
    return Detected(
        family="x12",
        formats=formats or ["x12"],
        details={
            "interchanges": interchanges,
            "transaction_sets": dict(sets),
            "functional_groups": dict(groups),
            **({"interchange_acknowledgements": acknowledgements} if acknowledgements else {}),
            "versions": sorted(versions),
            "senders": sorted(senders),
            "receivers": sorted(receivers),
            "separators": {"element": element, "component": component, "segment": terminator},
            "complete": not sample.truncated,
        },
        warnings=warnings,
    )
