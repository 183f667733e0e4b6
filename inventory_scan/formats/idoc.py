"""SAP IDoc flat files: an EDI_DC40 control record, then data records. Not EDIFACT, not X12."""

from __future__ import annotations

import re

from inventory_scan.formats.base import Detected, Sample, detector

# Offsets of the EDI_DC40 control record (SAP's fixed layout): IDOCTYP at 39, MESTYP at 99.
_IDOCTYP = slice(39, 69)
_MESTYP = slice(99, 129)
_BASIC_TYPE = re.compile(r"^[A-Z][A-Z0-9_/]*\d{2}$")


@detector("idoc", order=40)
def detect_idoc(sample: Sample) -> Detected | None:
    text = sample.text.lstrip()
    if not text.startswith("EDI_DC"):
        return None
    control = text.splitlines()[0]
    basic_type = control[_IDOCTYP].strip()
    message_type = control[_MESTYP].strip()
    if not _BASIC_TYPE.match(basic_type):
        # Trimmed or shifted exports: fall back on the first token shaped like a basic type.
        basic_type = next((tok for tok in control.split()[1:] if _BASIC_TYPE.match(tok)), "")
    return Detected(
        family="idoc",
        formats=[f"idoc:{basic_type}"] if basic_type else ["idoc"],
        details={"basic_type": basic_type, "message_type": message_type},
    )
