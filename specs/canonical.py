"""Canonical business entities: one shape for an answer, whichever legal entity's system gives it.

`routes/canonical/*.json` holds a JSON Schema (2020-12) per business entity — customer, item,
location, inventory, order, invoice, shipment — each with an `extensions` object where one legal
entity's own fields go. A route's operation refers to one (`response: {$ref: canonical:inventory}`)
and may add fields per entity (`entities: ACME-US: extends: {tax_jurisdiction: {type: string}}`).

The gateway then lifts every answer of the route into that shape: a field the answer leaves out
that the call's path names is taken from it, and a scalar the schema types is converted (the "759"
a SOAP service answers becomes 759), so a consumer sees one contract and the comparator compares
like with like. Answers are validated against the schema on the comparison path (a cloud answer
that breaks the contract is a mismatch), and on every call when the operation asks (`validate`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

PREFIX = "canonical:"
FOLDER = "canonical"  # beside the route files
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class CanonicalError(ValueError):
    """A canonical schema that is missing or not a JSON Schema; the message names the file."""


def reference(schema: dict[str, Any] | None) -> str | None:
    """The canonical entity a schema refers to (`{$ref: canonical:order}` → order), or None."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith(PREFIX):
        return str(schema["$ref"])[len(PREFIX) :]
    return None


def load_canonical(routes: Path) -> dict[str, dict[str, Any]]:
    """Every canonical schema beside the route files, by name; each is checked to be a JSON Schema."""
    found: dict[str, dict[str, Any]] = {}
    folder = routes / FOLDER
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CanonicalError(f"{path}: not a JSON document: {exc}") from None
        except SchemaError as exc:
            raise CanonicalError(f"{path}: not a JSON Schema: {exc.message}") from None
        found[path.stem] = schema
    return found


def with_extensions(schema: dict[str, Any], extends: dict[str, Any] | None) -> dict[str, Any]:
    """The canonical schema with one entity's added fields under `extensions`."""
    if not extends:
        return schema
    widened = copy.deepcopy(schema)
    extensions = widened.setdefault("properties", {}).setdefault("extensions", {"type": "object"})
    extensions.setdefault("properties", {}).update(extends)
    return widened


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """`value` with the scalars the schema types converted where that loses nothing."""
    kind = schema.get("type")
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer" and _INTEGER.match(text):
            return int(text)
        if kind == "number" and _NUMBER.match(text):
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return value
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # an id a database answers as a number
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: _coerce(item, properties[key]) if key in properties else item for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(item, schema["items"]) for item in value]
    return value


class Contract:
    """A route's canonical answer, per entity: lifts answers into it and says where one breaks it."""

    def __init__(self, name: str, schema: dict[str, Any], extends: Mapping[str, dict[str, Any] | None]) -> None:
        self.name = name
        self.schemas = {"": schema} | {entity: with_extensions(schema, more) for entity, more in extends.items()}
        self._validators = {
            entity: Draft202012Validator(each, format_checker=FormatChecker()) for entity, each in self.schemas.items()
        }

    def schema(self, entity: str | None) -> dict[str, Any]:
        return self.schemas.get(entity or "", self.schemas[""])

    def lift(self, answer: Any, entity: str | None, params: dict[str, str]) -> Any:
        """The answer in the canonical shape: fields it lacks that the path names, scalars typed."""
        schema = self.schema(entity)
        if isinstance(answer, dict):
            missing = {
                name: params[name] for name in schema.get("properties", {}) if name not in answer and name in params
            }
            answer = {**answer, **missing} if missing else answer
        return _coerce(answer, schema)

    def violations(self, answer: Any, entity: str | None) -> list[tuple[str, str]]:
        """(JSON pointer, what is wrong) for each place the answer breaks the contract."""
        validator = self._validators.get(entity or "", self._validators[""])
        found = []
        for error in sorted(validator.iter_errors(answer), key=lambda e: list(map(str, e.absolute_path))):
            pointer = "".join(f"/{step}" for step in error.absolute_path) or "/"
            found.append((pointer, error.message))
        return found[:20]
