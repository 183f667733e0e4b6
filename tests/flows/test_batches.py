"""Scheduled batch exchanges: due in the entity's zone, compared record by record, the serving side's
export delivered once, a late export an error of its side. Times are given, never read."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cutover.decide import Side
from cutover.runtime import Cutover
from flows.batches import BatchRunner, compare_exports
from specs.flows import Batch, Records, ladder
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures

NEW_YORK = ZoneInfo("America/New_York")
DUE = datetime(2026, 12, 7, 2, 0, tzinfo=NEW_YORK)  # a Monday, 02:00 in New York (07:00 UTC)
HEADER = "sku;on_hand;reserved;exported_at\n"


def export(path: Path, rows: list[str], written: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))
    os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def make_batch(root: Path) -> Batch:
    return Batch.model_validate(
        {
            "name": "us-nightly-stock",
            "entity": "ACME-US",
            "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York", "deadline_minutes": 60},
            "records": {"key": ["sku"]},
            "ignore": ["exported_at"],
            "legacy": {"folder": str(root / "legacy"), "pattern": "stock_*.csv"},
            "cloud": {"folder": str(root / "cloud"), "pattern": "stock-*.csv"},
            "deliver": str(root / "wms"),
        }
    )


@pytest.fixture
def runner(tmp_path: Path, store_location: str) -> Iterator[BatchRunner]:  # noqa: F811
    batch = make_batch(tmp_path)
    cutover = Cutover(store_location, *ladder([], [], [batch]))
    yield BatchRunner([batch], cutover)
    cutover.close()


def test_the_run_is_due_in_the_entitys_zone(runner: BatchRunner) -> None:
    batch = runner.batches[0]
    assert runner.due(batch, DUE + timedelta(hours=1)) == DUE
    assert runner.due(batch, DUE - timedelta(minutes=1)) == DUE - timedelta(days=1)
    assert runner.due(batch, DUE) == DUE
    # the night the clocks go back, 02:00 comes once
    autumn = datetime(2026, 11, 1, 4, 0, tzinfo=NEW_YORK)
    assert runner.due(batch, autumn).hour == 2


def test_two_exports_compared_record_by_record(tmp_path: Path) -> None:
    legacy = export(tmp_path / "l.csv", ["SKU-1;10;2;02:01", "SKU-2;5;0;02:01", "SKU-3;7;1;02:01"], DUE)
    cloud = export(tmp_path / "c.csv", ["SKU-1;10;2;02:07", "SKU-2;5;1;02:07", "SKU-4;1;0;02:07"], DUE)
    found = compare_exports(legacy, cloud, Records(key=["sku"]), ["exported_at"])
    assert (found.records, found.mismatches, found.only_legacy, found.only_cloud) == (3, 1, 1, 1)
    differences = {key: [(d.path, d.legacy, d.cloud) for d in diffs] for key, diffs in found.samples}
    assert differences["SKU-2"] == [("/record/reserved", "0", "1")]  # exported_at is ignored
    assert differences["SKU-3"][0][0] == "/record" and differences["SKU-4"][0][0] == "/record"


def test_on_legacy_its_export_is_delivered_without_waiting_for_the_cloud(runner: BatchRunner, tmp_path: Path) -> None:
    batch = runner.batches[0]
    export(tmp_path / "legacy" / "stock_20261207.csv", ["SKU-1;10;2;02:01"], DUE + timedelta(minutes=1))
    export(tmp_path / "legacy" / "stock_20261206.csv", ["SKU-1;9;2;02:01"], DUE - timedelta(days=1))  # yesterday's
    assert runner.pass_once(batch, DUE + timedelta(minutes=5)) == [("ACME-US@0", Side.legacy, False)]
    assert [p.name for p in (tmp_path / "wms").iterdir()] == ["20261207T0200_stock_20261207.csv"]
    assert runner.pass_once(batch, DUE + timedelta(minutes=6)) == []  # made once
    [run] = runner.runs(batch.name)
    assert (run["state"], run["serving"], run["legacy_file"]) == ("delivered", "legacy", "stock_20261207.csv")


def test_in_dual_write_both_are_awaited_compared_and_legacys_delivered(runner: BatchRunner, tmp_path: Path) -> None:
    batch = runner.batches[0]
    runner.cutover.engine.set(batch.name, "ACME-US", "dual_write", "both export", "ana", force=True)
    runner.cutover.reload()
    export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a", "SKU-2;5;0;a"], DUE + timedelta(minutes=1))
    assert runner.pass_once(batch, DUE + timedelta(minutes=5)) == []  # the cloud's is not there yet
    export(tmp_path / "cloud" / "stock-1.csv", ["SKU-1;10;2;b", "SKU-2;5;3;b"], DUE + timedelta(minutes=9))
    calls = runner.pass_once(batch, DUE + timedelta(minutes=10))
    assert sorted(side.value for _, side, failed in calls if not failed) == ["cloud", "legacy"]
    [run] = runner.runs(batch.name)
    assert (run["state"], run["records"], run["mismatches"], run["delivered"]) == (
        "delivered",
        2,
        1,
        "20261207T0200_stock_1.csv",
    )
    evidence = runner.cutover.store.evidence(batch.name, "ACME-US", "ACME-US@1", 0)
    assert (evidence.comparisons, evidence.mismatches) == (2, 1)
    [field] = runner.cutover.store.differences(batch.name, "ACME-US", 0)
    assert field["path"] == "/record/reserved"


def test_a_late_export_is_its_sides_error_and_the_serving_side_still_delivers(
    runner: BatchRunner, tmp_path: Path
) -> None:
    batch = runner.batches[0]
    runner.cutover.engine.set(batch.name, "ACME-US", "dual_write", "both export", "ana", force=True)
    runner.cutover.reload()
    export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a"], DUE + timedelta(minutes=1))
    assert runner.pass_once(batch, DUE + timedelta(minutes=59)) == []
    calls = runner.pass_once(batch, DUE + timedelta(minutes=61))
    assert ("ACME-US@1", Side.cloud, True) in calls
    [run] = runner.runs(batch.name)
    assert run["state"] == "late" and run["reason"] == "cloud's export was not there by the deadline"
    assert run["delivered"] == "20261207T0200_stock_1.csv"


def test_on_cloud_primary_the_clouds_export_is_delivered_and_a_missing_one_fails_the_run(
    runner: BatchRunner, tmp_path: Path
) -> None:
    batch = runner.batches[0]
    runner.cutover.engine.set(batch.name, "ACME-US", "cloud_primary", "the cloud serves", "ana", force=True)
    runner.cutover.reload()
    export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a"], DUE + timedelta(minutes=1))
    runner.pass_once(batch, DUE + timedelta(hours=2))
    [run] = runner.runs(batch.name)
    assert (run["state"], run["delivered"]) == ("failed", None)  # the cloud serves, and sent nothing
    assert not (tmp_path / "wms").exists() or list((tmp_path / "wms").iterdir()) == []
    tomorrow = DUE + timedelta(days=1)
    export(tmp_path / "legacy" / "stock_2.csv", ["SKU-1;10;2;a"], tomorrow + timedelta(minutes=1))
    export(tmp_path / "cloud" / "stock-2.csv", ["SKU-1;10;2;b"], tomorrow + timedelta(minutes=2))
    runner.pass_once(batch, tomorrow + timedelta(minutes=3))
    assert [p.name for p in (tmp_path / "wms").iterdir()] == ["20261208T0200_stock-2.csv"]


def test_two_runners_make_each_run_once(runner: BatchRunner, tmp_path: Path) -> None:
    batch = runner.batches[0]
    other = BatchRunner([batch], runner.cutover)
    export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a"], DUE + timedelta(minutes=1))
    assert runner.pass_once(batch, DUE + timedelta(minutes=5)) and not other.pass_once(
        batch, DUE + timedelta(minutes=5)
    )
    assert len(list((tmp_path / "wms").iterdir())) == 1


def test_a_bad_schedule_is_refused_when_the_routes_load(tmp_path: Path) -> None:
    spec = make_batch(tmp_path).model_dump(by_alias=True)
    with pytest.raises(ValueError, match="not cron syntax"):
        Batch.model_validate(spec | {"schedule": {"cron": "at two", "timezone": "UTC"}})
    with pytest.raises(ValueError, match="no IANA zone"):
        Batch.model_validate(spec | {"schedule": {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}})


def test_the_runs_are_listed_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    batch = make_batch(tmp_path)
    cutover = Cutover(str(tmp_path / "cutover.db"), *ladder([], [], [batch]))
    try:
        export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a"], DUE + timedelta(minutes=1))
        BatchRunner([batch], cutover).pass_once(batch, DUE + timedelta(minutes=5))
    finally:
        cutover.close()
    shown = CliRunner().invoke(app, ["flows", "runs", "--store", str(tmp_path / "cutover.db"), "--json"])
    assert shown.exit_code == 0, shown.output
    [run] = json.loads(shown.output)
    assert (run["batch"], run["state"], run["delivered"]) == (
        "us-nightly-stock",
        "delivered",
        "20261207T0200_stock_1.csv",
    )


def test_a_run_still_waiting_when_the_next_comes_due_is_missed(runner: BatchRunner, tmp_path: Path) -> None:
    batch = runner.batches[0]
    assert runner.pass_once(batch, DUE + timedelta(minutes=5)) == []  # no export yet: waiting
    export(tmp_path / "legacy" / "stock_2.csv", ["SKU-1;10;2;a"], DUE + timedelta(days=1, minutes=1))
    runner.pass_once(batch, DUE + timedelta(days=1, minutes=5))
    states = {run["due"][:10]: (run["state"], run["reason"]) for run in runner.runs(batch.name)}
    assert states["2026-12-07"] == ("missed", "the next run came due before its exports did")
    assert states["2026-12-08"][0] == "delivered"


def test_the_clouds_export_fetched_from_its_endpoint_once_ready(tmp_path: Path, store_location: str) -> None:  # noqa: F811
    """The cloud hands its export out over HTTP: asked for once due, 404 while it is not ready, then
    fetched whole and compared; an export that is no CSV is delivered as ever, and said."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from flows import batches as batches_module

    asked: list[str] = []
    answers = [b"", HEADER.encode() + b"SKU-1;10;2;b\nSKU-2;5;0;b\n"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = answers.pop(0)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    batch = make_batch(tmp_path).model_copy(deep=True)
    assert batch.cloud is not None
    batch.cloud.url = f"http://127.0.0.1:{server.server_port}/exports/stock?asOf={{due}}&entity={{entity}}"
    cutover = Cutover(store_location, *ladder([], [], [batch]))
    try:
        runner = BatchRunner([batch], cutover)
        cutover.engine.set(batch.name, "ACME-US", "dual_write", "the cloud exports over its API", "ana", force=True)
        cutover.reload()
        export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a", "SKU-2;5;0;a"], DUE + timedelta(minutes=1))
        assert runner.pass_once(batch, DUE + timedelta(minutes=5)) == []  # 404: not ready
        runner.fetched.clear()  # the next ask, without waiting half a minute
        runner.pass_once(batch, DUE + timedelta(minutes=6))
        [run] = runner.runs(batch.name)
        assert (run["state"], run["records"], run["mismatches"], run["cloud_file"]) == (
            "delivered",
            2,
            0,
            "us-nightly-stock-cloud-20261207T0200.export",
        )
        assert asked[0] == "/exports/stock?asOf=2026-12-07T02%3A00%3A00-05%3A00&entity=ACME-US"
        assert batches_module.FETCH_SECONDS > 0
    finally:
        server.shutdown()
        server.server_close()
        cutover.close()


def test_an_export_not_in_its_format_is_delivered_and_not_compared(runner: BatchRunner, tmp_path: Path) -> None:
    batch = runner.batches[0]
    runner.cutover.engine.set(batch.name, "ACME-US", "dual_write", "both export", "ana", force=True)
    runner.cutover.reload()
    export(tmp_path / "legacy" / "stock_1.csv", ["SKU-1;10;2;a"], DUE + timedelta(minutes=1))
    cloud = tmp_path / "cloud" / "stock-1.csv"
    cloud.parent.mkdir(parents=True, exist_ok=True)
    cloud.write_text("item,qty\nSKU-1,10\n")  # the cloud's job wrote another layout: no sku column
    os.utime(cloud, ((DUE + timedelta(minutes=2)).timestamp(),) * 2)
    runner.pass_once(batch, DUE + timedelta(minutes=5))
    [run] = runner.runs(batch.name)
    assert run["state"] == "delivered" and run["delivered"] == "20261207T0200_stock_1.csv"
    assert "not compared" in run["reason"]


def test_two_runners_at_once_make_the_run_once_and_count_its_evidence_once(
    tmp_path: Path,
    store_location: str,  # noqa: F811
) -> None:
    """Two gateways' batch runners on one store, at the same moment: one makes the run."""
    import threading

    batch = make_batch(tmp_path)
    cutovers = [Cutover(store_location, *ladder([], [], [batch])) for _ in range(2)]
    try:
        cutovers[0].engine.set(batch.name, "ACME-US", "dual_write", "both export", "ana", force=True)
        for cutover in cutovers:
            cutover.reload()
        export(tmp_path / "legacy" / "stock_1.csv", [f"SKU-{n};10;0;a" for n in range(2000)], DUE)
        export(tmp_path / "cloud" / "stock-1.csv", [f"SKU-{n};10;{n % 2};b" for n in range(2000)], DUE)
        made: list[list[tuple[str, Side, bool]]] = []
        start = threading.Barrier(2)

        def make(cutover: Cutover) -> None:
            start.wait()
            made.append(BatchRunner([batch], cutover).pass_once(batch, DUE + timedelta(minutes=5)))

        threads = [threading.Thread(target=make, args=(cutover,)) for cutover in cutovers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(len(calls) for calls in made) == [0, 2]
        evidence = cutovers[0].store.evidence(batch.name, "ACME-US", "ACME-US@1", 0)
        assert (evidence.comparisons, evidence.mismatches) == (2000, 1000)
        assert len(list((tmp_path / "wms").iterdir())) == 1
    finally:
        for cutover in cutovers:
            cutover.close()
