from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scan import Catalog, FileScan, FileSource
from inventory_scan.analysis.pipeline import save_merged
from inventory_scan.db.scan import DbScan, DbSource
from inventory_scan.esb import EsbScan, EsbSource


@pytest.fixture(scope="session")
def corpus_catalog(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """Everything the three scanners find in shared/corpora, merged and analysed as `scan` saves it."""
    drops = tmp_path_factory.mktemp("drops")
    for n, document in enumerate(
        sorted(p for p in (corpora / "filedrop").rglob("*") if p.is_file() and p.suffix != ".tsv")
    ):
        folder = drops / document.parent.name / "in"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IN{n:04d}.dat").write_bytes(document.read_bytes())
    out = tmp_path_factory.mktemp("catalog") / "catalog.json"
    save_merged(FileScan(jobs=1).run([FileSource(path=drops)])[0], out)
    save_merged(EsbScan().run([EsbSource(str(corpora / "esb"))])[0], out)
    return save_merged(DbScan().run([DbSource(ddl=corpora / "sql")])[0], out)


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make demo`'s estate, scanned with its scan.yaml through the CLI: the catalog's path."""
    import importlib.util

    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()

    spec = importlib.util.spec_from_file_location(
        "demo_estate", Path(__file__).parents[3] / "scripts" / "demo_estate.py"
    )
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    root = tmp_path_factory.mktemp("estate") / "estate"
    demo.build(root)
    result = runner.invoke(app, ["scan", "run", str(root / "scan.yaml")])
    assert result.exit_code == 0, result.output
    return root / "catalog.json"
