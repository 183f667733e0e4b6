"""What a detector returns, and the registry detectors add themselves to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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


Detector = Callable[[Sample], Detected | None]

# (order, name, detector): lower order runs first. The cheap, unambiguous envelopes (X12 ISA,
# EDIFACT UNA/UNB) go before the guessers (CSV, fixed width) that would accept almost anything.
_REGISTRY: list[tuple[int, str, Detector]] = []


def detector(name: str, order: int) -> Callable[[Detector], Detector]:
    def register(func: Detector) -> Detector:
        _REGISTRY.append((order, name, func))
        _REGISTRY.sort(key=lambda entry: entry[0])
        return func

    return register


def detectors() -> list[tuple[str, Detector]]:
    return [(name, func) for _, name, func in _REGISTRY]
