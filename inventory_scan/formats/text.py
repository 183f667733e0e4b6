"""Bytes → text for sniffing: BOMs, UTF-16, EBCDIC and binary junk."""

from __future__ import annotations

import codecs
import re

from inventory_scan.formats.base import JUNK_LIMIT, Sample

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Envelopes an EBCDIC mainframe drop starts with, once decoded.
_EBCDIC_MARKERS = ("ISA", "UNA", "UNB", "UNH", "STX=", "EDI_DC", "<?xml")


# An X12 or EDIFACT envelope at the top or at a line start: its separators may be control
# characters, which must not make the file look binary.
_ENVELOPE = re.compile(r"(?:^|[\r\n])[ \t]*(?:ISA[^A-Za-z0-9 ]|UNA|UNB\+|UNH\+|STX=)")


def _printable_share(text: str) -> float:
    if not text:
        return 1.0
    ok = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t")
    return ok / len(text)


def decode(prefix: bytes, truncated: bool) -> Sample | None:
    """Decode a file prefix, or None when it is binary."""
    for bom, encoding in _BOMS:
        if prefix.startswith(bom):
            text = prefix.decode(encoding, errors="replace")
            return Sample(text.lstrip("\ufeff"), truncated, encoding)
    if b"\x00" not in prefix:
        text = prefix.decode("utf-8", errors="replace")
        # A cut in the middle of a multi-byte character costs at most one replacement.
        if text.count("\ufffd") <= 1 + len(text) // 200 and _printable_share(text) > 0.95:
            return Sample(text, truncated, "utf-8")
        if _ENVELOPE.search(text[:JUNK_LIMIT]):
            latin = prefix.decode("latin-1") if text.count("\ufffd") > 1 + len(text) // 200 else text
            return Sample(latin, truncated, "utf-8" if latin is text else "latin-1")
    # EBCDIC's NL (0x15) decodes to U+0085; make it an ordinary line break.
    ebcdic = prefix.decode("cp500", errors="replace").replace("\x85", "\n")
    if ebcdic.lstrip().startswith(_EBCDIC_MARKERS) and _printable_share(ebcdic) > 0.95:
        return Sample(ebcdic, truncated, "ebcdic-cp500")
    if b"\x00" not in prefix:
        latin = prefix.decode("latin-1")
        if _printable_share(latin) > 0.97:
            return Sample(latin, truncated, "latin-1")
    return None
