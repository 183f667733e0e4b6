"""What a consumer sends, read strictly before anything acts on it.

JSON: RFC 8259 has no `NaN` or `Infinity`, and `1e400` is not a number any ledger can book, so
each is refused instead of reaching a backend as inf or NULL; a document nested beyond what the
parser can take is a 400, not a 500. Headers forwarded to a backend must be Latin-1 text, as HTTP/1.1
carries them: `SOAPAction: "€"` is refused with the header's name rather than failing mid-call.
"""

from __future__ import annotations

import json
import math
from typing import Any

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


def forwardable(headers: dict[str, str]) -> dict[str, str]:
    """`headers` if each value can be sent on as it came; else a 400 naming the header."""
    for name, value in headers.items():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise Problem(400, "Header not acceptable", f"the {name} header must be Latin-1 text") from None
    return headers
