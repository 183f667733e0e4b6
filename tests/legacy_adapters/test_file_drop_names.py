"""File names built from request parts: nothing may climb out of the drop folder."""

from __future__ import annotations

import pytest

from legacy_adapters import BackendRejected, Call
from legacy_adapters.file_drop import file_name


@pytest.mark.parametrize(
    ("entity", "key", "allowed"),
    [
        ("ACME-DE", "PO-1001", True),
        ("ACME_UK.2", "A.B-C_9", True),
        ("../../etc", "PO-1", False),
        ("ACME-DE", "../passwd", False),
        ("ACME-DE", "a/b", False),
        ("ACME-DE", "a\\b", False),
        ("ACME-DE", ".hidden", False),
        ("ACME-DE", "x" * 200, False),
        ("ACME-DE", "PO 1", False),
        ("ACME-DE", "PO\x00", False),
        ("ACME-DE", "SH-NL\n", False),  # Python's `$` matched before a final newline
    ],
)
def test_file_name_parts(entity: str, key: str, allowed: bool) -> None:
    call = Call(route="order-create", payload={}, entity=entity, key=key, correlation_id="c0ffee")
    if allowed:
        assert file_name("ORD_{entity}_{key}_{correlation_id}.json", call) == f"ORD_{entity}_{key}_c0ffee.json"
    else:
        with pytest.raises(BackendRejected, match="cannot be part of a file name"):
            file_name("ORD_{entity}_{key}_{correlation_id}.json", call)


def test_a_template_that_makes_a_path_is_refused() -> None:
    call = Call(route="r", payload={}, correlation_id="c0ffee")
    with pytest.raises(BackendRejected, match="produced a path"):
        file_name("sub/{correlation_id}.json", call)
