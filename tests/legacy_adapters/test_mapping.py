"""A field map whose targets are top-level fields runs as one Python expression; whatever the
source, it gives what the general way gives, and says what is missing in the same words."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legacy_adapters import mapping
from legacy_adapters.mapping import Mapping, MappingError

FIELDS = {
    "/orderId": "/number",
    "/customer": "/customer/id",
    "/total": "/amount/value",
    "/currency": "=EUR",
    "/whole": "",
    "/odd": "/a~1b/c~0d",
}
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["id", "value", "c~d", "x"]), inner),
    max_leaves=6,
)
sources = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={"number": values, "customer": values, "amount": values, "a/b": values}),
)


def _both(source: Any, map_: dict[str, str]) -> tuple[Any, Any]:
    straight = Mapping(map=map_).compile()
    with pytest.MonkeyPatch.context() as patch:  # the same map, the general way
        patch.setattr(mapping, "_straight", lambda plan, general: None)
        general = mapping._field_map(map_, set())
    return _outcome(straight, source), _outcome(general, source)


def _outcome(apply: Any, source: Any) -> Any:
    try:
        return ("mapped", apply(source))
    except MappingError as exc:
        return ("refused", str(exc))


@settings(max_examples=300, deadline=None)
@given(sources)
def test_the_straight_map_gives_what_the_general_way_gives(source: Any) -> None:
    straight, general = _both(source, FIELDS)
    assert straight == general


def test_a_map_is_straight_only_where_it_can_be() -> None:
    assert Mapping(map=FIELDS).compile().__name__ == "straight"
    for map_, optional in (
        ({"/lines/0/sku": "/sku"}, []),
        ({"/sku": "/lines/0/sku"}, []),
        ({"/sku": "/sku"}, ["/sku"]),
    ):
        assert Mapping(map=map_, optional=optional).compile().__name__ == "apply"
    record = {"number": "SO-1", "customer": {"id": "C-7"}, "amount": {"value": 15.0}, "a/b": {"c~d": 1}}
    assert Mapping(map=FIELDS).compile()(record) == {
        "orderId": "SO-1",
        "customer": "C-7",
        "total": 15.0,
        "currency": "EUR",
        "whole": record,
        "odd": 1,
    }
    with pytest.raises(MappingError, match="/amount/value: no value at 'value'"):
        Mapping(map=FIELDS).compile()({**record, "amount": {"v": 1}})
