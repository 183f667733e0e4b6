"""Tell a file's format from a bounded prefix of its content, never from its name.

`sniff(prefix, truncated)` tries each registered detector in order: envelopes first (X12,
EDIFACT, TRADACOMS, IDoc), then XML and JSON, then the guessers (CSV, fixed width). A detector
module registers itself with `@detector(name, order)`; adding a format is adding a module here.
"""

from __future__ import annotations

from inventory_scan.formats import delimited, edifact, idoc, jsondoc, tradacoms, x12, xmldoc
from inventory_scan.formats.base import Detected, Sample, detectors
from inventory_scan.formats.text import decode

PREFIX_BYTES = 32 * 1024

__all__ = ["PREFIX_BYTES", "Detected", "Sample", "sniff"]
_MODULES = (x12, edifact, tradacoms, idoc, xmldoc, jsondoc, delimited)


def sniff(prefix: bytes, truncated: bool = False) -> Detected:
    """The format of a file whose first bytes are `prefix` (`truncated`: the file goes on)."""
    if not prefix:
        return Detected("empty", [], {})
    sample = decode(prefix, truncated)
    if sample is None:
        return Detected("unknown", ["unknown"], {"looks_like": "binary"})
    failures: list[str] = []
    for name, detect in detectors():
        try:
            found = detect(sample)
        except Exception as exc:  # one detector's bug on one odd file must not cost the scan
            failures.append(f"the {name} detector failed on it: {type(exc).__name__}: {exc}")
            continue
        if found is not None:
            found.warnings.extend(failures)
            if sample.encoding not in ("utf-8", "utf-8-sig"):
                found.details["encoding"] = sample.encoding
            return found
    return Detected("unknown", ["unknown"], {"looks_like": "text", "encoding": sample.encoding}, failures)
