"""Comparing the legacy and the cloud answer to one call, field by field, under the route's rules.

Both answers are JSON-shaped (the gateway lifts XML and SOAP into JSON through the route's mapping
before they get here). The rules say which paths to ignore, how far numbers may differ, which
arrays are unordered or matched by a key field, how values are normalised before comparing, and
which values are masked in stored samples. Paths are JSON pointers; `*` matches any one segment.

A difference has a normalised path (array positions become `*`, so `/lines/*/qty` counts every
line's quantity together), a kind — value, missing (only legacy has it), extra (only the cloud
has it), type, order — and both values.

The rules are compiled once per route into a trie keyed by path segment, so checking a node costs
a dictionary lookup, not a scan of every rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Normaliser = Literal["trim", "lower", "upper", "utc", "number"]
MASK = "•••"


class Kind(StrEnum):
    value = "value"
    missing = "missing"  # legacy has it, the cloud does not
    extra = "extra"  # the cloud has it, legacy does not
    type = "type"
    order = "order"  # same items, another order, where order matters
    contract = "contract"  # the cloud's answer breaks the route's canonical schema


@dataclass(frozen=True)
class Difference:
    path: str
    kind: Kind
    legacy: Any
    cloud: Any


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    absolute: float | None = Field(default=None, ge=0, description="numbers may differ by this much")
    relative: float | None = Field(default=None, ge=0, description="… or by this fraction of the larger")
    decimals: int | None = Field(default=None, ge=0, description="compare numbers rounded to this many decimals")


class Rules(BaseModel):
    """How a route's two answers are compared."""

    model_config = ConfigDict(extra="forbid")

    ignore: list[str] = Field(default_factory=list, description="JSON pointers (with *) never compared")
    tolerance: float | Tolerance | None = Field(default=None, description="for every number (a float is absolute)")
    tolerances: dict[str, Tolerance] = Field(default_factory=dict, description="per path, overriding `tolerance`")
    unordered: dict[str, str | None] = Field(
        default_factory=dict, description="array path → key field to match items by (null: compare as a multiset)"
    )
    normalise: dict[str, list[Normaliser]] = Field(
        default_factory=dict, description="path → normalisers applied to both sides before comparing"
    )
    mask: list[str] = Field(default_factory=list, description="paths whose values never leave in samples")
    noise_sample: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of compared reads that also get a second legacy call (fields that differ on their own)",
    )


def _split(pointer: str) -> tuple[str, ...]:
    return (
        tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer.strip("/").split("/"))
        if pointer.strip("/")
        else ()
    )


class _Node:
    """One segment of the compiled rules; `*` children apply to every key or index."""

    __slots__ = ("children", "ignore", "mask", "normalise", "tolerance", "unordered", "unordered_key")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.ignore = False
        self.mask = False
        self.tolerance: Tolerance | None = None
        self.normalise: tuple[Normaliser, ...] = ()
        self.unordered = False
        self.unordered_key: str | None = None

    def at(self, segments: tuple[str, ...]) -> _Node:
        node = self
        for segment in segments:
            node = node.children.setdefault(segment, _Node())
        return node


_EMPTY: tuple[_Node, ...] = ()


class Comparator:
    """Compiled rules; `compare(legacy, cloud)` lists the differences."""

    def __init__(self, rules: Rules | None = None) -> None:
        rules = rules or Rules()
        self.rules = rules
        self.root = _Node()
        default = rules.tolerance
        self.default_tolerance = Tolerance(absolute=default) if isinstance(default, float | int) else default
        for pointer in rules.ignore:
            self.root.at(_split(pointer)).ignore = True
        for pointer in rules.mask:
            self.root.at(_split(pointer)).mask = True
        for pointer, tolerance in rules.tolerances.items():
            self.root.at(_split(pointer)).tolerance = tolerance
        for pointer, key in rules.unordered.items():
            node = self.root.at(_split(pointer))
            node.unordered, node.unordered_key = True, key
        for pointer, steps in rules.normalise.items():
            self.root.at(_split(pointer)).normalise = tuple(steps)
        self.masks = bool(rules.mask)

    # -- the walk -------------------------------------------------------------------------------
    def compare(self, legacy: Any, cloud: Any) -> list[Difference]:
        found: list[Difference] = []
        self._walk(legacy, cloud, (self.root,), "", found)
        return found

    @staticmethod
    def _step(nodes: tuple[_Node, ...], segment: str) -> tuple[_Node, ...]:
        if not nodes:
            return _EMPTY
        following = []
        for node in nodes:
            children = node.children
            if children:
                exact = children.get(segment)
                if exact is not None:
                    following.append(exact)
                wild = children.get("*")
                if wild is not None:
                    following.append(wild)
        return tuple(following)

    def _walk(self, a: Any, b: Any, nodes: tuple[_Node, ...], path: str, found: list[Difference]) -> None:
        tolerance: Tolerance | None = None
        normalise: tuple[Normaliser, ...] = ()
        unordered, key = False, None
        for node in nodes:
            if node.ignore:
                return
            if node.tolerance is not None:
                tolerance = node.tolerance
            if node.normalise:
                normalise = node.normalise
            if node.unordered:
                unordered, key = True, node.unordered_key
        if normalise:
            a, b = _normalised(a, normalise), _normalised(b, normalise)
        if type(a) is dict and type(b) is dict:
            for name, value in a.items():
                child = self._step(nodes, name)
                where = f"{path}/{_escape(name)}"
                if name in b:
                    self._walk(value, b[name], child, where, found)
                elif not _ignored(child):
                    found.append(self._difference(where, Kind.missing, value, None, child))
            for name, value in b.items():
                if name not in a:
                    child = self._step(nodes, name)
                    if not _ignored(child):
                        found.append(self._difference(f"{path}/{_escape(name)}", Kind.extra, None, value, child))
            return
        if type(a) is list and type(b) is list:
            child = self._step(nodes, "*")  # positions are not rules' business: only `*` applies
            if unordered:
                self._unordered(a, b, child, f"{path}/*", key, found)
                return
            positional: list[Difference] = []
            for index in range(min(len(a), len(b))):
                self._walk(a[index], b[index], child, f"{path}/*", positional)
            if positional and len(a) == len(b):
                as_multiset: list[Difference] = []
                self._unordered(a, b, child, f"{path}/*", None, as_multiset)
                if not as_multiset:  # the same items in another order
                    found.append(Difference(path or "/", Kind.order, None, None))
                    return
            found.extend(positional)
            for value in a[len(b) :]:
                found.append(self._difference(f"{path}/*", Kind.missing, value, None, child))
            for value in b[len(a) :]:
                found.append(self._difference(f"{path}/*", Kind.extra, None, value, child))
            return
        if a == b and type(a) is type(b):
            return
        numbers = (int, float)
        if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
            if _close(a, b, tolerance or self.default_tolerance):
                return
            found.append(self._difference(path, Kind.value, a, b, nodes))
            return
        kind = Kind.type if _family(a) != _family(b) else Kind.value
        found.append(self._difference(path, kind, a, b, nodes))

    def _unordered(
        self, a: list[Any], b: list[Any], child: tuple[_Node, ...], path: str, key: str | None, found: list[Difference]
    ) -> None:
        if key is not None:
            by_key = {_hashable(item.get(key)) if isinstance(item, dict) else None: item for item in b}
            seen = set()
            for item in a:
                wanted = _hashable(item.get(key)) if isinstance(item, dict) else None
                if wanted in by_key:
                    seen.add(wanted)
                    self._walk(item, by_key[wanted], child, path, found)
                else:
                    found.append(self._difference(path, Kind.missing, item, None, child))
            for wanted, item in by_key.items():
                if wanted not in seen:
                    found.append(self._difference(path, Kind.extra, None, item, child))
            return
        # a multiset: each legacy item pairs with a cloud item that compares equal under the rules
        remaining = list(b)
        for item in a:
            for position, candidate in enumerate(remaining):
                trial: list[Difference] = []
                self._walk(item, candidate, child, path, trial)
                if not trial:
                    del remaining[position]
                    break
            else:
                found.append(self._difference(path, Kind.missing, item, None, child))
        for item in remaining:
            found.append(self._difference(path, Kind.extra, None, item, child))

    def _difference(self, path: str, kind: Kind, a: Any, b: Any, nodes: tuple[_Node, ...]) -> Difference:
        if self.masks and (any(node.mask for node in nodes) or _has_masked(nodes)):
            a = MASK if a is not None else None
            b = MASK if b is not None else None
        return Difference(path or "/", kind, a, b)


def _ignored(nodes: tuple[_Node, ...]) -> bool:
    return any(node.ignore for node in nodes)


def _has_masked(nodes: tuple[_Node, ...]) -> bool:
    """A whole object or array reported as missing/extra is masked if anything under it is."""
    stack = [child for node in nodes for child in node.children.values()]
    while stack:
        node = stack.pop()
        if node.mask:
            return True
        stack.extend(node.children.values())
    return False


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1") if ("/" in name or "~" in name) else name


def _family(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


def _close(a: float, b: float, tolerance: Tolerance | None) -> bool:
    if tolerance is None:
        return a == b
    if tolerance.decimals is not None and round(a, tolerance.decimals) == round(b, tolerance.decimals):
        return True
    if tolerance.absolute is not None and abs(a - b) <= tolerance.absolute + 1e-12:
        return True
    return tolerance.relative is not None and math.isclose(a, b, rel_tol=tolerance.relative)


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _normalised(value: Any, steps: tuple[Normaliser, ...]) -> Any:
    for step in steps:
        if not isinstance(value, str):
            break
        if step == "trim":
            value = value.strip()
        elif step == "lower":
            value = value.lower()
        elif step == "upper":
            value = value.upper()
        elif step == "utc":
            value = _utc(value)
        elif step == "number" and _NUMBER.match(value.strip()):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                continue
            value = int(number) if number == number.to_integral_value() else float(number)
    return value


def _utc(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.isoformat()  # no zone: nothing to convert, compare as written
    return moment.astimezone(UTC).isoformat()
