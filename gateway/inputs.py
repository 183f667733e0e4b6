"""What a consumer sends, read strictly before anything acts on it.

JSON: RFC 8259 has no `NaN` or `Infinity`, and `1e400` is not a number any ledger can book, so
each is refused instead of reaching a backend as inf or NULL; a document nested beyond what the
parser can take is a 400, not a 500. Headers forwarded to a backend must be Latin-1 text, as HTTP/1.1
carries them: `SOAPAction: "€"` is refused with the header's name rather than failing mid-call.
Schemas: a `pattern` is an ECMA-262 regular expression, whose `$` ends the string; Python's `$`
also matches before a final newline, so `^[A-Z-]+$` let `"SH-NL\n"` through.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from gateway.problems import Problem


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


def parse_json(raw: bytes) -> Any:
    """The JSON document in `raw`, or a 400 problem that says what is wrong with it."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise Problem(400, "Malformed JSON", "the document nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Problem(400, "Malformed JSON", str(exc)[:300]) from None


def forwardable(given: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The headers named `names` that the consumer sent (`given`), to send on as they came, under
    those names; a value that cannot be sent on (not Latin-1, or holding a line break) is a 400
    naming its header."""
    picked: dict[str, str] = {}
    for name in names:
        value = given.get(name)
        if value is None:
            continue
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise Problem(400, "Header not acceptable", f"the {name} header must be Latin-1 text") from None
        if "\r" in value or "\n" in value:
            raise Problem(400, "Header not acceptable", f"the {name} header must be one line") from None
        picked[name] = value
    return picked


@lru_cache(maxsize=1024)
def _ecma(pattern: str) -> re.Pattern[str]:
    """`pattern` with each `$` outside a character class made `\\Z`, as ECMA-262 reads it."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator: Any = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]


def schema_validator(schema: dict[str, Any]) -> Validator:
    """A JSON Schema 2020-12 validator whose patterns read as JSON Schema says, not as Python does."""
    validator: Validator = StrictValidator(schema)
    return validator


async def json_body(request: web.Request, validator: Validator | None) -> Any:
    """A POST, PUT or PATCH body as JSON (an empty one is {}; None for other methods), checked
    against `validator` when there is one: 415, 400 or 422 naming what is wrong."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    raw = await request.read()
    if not raw:
        body: Any = {}
    else:
        if request.content_type not in ("application/json", "application/merge-patch+json"):
            raise Problem(415, "Unsupported media type", "send application/json")
        body = parse_json(raw)
    if validator is not None:
        try:
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        except RecursionError:
            raise Problem(400, "Malformed JSON", "the document nests too deeply") from None
        if errors:
            listed = [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors[:20]]
            raise Problem(422, "Request does not match the schema", "see errors", errors=listed)
    return body
