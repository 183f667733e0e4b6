"""What a detector returns, and the registry detectors add themselves to."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from legacy_adapters.registry import Registry


@dataclass(frozen=True)
class Sample:
    """A bounded prefix of one file, decoded to text where it is text."""

    text: str
    truncated: bool
    encoding: str


@dataclass
class Detected:
    """A format told from content: `formats` are catalog strings such as `x12:850` or `csv`."""

    family: str
    formats: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list, compare=False)


# How far into a file an envelope is looked for: mailbox downloads put banners and headers first.
JUNK_LIMIT = 4096
# What `str.strip()` would also take: the control characters some VANs use as X12 separators.
BLANKS = " \t\r\n"


def envelope_start(text: str, pattern: re.Pattern[str]) -> tuple[int, list[str]] | None:
    """Where an envelope that `pattern` matches starts: at the top, or at the start of a line within
    the first JUNK_LIMIT characters after a banner (with a warning that says how much was skipped)."""
    top = len(text) - len(text.lstrip(BLANKS))
    if pattern.match(text, top):
        return top, []
    for line in re.finditer(r"[\r\n]+", text[:JUNK_LIMIT]):
        start = line.end()
        if pattern.match(text, start):
            return start, [f"{start} bytes before the envelope skipped (a banner or mailbox header)"]
    return None


Detector = Callable[[Sample], Detected | None]

# Lower order runs first: the cheap, unambiguous envelopes (X12 ISA, EDIFACT UNA/UNB) go before
# the guessers (CSV, fixed width) that would accept almost anything.
DETECTORS: Registry[Detector] = Registry("format detector")


def detector(name: str, order: int) -> Callable[[Detector], Detector]:
    return DETECTORS.register(name, order)


def detectors() -> list[tuple[str, Detector]]:
    return list(DETECTORS)
