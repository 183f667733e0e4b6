"""Diff between two scans, as a table of changes made to a copy of the corpus catalog."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Activity, Cadence, Catalog, Interface
from inventory_scan.analysis.diff import diff


def first(catalog: Catalog, kind: str) -> Interface:
    return next(i for i in catalog.interfaces if i.kind.value == kind)


def replace(catalog: Catalog, old: Interface, new: Interface | None) -> Catalog:
    interfaces = [new if i.id == old.id else i for i in catalog.interfaces]
    return catalog.model_copy(update={"interfaces": [i for i in interfaces if i is not None]})


Edit = Callable[[Catalog], Catalog]
CASES: list[tuple[str, Edit, dict[str, object]]] = [
    ("nothing", lambda c: c, {"added": 0, "removed": 0, "changed": 0, "activity": 0}),
    ("removed", lambda c: replace(c, first(c, "db_trigger"), None), {"removed": 1}),
    (
        "added",
        lambda c: c.model_copy(
            update={"interfaces": [*c.interfaces, first(c, "esb_flow").model_copy(update={"id": "if_new"})]}
        ),
        {"added": 1},
    ),
    (
        "entity changed",
        lambda c: replace(c, first(c, "esb_flow"), first(c, "esb_flow").model_copy(update={"entity": "ACME-NL"})),
        {"changed": 1, "fields": {"entity"}},
    ),
    (
        "writes changed",
        lambda c: replace(
            c, first(c, "db_trigger"), first(c, "db_trigger").model_copy(update={"writes": ["dbo.new_queue"]})
        ),
        {"changed": 1, "fields": {"writes"}},
    ),
    (
        "activity rose sharply",
        lambda c: replace(
            c,
            first(c, "file_drop"),
            first(c, "file_drop").model_copy(
                update={"activity": first(c, "file_drop").activity.model_copy(update={"count": 50})}
            ),
        ),
        {"activity": 1, "fields": {"count"}},
    ),
    (
        "cadence changed",
        lambda c: replace(
            c,
            first(c, "file_drop"),
            first(c, "file_drop").model_copy(
                update={"activity": Activity(count=1, cadence=Cadence(kind="nightly", label="nightly ~02:00"))}
            ),
        ),
        {"activity": 1, "fields": {"cadence"}},
    ),
]


@pytest.mark.parametrize(("case", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff(corpus_catalog: Catalog, case: str, edit: Edit, expected: dict[str, object]) -> None:
    found = diff(corpus_catalog, edit(corpus_catalog))
    counts = {
        "added": len(found.added),
        "removed": len(found.removed),
        "changed": len(found.changed),
        "activity": len(found.activity),
    }
    for key, value in expected.items():
        if key == "fields":
            changes = found.changed or found.activity
            assert set(changes[0].fields) == value
        else:
            assert counts[key] == value
    assert found.empty == (case == "nothing")


def test_diff_command_exit_codes_and_json(corpus_catalog: Catalog, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    corpus_catalog.save(old)
    corpus_catalog.save(new)
    runner = CliRunner()
    same = runner.invoke(app, ["catalog", "diff", str(old), str(new)])
    assert (same.exit_code, "no changes" in same.output) == (0, True)
    replace(corpus_catalog, first(corpus_catalog, "db_trigger"), None).save(new)
    changed = runner.invoke(app, ["catalog", "diff", str(old), str(new), "--json"])
    assert changed.exit_code == 1
    assert len(json.loads(changed.output)["removed"]) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert runner.invoke(app, ["catalog", "diff", str(old), str(broken)]).exit_code == 2


def test_graph_and_report_commands(corpus_catalog: Catalog, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    corpus_catalog.save(catalog)
    runner = CliRunner()
    for fmt, start in (("dot", "digraph"), ("mermaid", "flowchart"), ("graphml", "<?xml")):
        result = runner.invoke(app, ["catalog", "graph", str(catalog), "-f", fmt])
        assert result.exit_code == 0 and result.output.startswith(start)
    result = runner.invoke(
        app,
        ["catalog", "report", str(catalog), "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")],
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "http://" not in html.split("<body>")[0].replace("http://www.w3.org", "")
    markdown = (tmp_path / "r.md").read_text()
    assert "## By legal entity" in markdown and "| employee_insupd | db_trigger |" in markdown
    assert runner.invoke(app, ["catalog", "report", str(catalog)]).exit_code == 2
