"""The architect's commands end to end, through typer's runner."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog

runner = CliRunner()
T0 = 1767225600


def put(path: Path, text: str, mtime: float = T0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_scan_files_prints_drops_per_entity_and_writes_the_catalog(tmp_path: Path) -> None:
    for n in range(5):
        put(tmp_path / "de" / "in" / f"ORD_2026010{n + 1}_{n:06d}.csv", "a;b;c\n1;2;3\n", T0 + n * 86400)
    put(tmp_path / "us" / "out" / "ACK_0001.json", '{"ok": true}')
    out = tmp_path / "catalog.json"
    result = runner.invoke(
        app,
        ["scan", "files", str(tmp_path / "de"), str(tmp_path / "us"), "--out", str(out), "--entity", "ACME-DE=*/de/*"],
    )
    assert result.exit_code == 0, result.output
    assert "ACME-DE — 1 drops" in result.output
    assert "ORD_{date}_{seq}.csv" in result.output
    assert "(no entity) — 1 drops" in result.output
    catalog = Catalog.load(out)
    assert {(i.entity, i.name) for i in catalog.interfaces} == {
        ("ACME-DE", "ORD_{date}_{seq}.csv"),
        (None, "ACK_{seq}.json"),
    }


def test_scanning_into_an_existing_catalog_merges(tmp_path: Path) -> None:
    put(tmp_path / "a" / "in" / "A_1.csv", "a,b,c\n")
    put(tmp_path / "b" / "in" / "B_1.csv", "a,b,c\n")
    out = tmp_path / "catalog.json"
    assert runner.invoke(app, ["scan", "files", str(tmp_path / "a"), "-o", str(out)]).exit_code == 0
    result = runner.invoke(app, ["scan", "files", str(tmp_path / "b"), "-o", str(out)])
    assert "2 interfaces in all, 1 from this scan" in result.output
    assert len(Catalog.load(out).sources) == 2


def test_a_broken_catalog_at_out_is_reported_and_kept(tmp_path: Path) -> None:
    put(tmp_path / "in" / "A_1.csv", "a,b,c\n")
    out = tmp_path / "catalog.json"
    out.write_text("{half a catalog")
    result = runner.invoke(app, ["scan", "files", str(tmp_path / "in"), "-o", str(out)])
    assert result.exit_code == 2
    assert "not a JSON catalog" in result.output
    assert out.read_text() == "{half a catalog"


def test_a_missing_target_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A path on the command line that is not there is a bad argument: said first, exit 2, no catalog.
    (In a scan.yaml, a source that cannot be reached makes the catalog incomplete instead: the rest goes on.)"""
    out = tmp_path / "catalog.json"
    (tmp_path / "here").mkdir()
    result = runner.invoke(app, ["scan", "files", str(tmp_path / "here"), str(tmp_path / "nope"), "-o", str(out)])
    assert result.exit_code == 2 and "nope: no such folder" in result.output
    assert not out.exists()


def test_scan_run_reads_the_config(tmp_path: Path) -> None:
    put(tmp_path / "estate" / "uk" / "orders" / "processed" / "ORDERS_20260101_00001.edi", "UNH+1+ORDERS:D:96A:UN'")
    (tmp_path / "scan.yaml").write_text(
        "out: result.json\n"
        "timezone: Europe/London\n"
        "files:\n  - path: estate\n    system: erp_uk\n"
        "entities:\n  - entity: ACME-UK\n    path: '*/uk/*'\n"
    )
    result = runner.invoke(app, ["scan", "run", str(tmp_path / "scan.yaml")])
    assert result.exit_code == 0, result.output
    [drop] = Catalog.load(tmp_path / "result.json").interfaces
    assert (drop.entity, drop.system, drop.formats) == ("ACME-UK", "erp_uk", ["edifact:ORDERS"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("files: [", "not valid YAML"),
        ("- just a list", "a scan config is a mapping"),
        ("files:\n  - {}\n", "give exactly one of path"),
        ("files:\n  - path: x\n    colour: red\n", "files.0.colour: Extra inputs are not permitted"),
        ("timezone: Mars/Olympus\nfiles:\n  - path: .\n", "unknown timezone 'Mars/Olympus'"),
        (
            "files:\n  - url: sftp://edi@127.0.0.1:1/in\n    password_env: BANYAN_TEST_UNSET\n",
            "environment variable BANYAN_TEST_UNSET (the SFTP password) is not set",
        ),
        ("files:\n  - url: sftp://edi:hunter2@127.0.0.1/in\n", "put no password in an sftp:// URL"),
    ],
)
def test_config_errors_say_what_to_fix(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "scan.yaml").write_text(config)
    result = runner.invoke(app, ["scan", "run", str(tmp_path / "scan.yaml")])
    assert result.exit_code in (1, 2)
    assert message in " ".join(result.output.split())
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", "run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the scan config" in result.output


def test_catalog_schema_is_valid_json_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["catalog", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["default"] == 1


def test_catalog_show(tmp_path: Path) -> None:
    put(tmp_path / "in" / "A_1.csv", "a,b,c\n")
    runner.invoke(app, ["scan", "files", str(tmp_path / "in"), "-o", str(tmp_path / "c.json")])
    result = runner.invoke(app, ["catalog", "show", str(tmp_path / "c.json")])
    assert result.exit_code == 0
    assert "A_{seq}.csv" in result.output and "complete" in result.output


def test_watch_measures_arrivals_live(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    put(inbound / "ORD_000001.csv", "a,b,c\n")

    def arrive() -> None:
        time.sleep(0.8)
        for n in range(2, 8):
            # written under a temporary name, then renamed, as careful uploaders do
            (inbound / f".ORD_{n:06d}.tmp").write_text("a,b,c\n")
            os.rename(inbound / f".ORD_{n:06d}.tmp", inbound / f"ORD_{n:06d}.csv")
            time.sleep(0.25)

    writer = threading.Thread(target=arrive)
    writer.start()
    out = tmp_path / "catalog.json"
    result = runner.invoke(app, ["scan", "files", str(tmp_path), "-o", str(out), "--watch", "3.5"])
    writer.join()
    assert result.exit_code == 0, result.output
    [drop] = Catalog.load(out).interfaces
    observed = drop.activity.observed
    assert observed is not None
    assert observed.arrivals == 6
    assert observed.rate_per_hour == pytest.approx(6 * 3600 / 3.5)
    assert 0.7 <= (observed.largest_gap_seconds or 0) <= 3.5
    assert drop.activity.cadence is not None and drop.activity.cadence.measured


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["scan", "files", "--help"])
    assert "Example: banyan scan files" in result.output


def test_scanned_names_are_printed_as_text_not_markup(tmp_path: Path) -> None:
    put(tmp_path / "in" / "[blink]ORD_1.csv", "a,b\n1,2\n")
    put(tmp_path / "in" / "[link=file:x]X_1.csv", "a,b\n1,2\n")
    put(tmp_path / "in" / "BELL\x07\x1b[2J_1.csv", "a,b\n1,2\n")
    result = runner.invoke(app, ["scan", "files", str(tmp_path), "-o", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert "[blink]ORD_{seq}.csv" in result.output
    assert "[link=file:x]X_{seq}.csv" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "BELL??[{seq}J_{seq}.csv" in result.output  # the escape codes shown as marks
