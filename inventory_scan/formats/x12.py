"""ANSI X12: the ISA segment declares the delimiters, which vary from partner to partner.

ISA is fixed-width in theory and sloppy in practice, so the element separator is taken from the
fourth character, ISA16 (the component separator) is the 16th element, and the character after it
is the segment terminator. Line breaks around segments, or wrapping long lines, are not part of the
data unless the terminator itself is a line break.
"""

from __future__ import annotations

from collections import Counter

from inventory_scan.formats.base import Detected, Sample, detector


def _segments(body: str, terminator: str) -> list[str]:
    raw = body.splitlines() if terminator in "\r\n" else body.replace("\r", "").replace("\n", "").split(terminator)
    return [segment.strip() for segment in raw if segment.strip()]


@detector("x12", order=10)
def detect_x12(sample: Sample) -> Detected | None:
    text = sample.text.lstrip()
    if not text.startswith("ISA") or len(text) < 20:
        return None
    element = text[3]
    if element.isalnum() or element.isspace():
        return None
    isa = text.split(element, 16)
    if len(isa) < 17 or len(isa[16]) < 2:
        return None
    component, terminator = isa[16][0], isa[16][1]
    if terminator == "\r" and isa[16][2:3] == "\n":
        terminator = "\n"
    interchanges = 0
    senders: set[str] = set()
    receivers: set[str] = set()
    groups: Counter[str] = Counter()
    versions: set[str] = set()
    sets: Counter[str] = Counter()
    for segment in _segments(text, terminator):
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
    if interchanges == 0:
        return None
    formats = [f"x12:{code}" for code in sorted(sets)] or ["x12"]
    return Detected(
        family="x12",
        formats=formats,
        details={
            "interchanges": interchanges,
            "transaction_sets": dict(sets),
            "functional_groups": dict(groups),
            "versions": sorted(versions),
            "senders": sorted(senders),
            "receivers": sorted(receivers),
            "separators": {"element": element, "component": component, "segment": terminator},
            "complete": not sample.truncated,
        },
    )
