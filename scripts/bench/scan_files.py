"""Benchmark: `banyan scan files` against `find -printf` on the same tree of a million files.

    python scripts/bench/scan_files.py [--files 1000000] [--rounds 3] [--tree .bench/drops]

Builds (once, then reuses) a tree shaped like a distributor's drop estate: entities → systems →
in/out/error and archive/YYYY-MM folders, files named as ERPs name them. Each round times
`find TREE -type f -printf '%s %T@ %p\\n'` and the real `banyan scan files TREE` (start-up, walk,
sniffing and writing the catalog included), both with a warm page cache, and prints the ratio.
Peak memory is compared with a tree of the same folders and a tenth of the files: it should not
grow with the number of files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
ENTITIES = ("acme_de", "acme_uk", "acme_us")
SYSTEMS = ("erp", "wms", "edi_gw", "crm", "tms", "pim", "fin", "b2b")
MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
NAMES = {
    "erp": "ORD_{date}_{seq:06d}.csv",
    "wms": "IN{seq:07d}.dat",
    "edi_gw": "X12_850_{seq:08d}.edi",
    "crm": "customer_{uuid}.json",
    "tms": "ASN_{date}T{time}.xml",
    "pim": "PRICAT_{date}_{seq:05d}.edi",
    "fin": "INV-{seq:08d}.xml",
    "b2b": "ORDERS_{date}_{seq:06d}.edi",
}
CONTENT = {
    ".csv": b"order;sku;qty\n1;A-1;3\n",
    ".dat": b"ISA*00*          *00*          *ZZ*X              *ZZ*Y              *260101*0200*U*00401*1*0*P*>~"
    b"ST*850*1~",
    ".edi": b"UNH+1+ORDERS:D:96A:UN'UNT+2+1'",
    ".json": b'{"id": 1}',
    ".xml": b'<?xml version="1.0"?><Invoice xmlns="urn:acme"/>',
}
T0 = 1767225600


def _name(system: str, seq: int) -> str:
    moment = time.gmtime(T0 + seq * 300)
    return NAMES[system].format(
        date=time.strftime("%Y%m%d", moment),
        time=time.strftime("%H%M%S", moment),
        seq=seq,
        uuid=f"{seq:08x}-0000-4000-8000-{seq:012x}",
    )


def _build_system(args: tuple[Path, str, str, int]) -> int:
    root, entity, system, per_system = args
    base = root / entity / system
    folders = [base / "in", base / "out", base / "error"] + [base / "archive" / month for month in MONTHS]
    weights = [0.01, 0.01, 0.002] + [(1 - 0.022) / len(MONTHS)] * len(MONTHS)
    made = 0
    for folder, weight in zip(folders, weights, strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(max(1, int(per_system * weight))):
            name = _name(system, made)
            path = folder / name
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, CONTENT[path.suffix])
            os.close(fd)
            stamp = T0 + made * 300
            os.utime(path, (stamp, stamp))
            made += 1
    return made


def build_tree(root: Path, files: int) -> int:
    marker = root / ".banyan-bench"
    if marker.exists() and marker.read_text().split()[0] == str(files):
        return int(marker.read_text().split()[1])
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    jobs = [
        (root, entity, system, files // (len(ENTITIES) * len(SYSTEMS)) + 1) for entity in ENTITIES for system in SYSTEMS
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        made = sum(pool.map(_build_system, jobs))
    marker.write_text(f"{files} {made}")
    print(f"built {made:,} files under {root} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return made


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command, its output thrown away."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(
            f"{command[0]} failed ({process.returncode}): {process.stderr.read().decode() if process.stderr else ''}"
        )
    return elapsed, usage.ru_maxrss


def banyan(tree: Path, out: Path) -> list[str]:
    out.unlink(missing_ok=True)
    return [str(Path(sys.executable).parent / "banyan"), "scan", "files", str(tree), "--out", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description="banyan scan files versus find, side by side")
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=REPO / ".bench" / "drops")
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    if not shutil.which("find"):
        raise SystemExit("find is needed for the comparison")
    made = build_tree(args.tree, args.files)
    out = Path(tempfile.mkdtemp()) / "catalog.json"
    find = ["find", str(args.tree), "-type", "f", "-printf", "%s %T@ %p\n"]
    timed(find)  # warm the page cache for both
    rows = []
    for round_no in range(1, args.rounds + 1):
        find_s, _ = timed(find)
        scan_s, scan_kib = timed(banyan(args.tree, out))
        rows.append((find_s, scan_s, scan_kib))
        report.say(f"round {round_no}: find {find_s:6.2f} s   banyan {scan_s:6.2f} s   ratio {scan_s / find_s:4.2f}×")
    ratio = statistics.median(scan / find for find, scan, _ in rows)

    # Same folders and patterns, a tenth of the files: memory should follow patterns, not files.
    small_tree = args.tree.with_name(args.tree.name + "-tenth")
    small_made = build_tree(small_tree, args.files // 10)
    _, small_kib = timed(banyan(small_tree, out))
    full_kib = max(kib for _, _, kib in rows)
    report.figure("files", made)
    report.figure("banyan_over_find", ratio)
    report.figure("find_median_s", statistics.median(r[0] for r in rows))
    report.figure("banyan_median_s", statistics.median(r[1] for r in rows))
    report.figure("peak_memory_small_mib", small_kib / 1024)
    report.figure("peak_memory_full_mib", full_kib / 1024)
    report.figure("memory_growth", full_kib / small_kib)
    report.say()
    report.say(f"files:            {made:,} in the tree")
    report.say(
        f"median ratio:     banyan / find = {ratio:.2f}×  (target ≤ 1.5×: {'met' if ratio <= 1.5 else 'MISSED'})"
    )
    report.say(f"find median:      {statistics.median(r[0] for r in rows):.2f} s")
    report.say(f"banyan median:    {statistics.median(r[1] for r in rows):.2f} s  on {os.cpu_count()} cores")
    report.say(
        f"peak memory:      {small_kib / 1024:.0f} MiB for {small_made:,} files, {full_kib / 1024:.0f} MiB for {made:,}"
    )
    report.say(
        f"memory growth:    {full_kib / small_kib:.2f}× for {made / max(small_made, 1):.0f}× the files, same folders"
    )
    report.done()


if __name__ == "__main__":
    main()
