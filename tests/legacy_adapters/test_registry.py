"""One registry for the backends, the ESB products' readers and the file formats' detectors."""

from __future__ import annotations

import pytest

import inventory_scan.esb  # loading the packages adds their plug-ins and detectors
import inventory_scan.formats  # noqa: F401
from inventory_scan.esb.base import PLUGINS
from inventory_scan.formats.base import detectors
from legacy_adapters.base import BACKENDS
from legacy_adapters.registry import Registry


def test_items_come_by_name_and_in_order_and_a_missing_name_says_what_there_is() -> None:
    found: Registry[str] = Registry("detector")
    found.add("csv", "guess", order=90)
    found.register("x12", order=10)("envelope")
    found.add("json", "document", order=90)
    assert list(found) == [("x12", "envelope"), ("csv", "guess"), ("json", "document")]
    found.add("csv", "better guess", order=90)  # a name added again keeps its place, with the new item
    assert found["csv"] == "better guess" and found.names() == ["x12", "csv", "json"]
    assert "x12" in found and "idoc" not in found
    with pytest.raises(KeyError, match="no detector named 'idoc'; there are: x12, csv, json"):
        found["idoc"]


def test_the_three_registries_hold_what_their_modules_add() -> None:
    assert {"http", "soap", "file_drop", "odbc", "memory"} <= set(BACKENDS.names())
    assert {"mule", "camel", "synapse", "biztalk", "spring-integration", "wsdl"} <= set(PLUGINS.names())
    names = [name for name, _ in detectors()]
    assert names[:2] == ["x12", "edifact"] and names.index("csv") > names.index("json")  # envelopes before guessers
