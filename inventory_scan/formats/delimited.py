"""Delimited text (CSV with `,` `;` tab or `|`) and fixed-width record files.

These are guessers: they accept what is left once the envelopes (X12, EDIFACT, XML…) have said no,
and they need several consistent lines before they commit.
"""

from __future__ import annotations

import csv
import re
from collections import Counter

from inventory_scan.formats.base import Detected, Sample, detector

_DELIMITERS = (",", ";", "\t", "|")
_NUMBER = re.compile(r"^[-+]?\d[\d.,]*$")
_RECORD_TAG = re.compile(r"^[A-Z][A-Z0-9]{2}")
_MAX_LINES = 200


def _lines(sample: Sample) -> list[str]:
    lines = sample.text.splitlines()
    if sample.truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line is probably cut short
    return [line for line in lines[:_MAX_LINES] if line.strip()]


def _has_header(rows: list[list[str]]) -> bool:
    """A first row of distinct labels over columns that hold numbers further down."""
    if len(rows) < 2:
        return False
    first = [cell.strip() for cell in rows[0]]
    if any(not cell or _NUMBER.match(cell) for cell in first) or len(set(first)) != len(first):
        return False
    for column in range(len(first)):
        below = [row[column].strip() for row in rows[1:] if column < len(row)]
        if below and sum(bool(_NUMBER.match(cell)) for cell in below) / len(below) >= 0.5:
            return True
    return False


@detector("csv", order=80)
def detect_csv(sample: Sample) -> Detected | None:
    lines = _lines(sample)
    if not lines:
        return None
    best: tuple[float, int, str, list[list[str]]] | None = None
    for delimiter in _DELIMITERS:
        if sum(delimiter in line for line in lines) < 0.9 * len(lines):
            continue
        rows = list(csv.reader(lines, delimiter=delimiter))
        widths = Counter(len(row) for row in rows)
        columns, hits = widths.most_common(1)[0]
        share = hits / len(rows)
        # One line is weak evidence: a sentence with a comma is not a two-column CSV.
        if columns < (3 if len(rows) == 1 else 2) or share < 0.8:
            continue
        if best is None or (share, columns) > (best[0], best[1]):
            best = (share, columns, delimiter, rows)
    if best is None:
        return None
    share, columns, delimiter, rows = best
    header = _has_header(rows)
    details: dict[str, object] = {
        "delimiter": delimiter,
        "columns": columns,
        "header": header,
        "consistent_rows": round(share, 3),
    }
    if header:
        details["header_names"] = [cell.strip() for cell in rows[0]][:50]
    return Detected("csv", ["csv"], details)


@detector("fixed", order=90)
def detect_fixed(sample: Sample) -> Detected | None:
    lines = _lines(sample)
    if len(lines) < 2:
        return None
    lengths = Counter(len(line.rstrip("\r\n")) for line in lines)
    if sum(lengths.elements()) / len(lines) < 20:
        return None
    padded = sum(bool(re.search(r"\S {2,}\S", line)) for line in lines) / len(lines)
    tags = Counter(m.group() for line in lines if (m := _RECORD_TAG.match(line)))
    tagged = sum(tags.values()) / len(lines)
    # Record files put a short tag in column 1 (HEA, LIN …) or keep every line the same length.
    few_tags = 0 < len(tags) <= 12 and tagged >= 0.9
    same_length = len(lengths) <= 3 and len(lines) >= 3
    if padded < 0.5 or not (few_tags or same_length):
        return None
    details: dict[str, object] = {"line_lengths": dict(lengths.most_common(5))}
    if few_tags:
        details["record_tags"] = sorted(tags)
    return Detected("fixed", ["fixed"], details)
