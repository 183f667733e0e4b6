"""File name → naming pattern: `ORD_20260101_000123.csv` → `ORD_{date}_{seq}.csv`.

The parts of a name that change from file to file (dates, timestamps, sequence numbers, uuids,
hex ids) become placeholders; the rest stays literal. Short numbers (1–3 digits) stay literal when
something else in the name varies, because they usually name a document type or version
(`X12_850_00017.edi`, `orders_v2_20260101.csv`).
"""

from __future__ import annotations

import re
from datetime import datetime

# A shape keeps letters and punctuation and turns every digit into 9. Names of one shape always
# get one pattern, so the regex work runs once per shape; bytes.translate makes it the cheapest
# step per file (str.translate costs five times as much).
_SHAPE_TABLE = bytes.maketrans(b"0123456789", b"9999999999")


def shape(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape").translate(_SHAPE_TABLE)


_TOKEN = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<isodt>(?:\d{4}(?P<sep>[-.])\d{2}(?P=sep)\d{2}[T _]\d{2}[:.-]\d{2}(?:[:.-]\d{2})?"
    r"|\d{8}T\d{4}(?:\d{2})?)(?=\D|$))"
    r"|(?P<isodate>\d{4}[-_.]\d{2}[-_.]\d{2}(?=\D|$))"
    r"|(?P<hex>(?<![0-9A-Za-z])(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}(?![0-9A-Za-z]))"
    r"|(?P<digits>\d+)"
)

_DATE_FORMATS = ("%Y%m%d", "%d%m%Y")
_DATETIME_DIGITS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M"}


def _valid(text: str, fmt: str) -> bool:
    try:
        moment = datetime.strptime(text, fmt)
    except ValueError:
        return False
    return 1990 <= moment.year <= 2099


def _digits_token(run: str) -> str:
    if len(run) == 8 and any(_valid(run, fmt) for fmt in _DATE_FORMATS):
        return "{date}"
    fmt = _DATETIME_DIGITS.get(len(run))
    if fmt and _valid(run, fmt):
        return "{datetime}"
    return "{seq}"


def name_pattern(name: str) -> str:
    """The naming pattern of one file name."""
    parts: list[str] = []
    short: list[tuple[int, str]] = []  # (index in parts, literal) of 1–3 digit runs
    varying = False
    last = 0
    for match in _TOKEN.finditer(name):
        parts.append(name[last : match.start()])
        kind = match.lastgroup
        text = match.group()
        if kind == "uuid":
            parts.append("{uuid}")
        elif kind == "hex":
            parts.append("{hex}")
        elif kind == "isodt":
            digits = re.sub(r"\D", "", text)
            valid = len(digits) in (12, 14) and _valid(digits, _DATETIME_DIGITS[len(digits)])
            parts.append("{datetime}" if valid else "{seq}")
        elif kind == "isodate":
            parts.append("{date}" if _valid(re.sub(r"\D", "", text), "%Y%m%d") else text)
        elif len(text) <= 3:
            short.append((len(parts), text))
            parts.append(text)
            last = match.end()
            continue
        else:
            parts.append(_digits_token(text))
        varying = True
        last = match.end()
    parts.append(name[last:])
    if not varying:
        for index, _ in short:
            parts[index] = "{seq}"
    return "".join(parts)


def fallback_pattern(name: str) -> str:
    """The catch-all pattern for a folder with too many distinct patterns: keep the extension only."""
    stem, dot, ext = name.rpartition(".")
    return f"{{name}}.{ext}" if dot and stem and len(ext) <= 8 else "{name}"
