from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from inventory_scan import SCHEMA_VERSION, Activity, Catalog, CatalogError, Edge, Interface, Kind, Source, interface_id
from inventory_scan.analysis.pipeline import save_merged
from inventory_scan.catalog import json_schema


def drop(locator: str, count: int = 1) -> Interface:
    return Interface.build(
        kind=Kind.file_drop, system="erp_a", locator=locator, name=locator.rsplit("/", 1)[-1], protocol="file"
    ).model_copy(update={"activity": Activity(count=count)})


def source(locator: str, complete: bool = True) -> Source:
    return Source(
        locator=locator,
        kind="files",
        scanned_at=datetime(2026, 1, 1, tzinfo=UTC),
        complete=complete,
        reason=None if complete else "connection lost",
    )


def test_ids_are_stable_and_depend_on_kind_system_and_locator() -> None:
    first = interface_id("file_drop", "erp_a", "file:///in/ORD_{seq}.csv")
    assert first == interface_id("file_drop", "erp_a", "file:///in/ORD_{seq}.csv")
    assert first.startswith("if_") and len(first) == 19
    assert first != interface_id("file_drop", "erp_b", "file:///in/ORD_{seq}.csv")
    assert first != interface_id("db_trigger", "erp_a", "file:///in/ORD_{seq}.csv")
    assert drop("file:///in/ORD_{seq}.csv").id == first


def test_merge_by_id_newer_wins_and_others_stay() -> None:
    old = Catalog(interfaces=[drop("file:///a", 1), drop("file:///b", 1)], sources=[source("file:///")])
    new = Catalog(interfaces=[drop("file:///b", 5), drop("file:///c", 1)], sources=[source("sftp://h/")])
    merged = old.merge(new)
    counts = {i.locator: i.activity.count for i in merged.interfaces}
    assert counts == {"file:///a": 1, "file:///b": 5, "file:///c": 1}
    assert [s.locator for s in merged.sources] == ["file:///", "sftp://h/"]


def test_edges_merge_without_duplicates() -> None:
    a = drop("file:///a")
    edge = Edge(source=a.id, target="file:///archive", relation="lifecycle:archive")
    merged = Catalog(interfaces=[a], edges=[edge]).merge(Catalog(interfaces=[a], edges=[edge]))
    assert merged.edges == [edge]


def test_incomplete_source_makes_the_catalog_incomplete() -> None:
    assert Catalog(sources=[source("file:///")]).complete
    assert not Catalog(sources=[source("file:///"), source("sftp://h/", complete=False)]).complete


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    catalog = Catalog(interfaces=[drop("file:///a")], sources=[source("file:///")])
    path = tmp_path / "catalog.json"
    catalog.save(path)
    assert Catalog.load(path) == catalog
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]  # no temporary file left behind


def test_save_merged_merges_into_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    save_merged(Catalog(interfaces=[drop("file:///a")]), path)
    merged = save_merged(Catalog(interfaces=[drop("file:///b")]), path)
    assert {i.locator for i in Catalog.load(path).interfaces} == {"file:///a", "file:///b"}
    assert len(merged.interfaces) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON catalog"),
        ('{"schema_version": 99, "interfaces": []}', "schema_version 99"),
        ("[1, 2]", "schema_version None"),
        ('{"schema_version": 1, "interfaces": [{"id": "x"}]}', "invalid catalog"),
    ],
)
def test_bad_catalog_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        Catalog.load(path)


def test_a_bad_existing_catalog_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("{precious but broken")
    with pytest.raises(CatalogError):
        save_merged(Catalog(interfaces=[drop("file:///a")]), path)
    assert path.read_text() == "{precious but broken"


def test_json_schema_validates_a_real_catalog(tmp_path: Path) -> None:
    catalog = Catalog(
        interfaces=[drop("file:///a")],
        edges=[Edge(source=drop("file:///a").id, target="file:///x", relation="lifecycle:archive")],
        sources=[source("file:///")],
    )
    schema = json_schema()
    jsonschema.validate(json.loads(catalog.model_dump_json(exclude_none=True)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "interfaces": [{"kind": "file_drop"}]}, schema)
