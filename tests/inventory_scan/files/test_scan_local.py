"""Scanning real folder trees: stats, formats, entities, edges, and bad input that must not stop a scan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory_scan import Catalog, EntityRule, FileScan, FileSource, Kind
from inventory_scan.files.folders import MAX_PATTERNS_PER_FOLDER, FolderResult
from inventory_scan.files.scan import Progress

X12 = (
    "ISA*00*          *00*          *ZZ*RETAILCO       *ZZ*ACMEDE         *260101*0215*U*00401*000000001*0*P*>~"
    "GS*PO*RETAILCO*ACMEDE*20260101*0215*1*X*004010~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~"
)
T0 = 1767225600  # 2026-01-01 00:00 UTC


def put(path: Path, content: str | bytes, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    root = tmp_path / "estate"
    for n in range(40):
        folder = "in" if n >= 37 else "archive"
        put(root / "acme_de" / "edi" / folder / f"IN{n:05d}.dat", X12, T0 + n * 900)
    for day in range(10):
        put(
            root / "acme_us" / "export" / f"STOCK_202601{day + 1:02d}.csv",
            "sku;qty\nA;1\nB;2\n",
            T0 + day * 86400 + 5 * 3600,
        )
    return root


def scan(*roots: Path, **options: object) -> Catalog:
    catalog, errors = FileScan(**options).run([FileSource(path=root) for root in roots])  # type: ignore[arg-type]
    assert errors == []
    return catalog


def by_name(catalog: Catalog) -> dict[str, object]:
    return {i.name: i for i in catalog.interfaces}


def test_drops_with_stats_formats_cadence_and_lifecycle(estate: Path) -> None:
    catalog = scan(estate, timezone="UTC", rules=[EntityRule(entity="ACME-DE", path="*/acme_de/*")])
    drops = {i.name: i for i in catalog.interfaces}
    orders = drops["IN{seq}.dat"]
    assert orders.kind is Kind.file_drop
    assert orders.entity == "ACME-DE"
    assert orders.locator == f"file://{estate}/acme_de/edi/in/IN{{seq}}.dat"
    assert orders.formats == ["x12:850"]
    assert (orders.activity.count, orders.activity.bytes) == (40, 40 * len(X12))
    assert orders.activity.first_seen is not None and orders.activity.first_seen.timestamp() == T0
    assert orders.activity.cadence is not None and orders.activity.cadence.label == "every ~15 min"
    assert orders.attributes["waiting"] == 3
    assert orders.attributes["stages"]["archive"]["files"] == 37
    assert orders.attributes["format_details"][0]["senders"] == ["RETAILCO"]
    [edge] = [e for e in catalog.edges if e.source == orders.id]
    assert (edge.target, edge.relation) == (f"file://{estate}/acme_de/edi/archive", "lifecycle:archive")

    stock = drops["STOCK_{date}.csv"]
    assert stock.entity is None
    assert stock.formats == ["csv"]
    assert stock.activity.cadence is not None and stock.activity.cadence.label == "daily ~05:00"
    assert catalog.sources[0].stats == {"folders": 7, "files": 50, "drops": 2}


def test_entities_from_sender_ids(estate: Path) -> None:
    catalog = scan(estate, rules=[EntityRule(entity="RETAIL-PARTNER", sender=["RETAILCO"])])
    assert by_name(catalog)["IN{seq}.dat"].entity == "RETAIL-PARTNER"  # type: ignore[attr-defined]


def test_parallel_and_serial_walks_agree(estate: Path) -> None:
    for n in range(30):  # enough folders for several tasks
        put(estate / "bulk" / f"f{n}" / "out" / f"X_{n}_{n:04d}.json", '{"a": 1}', T0 + n)
    serial, parallel = scan(estate, jobs=1), scan(estate, jobs=2)
    strip = lambda c: sorted((i.id, i.activity.count, i.activity.bytes, tuple(i.formats)) for i in c.interfaces)  # noqa: E731
    assert strip(serial) == strip(parallel)


def test_patterns_per_folder_are_bounded(tmp_path: Path) -> None:
    for n in range(MAX_PATTERNS_PER_FOLDER + 50):
        put(tmp_path / "in" / f"customer_{chr(97 + n % 26)}{chr(97 + n // 26)}.csv", "a,b,c\n", T0 + n)
    catalog = scan(tmp_path)
    assert len(catalog.interfaces) == MAX_PATTERNS_PER_FOLDER + 1
    assert by_name(catalog)["{name}.csv"].activity.count == 50  # type: ignore[attr-defined]


def test_bad_input_becomes_warnings(tmp_path: Path) -> None:
    root = tmp_path / "drops"
    put(root / "in" / "JUNK_0001.bin", os.urandom(4096), T0)
    put(root / "in" / "EMPTY_0001.csv", b"", T0)
    put(root / "in" / "EMPTY_0002.csv", b"", T0 + 60)
    os.mkfifo(root / "in" / "pipe")
    (root / "in" / "loop").symlink_to(root)
    (root / "in" / "dangling").symlink_to(root / "nowhere")
    bad_name = os.path.join(os.fsencode(root / "in"), b"ORD_\xff\xfe_0001.csv")
    fd = os.open(bad_name, os.O_CREAT | os.O_WRONLY)
    os.write(fd, b"a,b,c\n1,2,3\n")
    os.close(fd)

    catalog = scan(root)
    warnings = {(Path(w.path).name, w.message) for w in catalog.sources[0].warnings}
    assert ("pipe", "not a regular file (device, fifo or socket): skipped") in warnings
    assert ("loop", "symbolic link to a folder not followed (pass --follow-symlinks)") in warnings
    assert any(name == "dangling" and "broken symbolic link" in msg for name, msg in warnings)
    assert ("EMPTY_{seq}.csv", "2 zero-byte files") in warnings
    assert ("ORD_\\xff\\xfe_0001.csv", "file name is not valid UTF-8") in warnings
    drops = by_name(catalog)
    assert drops["JUNK_{seq}.bin"].formats == ["unknown"]  # type: ignore[attr-defined]
    assert drops["EMPTY_{seq}.csv"].formats == []  # type: ignore[attr-defined]
    json.loads(catalog.model_dump_json())  # names that are not UTF-8 still make valid JSON
    assert catalog.sources[0].complete


def test_symlink_loops_are_detected_when_following(tmp_path: Path) -> None:
    put(tmp_path / "in" / "A_1.csv", "a,b,c\n", T0)
    (tmp_path / "in" / "again").symlink_to(tmp_path)
    catalog, errors = FileScan(jobs=1).run([FileSource(path=tmp_path, follow_symlinks=True)])
    assert errors == []
    assert any("symbolic link loop" in w.message for w in catalog.sources[0].warnings)
    assert by_name(catalog)["A_{seq}.csv"].activity.count == 1  # type: ignore[attr-defined]


def test_following_links_never_climbs_over_the_scan_root(tmp_path: Path) -> None:
    root, mount = tmp_path / "estate", tmp_path / "mount"
    put(root / "in" / "A_1.csv", "a,b,c\n", T0)
    put(mount / "drop" / "B_1.csv", "a,b,c\n", T0)
    (root / "in" / "up").symlink_to("../..")  # climbs over the root: everything would be walked twice
    (root / "in" / "side").symlink_to(root / "in")  # inside the root: walked already
    (root / "share").symlink_to(mount)  # a mount elsewhere: what --follow-symlinks is for
    catalog, errors = FileScan(jobs=1).run([FileSource(path=root, follow_symlinks=True)])
    assert errors == []
    counts = {name: drop.activity.count for name, drop in by_name(catalog).items()}  # type: ignore[attr-defined]
    assert counts == {"A_{seq}.csv": 1, "B_{seq}.csv": 1}
    warnings = [w.message for w in catalog.sources[0].warnings]
    assert any("the scan root or a folder above it" in m for m in warnings)
    assert any("inside the scan root" in m or "loop" in m for m in warnings)


def test_a_sample_vanishing_before_it_is_read(tmp_path: Path) -> None:
    put(tmp_path / "in" / "A_1.csv", "a,b,c\n", T0)

    def delete(result: FolderResult) -> None:
        for stats in result.patterns.values():
            for path in stats.sample_paths():
                os.unlink(path)

    catalog, errors = FileScan(jobs=1, progress=Progress(folder=delete)).run([FileSource(path=tmp_path)])
    assert errors == []
    assert any("cannot read a sample" in w.message for w in catalog.sources[0].warnings)
    assert by_name(catalog)["A_{seq}.csv"].activity.count == 1  # type: ignore[attr-defined]


def test_a_target_that_is_not_a_folder_is_an_incomplete_source(tmp_path: Path) -> None:
    catalog, errors = FileScan().run([FileSource(path=tmp_path / "missing")])
    assert not catalog.complete
    assert errors and "is not a folder" in errors[0]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="banyan-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_permission_denied_folders_are_warnings(shared_tmp: Path) -> None:
    put(shared_tmp / "in" / "A_1.csv", "a,b,c\n", T0)
    put(shared_tmp / "locked" / "in" / "B_1.csv", "a,b,c\n", T0)
    for path in shared_tmp.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    (shared_tmp / "locked").chmod(0o000)
    out = shared_tmp / "catalog.json"
    command = [sys.executable, "-m", "cli.main", "scan", "files", str(shared_tmp), "--out", str(out)]
    if os.geteuid() == 0:  # root reads everything: scan as nobody so the permission is real
        if not shutil.which("setpriv"):
            pytest.skip("setpriv is needed to drop root privileges")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[3], check=False)
    (shared_tmp / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr
    catalog = Catalog.load(out)
    assert {i.name for i in catalog.interfaces} == {"A_{seq}.csv"}
    assert [(w.path, w.message) for w in catalog.sources[0].warnings] == [
        (str(shared_tmp / "locked"), "cannot list folder: Permission denied")
    ]
