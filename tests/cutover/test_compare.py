"""The comparator: rules, difference kinds, normalised paths, masking."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cutover.compare import MASK, Comparator, Difference, Kind, Rules


def diff(a: Any, b: Any, **rules: Any) -> list[tuple[str, str]]:
    return [(d.path, d.kind.value) for d in Comparator(Rules(**rules)).compare(a, b)]


@pytest.mark.parametrize(
    ("legacy", "cloud", "rules", "expected"),
    [
        ({"a": 1}, {"a": 1}, {}, []),
        ({"a": 1}, {"a": 2}, {}, [("/a", "value")]),
        ({"a": 1, "b": 2}, {"a": 1}, {}, [("/b", "missing")]),
        ({"a": 1}, {"a": 1, "c": 3}, {}, [("/c", "extra")]),
        ({"a": 1}, {"a": "1"}, {}, [("/a", "type")]),
        ({"a": True}, {"a": 1}, {}, [("/a", "type")]),  # a boolean is not a number
        ({"a": 1}, {"a": 1.0}, {}, []),
        ({"a": None}, {"a": 0}, {}, [("/a", "type")]),
        # ignored paths, with wildcards, also for missing and extra
        ({"etag": "x", "m": {"t": 1}}, {"etag": "y", "m": {"t": 2}}, {"ignore": ["/etag", "/m/*"]}, []),
        ({"lines": [{"at": 1, "q": 2}]}, {"lines": [{"at": 9, "q": 2}]}, {"ignore": ["/lines/*/at"]}, []),
        ({"a": 1}, {"a": 1, "debug": {}}, {"ignore": ["/debug"]}, []),
        # tolerances
        ({"t": 10.0}, {"t": 10.004}, {"tolerance": 0.01}, []),
        ({"t": 10.0}, {"t": 10.1}, {"tolerance": 0.01}, [("/t", "value")]),
        ({"t": 1000.0}, {"t": 1000.9}, {"tolerance": {"relative": 0.001}}, []),
        ({"t": 1.004}, {"t": 1.0}, {"tolerance": {"decimals": 2}}, []),
        ({"t": 1.0, "q": 1.0}, {"t": 1.3, "q": 1.3}, {"tolerances": {"/t": {"absolute": 0.5}}}, [("/q", "value")]),
        # arrays: positional paths are normalised, lengths, order, unordered by key or as a multiset
        ({"l": [{"q": 1}, {"q": 2}]}, {"l": [{"q": 1}, {"q": 3}]}, {}, [("/l/*/q", "value")]),
        ({"l": [1, 2, 3]}, {"l": [1, 2]}, {}, [("/l/*", "missing")]),
        ({"l": [1, 2]}, {"l": [1, 2, 3]}, {}, [("/l/*", "extra")]),
        ({"l": [1, 2, 3]}, {"l": [3, 2, 1]}, {}, [("/l", "order")]),
        ({"l": [1, 2, 3]}, {"l": [3, 2, 1]}, {"unordered": {"/l": None}}, []),
        ({"l": [1, 2, 2]}, {"l": [2, 1, 1]}, {"unordered": {"/l": None}}, [("/l/*", "missing"), ("/l/*", "extra")]),
        (
            {"l": [{"k": "A", "q": 1}, {"k": "B", "q": 2}]},
            {"l": [{"k": "B", "q": 5}, {"k": "A", "q": 1}, {"k": "C", "q": 1}]},
            {"unordered": {"/l": "k"}},
            [("/l/*/q", "value"), ("/l/*", "extra")],
        ),
        # normalisers run on both sides first
        ({"n": " Acme "}, {"n": "ACME"}, {"normalise": {"/n": ["trim", "lower"]}}, []),
        ({"w": "2026-01-01T10:00:00+01:00"}, {"w": "2026-01-01T09:00:00Z"}, {"normalise": {"/w": ["utc"]}}, []),
        ({"q": "5.0"}, {"q": 5}, {"normalise": {"/q": ["number"]}}, []),
        ({"q": "five"}, {"q": 5}, {"normalise": {"/q": ["number"]}}, [("/q", "type")]),
        # a key with a slash is escaped as in a JSON pointer
        ({"a/b": 1}, {"a/b": 2}, {}, [("/a~1b", "value")]),
        (1, 2, {}, [("/", "value")]),
    ],
)
def test_differences(legacy: Any, cloud: Any, rules: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert diff(legacy, cloud, **rules) == expected


def test_both_values_are_kept() -> None:
    assert Comparator().compare({"q": 1}, {"q": 2}) == [Difference("/q", Kind.value, 1, 2)]


def test_masked_values_never_leave() -> None:
    comparator = Comparator(Rules(mask=["/customer/iban", "/cards/*/number"]))
    found = comparator.compare(
        {"customer": {"iban": "DE1"}, "cards": [{"number": "4111"}]},
        {"customer": {"iban": "DE2"}, "cards": [{"number": "4222"}, {"number": "4333"}]},
    )
    assert found == [
        Difference("/customer/iban", Kind.value, MASK, MASK),
        Difference("/cards/*/number", Kind.value, MASK, MASK),
        Difference("/cards/*", Kind.extra, None, MASK),  # the whole item holds a masked field
    ]
    assert "DE" not in repr(found) and "4" not in repr([d.legacy for d in found] + [d.cloud for d in found])


def test_rules_reject_unknown_settings() -> None:
    with pytest.raises(ValidationError):
        Rules.model_validate({"ignroe": ["/a"]})
    with pytest.raises(ValidationError):
        Rules.model_validate({"normalise": {"/a": ["rot13"]}})
