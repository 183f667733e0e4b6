"""Request and response mappings: declarative field maps, XSLT for XML, or a Python callable.

A field map lists target fields and where each comes from, as a JSON pointer into the source
(`/lines/0/qty`) or a constant (`=EUR`). An XSLT mapping transforms an XML document with lxml
(no network, no document() calls). A callable mapping names `module:function`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, model_validator


class MappingError(ValueError):
    """A mapping could not be applied: the message names the field and what was missing."""


def pointer_get(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup; a missing path raises MappingError."""
    if pointer in ("", "/"):
        return document
    current = document
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            raise MappingError(f"{pointer}: no value at '{part}'")
    return current


def pointer_set(document: dict[str, Any], pointer: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    current: Any = document
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    map: dict[str, str] | None = Field(default=None, description="target pointer → source pointer, or =constant")
    optional: list[str] = Field(default_factory=list, description="targets left out when their source is missing")
    xslt: Path | None = Field(default=None, description="an XSLT stylesheet for XML payloads")
    callable: str | None = Field(default=None, description="module:function taking and returning the payload")

    @model_validator(mode="after")
    def _one_kind(self) -> Mapping:
        if sum(value is not None for value in (self.map, self.xslt, self.callable)) != 1:
            raise ValueError("a mapping is exactly one of map, xslt or callable")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"callable {self.callable!r} must be written module:function")
        return self

    def compile(self, base: Path | None = None) -> Callable[[Any], Any]:
        if self.map is not None:
            return _field_map(self.map, set(self.optional))
        if self.xslt is not None:
            path = self.xslt if self.xslt.is_absolute() or base is None else base / self.xslt
            return _xslt(path)
        module, _, name = (self.callable or "").partition(":")
        try:
            function = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise MappingError(f"cannot import mapping {self.callable}: {exc}") from None
        if not callable(function):
            raise MappingError(f"mapping {self.callable} is not callable")
        return function  # type: ignore[no-any-return]


def _unescaped(pointer: str) -> tuple[str, ...]:
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/"))


def _field_map(fields: dict[str, str], optional: set[str]) -> Callable[[Any], Any]:
    """The field map as a plan made once (each pointer split and unescaped ahead), so applying it to
    a record costs dictionary lookups: a reconciliation maps millions of records with it."""
    plan: list[tuple[tuple[str, ...], tuple[str, ...] | None, Any, bool, str]] = []
    for to, origin in fields.items():
        target = _unescaped(to if to.startswith("/") else f"/{to}")
        if origin.startswith("="):
            plan.append((target, None, origin[1:], False, origin))
        else:
            path = () if origin in ("", "/") else _unescaped(origin)
            plan.append((target, path, None, to in optional, origin))

    def apply(source: Any) -> dict[str, Any]:
        target: dict[str, Any] = {}
        for places, path, constant, skippable, origin in plan:
            value: Any = constant
            if path is not None:
                value = source
                for part in path:
                    if isinstance(value, dict) and part in value:
                        value = value[part]
                    elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                        value = value[int(part)]
                    else:
                        break
                else:
                    path = None  # found
                if path is not None:
                    if skippable:
                        continue
                    raise MappingError(f"{origin}: no value at '{part}'")
            if len(places) == 1:  # a top-level field: the common case
                target[places[0]] = value
            else:
                _place(target, places, value)
        return target

    return _straight(plan, apply) or apply


Plan = list[tuple[tuple[str, ...], tuple[str, ...] | None, Any, bool, str]]  # target, path or None, constant, …


def _straight(plan: Plan, general: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]] | None:
    """The map as one Python expression, when every target is a top-level field, none optional, and
    every source a path of object keys (or a constant): `{"orderId": source["number"], …}`, with the
    general way taking over whenever a step is missing or not an object, so that it says which. A
    reconciliation maps millions of records with it, a gateway every answer."""
    fields = []
    for places, path, constant, skippable, _ in plan:
        if len(places) != 1 or skippable or (path is not None and any(part.isdigit() for part in path)):
            return None
        value = repr(constant) if path is None else "source" + "".join(f"[{part!r}]" for part in path)
        fields.append(f"{places[0]!r}: {value}")
    code = (
        "def straight(source):\n"
        "    if type(source) is not dict:\n"
        "        return general(source)\n"
        "    try:\n"
        f"        return {{{', '.join(fields)}}}\n"
        "    except (KeyError, TypeError, IndexError):\n"
        "        return general(source)\n"
    )
    scope: dict[str, Any] = {"general": general}
    exec(compile(code, "<field map>", "exec"), scope)  # names and paths are repr() literals: nothing of them runs
    return scope["straight"]  # type: ignore[no-any-return]


def _place(target: dict[str, Any], places: tuple[str, ...], value: Any) -> None:
    """Put `value` at `places`, making what is missing on the way: a list where the next step is a
    number (/lines/0/sku), else an object."""
    node: Any = target
    for index, part in enumerate(places):
        last = index == len(places) - 1
        made: Any = None if last else [] if places[index + 1].isdigit() else {}
        if isinstance(node, list):
            if not part.isdigit():
                raise MappingError(f"/{'/'.join(places)}: {part!r} is no position in a list")
            position = int(part)
            while len(node) <= position:
                node.append(None)
            if last:
                node[position] = value
                return
            if node[position] is None:
                node[position] = made
            node = node[position]
        else:
            if last:
                node[part] = value
                return
            node = node.setdefault(part, made)


def _xslt(path: Path) -> Callable[[Any], Any]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    access = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]  # no file or network access from XSLT
    transform = etree.XSLT(etree.parse(str(path), parser), access_control=access)

    def apply(source: Any) -> Any:
        document = source if isinstance(source, etree._Element) else etree.fromstring(source, parser)
        return transform(document).getroot()

    return apply
