"""Benchmark: partner files through a dual_write flow, beside a bare copier on the same files.

    python scripts/bench/flows.py [--files 1000] [--rate 50] [--seconds 10] [--json]

In one run, on this machine, each figure side by side:

- throughput: FILES small X12 850s (2–10 KB) dropped at once; `banyan serve` (a SQLite store, the
  flow in dual_write) against a bare script that polls the drop just as often and copies each file
  into two folders the same durable way (a temporary name, fsync, rename): files a second, and the
  ratio (goal ≥ 0.5);
- latency: RATE files a second for SECONDS, each timed from its rename into the drop until it is in
  both intakes: p50 and p99 of each, and the ratio of the p99s (goal ≤ 2);
- a 200 MB file through the flow: the peak memory (VmHWM) of the process running it, less what it
  held before (goal < 64 MB);
- SIGKILL mid-stream of FILES files, SQLite and PostgreSQL stores: files lost, delivered twice to
  either side, and named in doubt (goal 0, 0, named).

- a scheduled batch's comparison of two 1,000,000-line CSV exports (1 % of the records differ):
  its time beside reading both files with the csv module and nothing else (goal ≤ 3), and its peak
  memory (the index of one export's keys and digests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from cutover.store import open_store  # noqa: E402
from flows.journey import Journey  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/banyan_bench_flows"
POLL = 0.5  # the flow runner's pass interval; the bare copier polls as often


def order(n: int, lines: int) -> bytes:
    body = "".join(f"PO1**{i % 9 + 1}*CA*23.52**UP*{n:06d}{i:06d}~" for i in range(lines))
    return (
        f"ISA*00*          *00*          *12*1234567890     *08*ACMEUK         *261207*0900*U*00401*"
        f"{n:09d}*0*P*>~GS*PO*1234567890*ACMEUK*20261207*0900*{n}*X*004010~ST*850*0001~"
        f"BEG*00*NE*PO-{n}**20261207~{body}CTT*{lines}~SE*{lines + 3}*0001~GE*1*{n}~IEA*1*{n:09d}~"
    ).encode()


def small(n: int) -> bytes:
    return order(n, 40 + (n * 37) % 200)  # 2–10 KB


def estate(root: Path, store: str) -> tuple[Path, list[str]]:
    for folder in ("drop", "legacy", "cloud", "routes"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "routes" / "flows.yaml").write_text(
        "flows:\n  - name: bench-orders\n"
        f"    source: {{folder: {root / 'drop'}, pattern: '*.x12', settle_seconds: 0}}\n"
        "    entity: {from: partner, partners: {'1234567890': ACME-UK}}\n"
        f"    legacy: {{intake: {root / 'legacy'}}}\n    cloud: {{intake: {root / 'cloud'}}}\n"
        "    cutover: {mode: dual_write}\n"
    )
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--routes",
        str(root / "routes"),
        "--insecure-no-auth",
        "--store",
        store,
        "--port",
        str(port),
        "--no-access-log",
    ]
    return root, [*command]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(command: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL, start_new_session=True)
    port = command[command.index("--port") + 1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def bare_copier(drop: Path, to: list[Path], stop_when: threading.Event) -> None:
    """What a careful script does: poll, copy each file to each folder (temporary name, fsync,
    rename), then move it out of the drop."""
    done = drop / ".done"
    done.mkdir(exist_ok=True)
    while not stop_when.is_set():
        for entry in sorted(os.scandir(drop), key=lambda e: e.name):
            if not entry.name.endswith(".x12") or not entry.is_file():
                continue
            source = drop / entry.name
            for folder in to:
                temporary = folder / f".{entry.name}.tmp"
                with source.open("rb") as reader, temporary.open("wb") as writer:
                    shutil.copyfileobj(reader, writer)
                    writer.flush()
                    os.fsync(writer.fileno())
                os.rename(temporary, folder / entry.name)
            os.rename(source, done / entry.name)
        stop_when.wait(POLL)


def start_bare_copier(root: Path) -> tuple[threading.Event, threading.Thread]:
    """The bare copier polling ROOT/drop into ROOT/legacy and ROOT/cloud, until the event is set."""
    for folder in ("drop", "legacy", "cloud"):
        (root / folder).mkdir(parents=True)
    halt = threading.Event()
    copier = threading.Thread(target=bare_copier, args=(root / "drop", [root / "legacy", root / "cloud"], halt))
    copier.start()
    return halt, copier


def drop_all(drop: Path, files: int, make: object = small) -> None:
    for n in range(files):
        partial = drop / f"po-{n:05d}.x12.part"
        partial.write_bytes(make(n))  # type: ignore[operator]
        partial.rename(drop / f"po-{n:05d}.x12")


def count(folder: Path) -> int:
    return sum(1 for name in os.listdir(folder) if not name.startswith("."))


def wait_for(folders: list[Path], files: int, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while any(count(folder) < files for folder in folders):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {[count(f) for f in folders]} of {files} arrived")
        time.sleep(0.01)


def throughput(report: Report, files: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        # the bare copier
        halt, copier = start_bare_copier(root / "bare")
        started = time.perf_counter()
        drop_all(root / "bare/drop", files)
        wait_for([root / "bare/legacy", root / "bare/cloud"], files)
        bare = files / (time.perf_counter() - started)
        halt.set()
        copier.join()
        # the flow
        flow_root, command = estate(root / "flow", str(root / "flow.db"))
        gateway = serve(command)
        try:
            started = time.perf_counter()
            drop_all(flow_root / "drop", files)
            wait_for([flow_root / "legacy", flow_root / "cloud"], files)
            flow = files / (time.perf_counter() - started)
        finally:
            stop(gateway)
    report.say(f"throughput, {files} files of 2–10 KB into two folders")
    report.say(f"  bare copier        {bare:8.1f} files/s")
    report.say(f"  dual_write flow    {flow:8.1f} files/s   ratio {flow / bare:.2f} (goal ≥ 0.5)")
    report.figure("bare_files_per_s", bare)
    report.figure("flow_files_per_s", flow)
    report.figure("flow_throughput_ratio", flow / bare)


def _paced(drop: Path, folders: list[Path], rate: float, seconds: float) -> list[float]:
    """RATE files a second; each one's time from its rename into the drop to its arrival in every folder."""
    arrived: dict[str, float] = {}
    sent: dict[str, float] = {}
    total = int(rate * seconds)
    halt = threading.Event()

    def watch() -> None:
        seen: dict[str, set[Path]] = {}
        while not halt.is_set() or len(arrived) < total:
            for folder in folders:
                for name in os.listdir(folder):
                    if name.startswith(".") or name in arrived:
                        continue
                    places = seen.setdefault(name, set())
                    places.add(folder)
                    if len(places) == len(folders):
                        arrived[name] = time.perf_counter()
            if halt.is_set() and time.perf_counter() - last[0] > 120:
                break
            time.sleep(0.002)

    last = [time.perf_counter()]
    watcher = threading.Thread(target=watch)
    watcher.start()
    begin = time.perf_counter()
    for n in range(total):
        time.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        name = f"p-{n:05d}.x12"
        partial = drop / f"{name}.part"
        partial.write_bytes(small(50_000 + n))
        partial.rename(drop / name)
        sent[name] = time.perf_counter()
    last[0] = time.perf_counter()
    halt.set()
    watcher.join()
    return sorted(arrived[name] - sent[name] for name in sent if name in arrived)


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def latency(report: Report, rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        halt, copier = start_bare_copier(root / "bare")
        bare = _paced(root / "bare/drop", [root / "bare/legacy", root / "bare/cloud"], rate, seconds)
        halt.set()
        copier.join()
        flow_root, command = estate(root / "flow", str(root / "flow.db"))
        gateway = serve(command)
        try:
            flow = _paced(flow_root / "drop", [flow_root / "legacy", flow_root / "cloud"], rate, seconds)
        finally:
            stop(gateway)
    report.say(f"arrival → both intakes, {rate:g} files/s for {seconds:g} s (both poll every {POLL} s)")
    for name, values in (("bare copier", bare), ("dual_write flow", flow)):
        report.say(
            f"  {name:17}  p50 {statistics.median(values) * 1000:7.0f} ms   "
            f"p99 {_percentile(values, 0.99) * 1000:7.0f} ms   ({len(values)} files)"
        )
    ratio = _percentile(flow, 0.99) / _percentile(bare, 0.99)
    report.say(f"  p99 ratio {ratio:.2f} (goal ≤ 2)")
    report.figure("bare_p99_ms", _percentile(bare, 0.99) * 1000)
    report.figure("flow_p99_ms", _percentile(flow, 0.99) * 1000)
    report.figure("flow_p99_ratio", ratio)


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            found += [int(child) for child in children.read_text().split()]
    return found


def large_file(report: Report) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root, command = estate(Path(scratch) / "flow", str(Path(scratch) / "flow.db"))
        gateway = serve(command)
        try:
            drop_all(root / "drop", 1)  # warm: the first file loads what the runner needs
            wait_for([root / "legacy", root / "cloud"], 1)
            processes = [gateway.pid, *_children(gateway.pid)]
            before = {pid: _peak_kb(pid) for pid in processes}
            lines = 200 * 1024 * 1024 // 34
            partial = root / "drop" / "big.x12.part"
            with partial.open("wb") as out:
                head, _, tail = order(9_999, 1).partition(b"PO1")
                out.write(head)
                row = b"PO1**1*CA*23.52**UP*12345678901234~"
                for _ in range(lines // 10_000):
                    out.write(row * 10_000)
                out.write(b"PO1" + tail)
            size = partial.stat().st_size
            partial.rename(root / "drop" / "big.x12")
            wait_for([root / "legacy", root / "cloud"], 2, 600)
            while any(
                name.startswith(".banyan") for folder in ("legacy", "cloud") for name in os.listdir(root / folder)
            ):
                time.sleep(0.05)
            growth = max(_peak_kb(pid) - before[pid] for pid in processes) / 1024
        finally:
            stop(gateway)
    report.say(f"a {size / 1024 / 1024:.0f} MB file through the flow: peak memory grew {growth:.1f} MB (goal < 64)")
    report.figure("large_file_mb", size / 1024 / 1024)
    report.figure("large_file_rss_growth_mb", growth)


def crash(report: Report, files: int) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS banyan_bench_flows WITH (FORCE)")
        admin.execute("CREATE DATABASE banyan_bench_flows")
    with tempfile.TemporaryDirectory() as scratch:
        for name, store in (("sqlite", str(Path(scratch) / "sqlite.db")), ("postgres", PG)):
            root, command = estate(Path(scratch) / name, store)
            gateway = serve(command)
            drop_all(root / "drop", files, small)
            while count(root / "cloud") < files // 3:
                time.sleep(0.01)
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.wait(10)
            killed_at = count(root / "cloud")
            gateway = serve(command)
            journey = Journey(open_store(store))
            try:
                deadline = time.monotonic() + 120
                while list((root / "drop").glob("*.x12")) or journey.files("bench-orders", state="delivering"):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                rows = journey.files("bench-orders", limit=10 * files)
            finally:
                stop(gateway)
                journey.store.close()
            states = {row.name: row.state for row in rows}
            lost = sum(1 for n in range(files) if states.get(f"po-{n:05d}.x12") not in ("delivered", "in_doubt"))
            twice = sum(1 for side in ("legacy", "cloud") for entry in os.listdir(root / side) if "_1." in entry)
            doubt = sorted(name for name, state in states.items() if state == "in_doubt")
            report.say(
                f"SIGKILL at {killed_at} of {files} files, {name} store: {lost} lost, {twice} delivered twice, "
                f"{len(doubt)} in doubt {doubt}"
            )
            report.figure(f"crash_{name}_lost", lost)
            report.figure(f"crash_{name}_twice", twice)
            report.figure(f"crash_{name}_in_doubt", len(doubt))


_READ = """
import csv, sys, time
start = time.perf_counter()
for name in sys.argv[1:3]:
    with open(name, newline="") as handle:
        for _ in csv.reader(handle, delimiter=";"):
            pass
print(time.perf_counter() - start)
"""
_COMPARE = """
import resource, sys, time
from pathlib import Path
from flows.batches import compare_exports
from specs.flows import Records
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
found = compare_exports(Path(sys.argv[1]), Path(sys.argv[2]), Records(key=["sku"]), ["exported_at"])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, (peak - before) / 1024, found.records, found.mismatches)
"""


def batch_compare(report: Report, lines: int = 1_000_000) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        legacy, cloud = Path(scratch) / "legacy.csv", Path(scratch) / "cloud.csv"
        with legacy.open("w") as one, cloud.open("w") as other:
            one.write("sku;warehouse;on_hand;reserved;exported_at\n")
            other.write("sku;warehouse;on_hand;reserved;exported_at\n")
            for n in range(lines):
                one.write(f"SKU-{n:07d};US-NJ-01;{n % 500};{n % 7};02:01\n")
                other.write(f"SKU-{n:07d};US-NJ-01;{n % 500};{(n % 7) + (n % 100 == 0)};02:09\n")
        size = (legacy.stat().st_size + cloud.stat().st_size) / 1024 / 1024
        environment = {**os.environ, "PYTHONPATH": str(REPO)}
        read = float(
            subprocess.run(
                [sys.executable, "-c", _READ, str(legacy), str(cloud)],
                capture_output=True,
                text=True,
                check=True,
                env=environment,
            ).stdout
        )
        out = subprocess.run(
            [sys.executable, "-c", _COMPARE, str(legacy), str(cloud)],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
            cwd=REPO,
        ).stdout.split()
        compare, memory, records, mismatches = float(out[0]), float(out[1]), int(out[2]), int(out[3])
    report.say(f"a scheduled batch: two {lines:,}-line CSV exports ({size:.0f} MB), {mismatches:,} records differ")
    report.say(f"  reading both with csv   {read:6.1f} s")
    report.say(
        f"  comparing them          {compare:6.1f} s   ratio {compare / read:.2f} (goal ≤ 3)   "
        f"peak memory +{memory:.0f} MB for {records:,} records"
    )
    report.figure("batch_read_s", read)
    report.figure("batch_compare_s", compare)
    report.figure("batch_compare_ratio", compare / read)
    report.figure("batch_compare_memory_mb", memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", default=["throughput", "latency", "large", "crash", "batch"])
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    if "throughput" in args.only:
        throughput(report, args.files)
    if "latency" in args.only:
        latency(report, args.rate, args.seconds)
    if "large" in args.only:
        large_file(report)
    if "crash" in args.only:
        crash(report, args.files)
    if "batch" in args.only:
        batch_compare(report)
    report.done()


if __name__ == "__main__":
    main()
