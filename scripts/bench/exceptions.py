"""Benchmark: the exception inbox empty and with 100,000 open exceptions, side by side in one run.

    python scripts/bench/exceptions.py [--exceptions 100000] [--postgres URL] [--json]

- the store: a SQLite file (or `--postgres URL`, a database the bench empties first), with ten routes
  owned by ten teams, served by `banyan serve` (a process of its own, its inbox synced every 15 s);
- the console's first page (GET /admin/exceptions: the oldest 25 and the counts per owner and
  entity) and one owner's first page, each the median of 20 requests, empty and full: full ÷ empty
  (goal ≤ 10);
- `banyan exceptions list --owner team-3 --json`, a process of its own each time, empty and full
  (the median of 3; goal ≤ 10);
- what filling costs: the 100,000 dead outbox messages the sync finds (opened in one sync), a sync
  that finds nothing new, and the peak memory of the process that did both and of the gateway.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cutover.store import Store, now_iso, open_store  # noqa: E402
from inbox.collect import collect  # noqa: E402
from specs.files import RouteFile, load_folder  # noqa: E402

TEAMS, ENTITIES = 10, ("ACME-DE", "ACME-UK", "ACME-US")
ADMIN = {"X-Admin-Key": "bench-admin-key", "X-Actor": "bench"}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def routes(folder: Path) -> RouteFile:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "routes": [
            {
                "name": f"route-{n}",
                "writes": True,
                "owner": {"team": f"team-{n}"},
                "tier": 2,
                "operation": {"method": "POST", "path": f"/v1/{{entity}}/r{n}"},
                "entity": {"from": "path", "name": "entity"},
                "legacy": {"backend": {"backend": "http", "url": "http://127.0.0.1:9/x"}},
            }
            for n in range(TEAMS)
        ]
    }
    (folder / "routes.yaml").write_text(json.dumps(spec))
    return load_folder(folder)


def dead_messages(store: Store, count: int) -> None:
    """`count` outbox messages a side refused, spread over the routes, entities and a day."""
    now = time.time()
    with store.transaction() as cursor:
        for n in range(count):
            store.execute(
                cursor,
                "INSERT INTO cutover_outbox (created, at, route, entity, business_key, side, rung, call, "
                "idempotency_key, state, attempts, last_error, updated_at) VALUES (?, ?, ?, ?, ?, 'cloud', "
                "'dual_write', '{}', ?, 'dead', 1, ?, ?)",
                (
                    now - 86400 + n * 86400 / count,
                    now_iso(),
                    f"route-{n % TEAMS}",
                    ENTITIES[n % 3],
                    f"SO-{n:07d}",
                    f"k-{n}",
                    f"422 unknown customer C-{n % 977}",
                    now_iso(),
                ),
            )


def median(action: Callable[[], object], times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


def reads(base: str) -> tuple[float, float]:
    """The console's first page and one owner's, through the admin API, as the console asks."""
    import urllib.request

    def get(query: str) -> None:
        request = urllib.request.Request(f"{base}/admin/exceptions{query}", headers=ADMIN)
        with urllib.request.urlopen(request, timeout=30) as answer:
            json.loads(answer.read())

    return median(lambda: get(""), 20), median(lambda: get("?owner=team-3"), 20)


def serve(location: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--routes",
            str(folder),
            "--store",
            location,
            "--admin-key",
            ADMIN["X-Admin-Key"],
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return gateway
        except OSError:
            time.sleep(0.1)
    gateway.kill()
    raise SystemExit("the gateway did not start")


def settled(base: str, store: Store) -> int:
    """Wait until the gateway's sync has counted every open exception, then return how many."""
    import urllib.request

    with store.reading() as cursor:
        total = int(store.execute(cursor, "SELECT COUNT(*) FROM exceptions WHERE resolved IS NULL").fetchone()[0])
    for _ in range(600):  # /metrics shows what the gateway's last sync counted
        with urllib.request.urlopen(f"{base}/metrics", timeout=60) as answer:
            lines = answer.read().decode().splitlines()
        if sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("banyan_exceptions_open{")) == total:
            return total
        time.sleep(0.5)
    raise SystemExit("the gateway's inbox never counted them all")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def command(location: str, folder: Path) -> float:
    argv = [
        sys.executable,
        "-m",
        "cli.main",
        "exceptions",
        "list",
        "--owner",
        "team-3",
        "--no-sync",
        "--json",
        "--store",
        location,
        "--routes",
        str(folder),
    ]

    def run() -> None:
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True)

    return median(run, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exceptions", type=int, default=100_000)
    parser.add_argument("--postgres", help="a PostgreSQL database to use (its tables are dropped first)")
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    with tempfile.TemporaryDirectory(prefix="banyan-bench-inbox-") as scratch:
        where = Path(scratch) / "routes"
        folder = routes(where)
        location = args.postgres or str(Path(scratch) / "cutover.db")
        if args.postgres:
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as connection:
                connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        store = open_store(location)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gateway = serve(location, where, port)
        try:
            collect(store, folder)
            empty_first, empty_owner = reads(base)
            empty_cli = command(location, where)
            dead_messages(store, args.exceptions)
            start = time.perf_counter()
            opened = len(collect(store, folder).opened)
            filling = time.perf_counter() - start
            start = time.perf_counter()
            collect(store, folder)
            again = time.perf_counter() - start
            total = settled(base, store)  # the gateway's inbox has synced and counted them since
            full_first, full_owner = reads(base)
            full_cli = command(location, where)
            gateway_mb = rss_mb(gateway.pid)
        finally:
            gateway.terminate()
            gateway.wait()
            store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine = "PostgreSQL" if args.postgres else "SQLite"
    report.say(
        f"exception inbox on {engine}: empty, and with {total:,} open exceptions ({TEAMS} owners), read "
        "between two of the gateway's syncs"
    )
    for label, empty, full, name in (
        ("console's first page + counts", empty_first, full_first, "first_page"),
        ("one owner's first page", empty_owner, full_owner, "owner_page"),
        ("banyan exceptions list --owner", empty_cli, full_cli, "cli"),
    ):
        ratio = full / empty
        report.say(f"  {label:<32} {empty * 1000:8.1f} ms → {full * 1000:8.1f} ms   ratio {ratio:5.2f} (goal ≤ 10)")
        report.figure(f"{name}_ratio", ratio)
        report.figure(f"{name}_full_ms", full * 1000)
    report.say(
        f"  opening {opened:,} in one sync           {filling:8.1f} s;  a sync that finds nothing new {again:.2f} s"
    )
    report.say(f"  peak memory: the syncing process {peak:.0f} MB, the gateway {gateway_mb:.0f} MB")
    report.figure("sync_open_seconds", filling)
    report.figure("sync_again_seconds", again)
    report.figure("peak_mb", peak)
    report.figure("gateway_peak_mb", gateway_mb)
    report.done()


if __name__ == "__main__":
    main()
