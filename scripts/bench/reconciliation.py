"""Benchmark: a reconciliation of RECORDS orders per side, beside only reading both sides, in one run.

    python scripts/bench/reconciliation.py [--records 1000000] [--flat 5000000] [--reladiff] [--json]

- legacy: a PostgreSQL table read over ODBC (the PostgreSQL Unicode driver); cloud: a paged REST API
  (pages of 1,000, served by a process of its own that makes each page from its number, so serving
  costs no memory); 0.1 % of the records drifted (a total changed, an order missing, an extra one);
- the same records only read from both sides (every page, every row, nothing kept): the reconciliation
  ÷ that (goal ≤ 1.5);
- the peak memory of the process that ran the reconciliation, or of the largest of the processes
  that read its sides (goal ≤ 300 MB), and with `--flat N`
  again at N records (goal: flat);
- the keys found against the keys planted (goal: exactly);
- with `--reladiff`: both sides PostgreSQL tables, Banyan against reladiff's diff of the same two tables
  (reladiff installed into the virtualenv if missing; goal ≤ 2). Both databases group and hash their
  rows (reconcile/pushdown.py); the keys found must be exactly the planted ones here too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import Report, add_json_flag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1"]
ODBC = "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres;UseDeclareFetch=1;Fetch=5000"
PAGE = 1000


def drifted(n: int) -> str | None:
    """What is planted at order n: one in a thousand differs, by kind."""
    if n % 1000 == 17:
        return "total"
    if n % 1000 == 523:
        return "missing"  # the cloud never got it
    return None


def order(n: int) -> dict[str, object]:
    total = round(10 + (n % 997) * 1.25, 2)
    if drifted(n) == "total":
        total += 5
    return {"number": f"SO-{n:08d}", "customerId": f"CUST-{n % 7919}", "amount": {"value": total}}


API = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
sys.path.insert(0, sys.argv[2])
from reconcile_bench_orders import order, drifted, PAGE
records = int(sys.argv[1])
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        page = int(query.get("page", ["1"])[0])
        start = (page - 1) * PAGE + 1
        items = [order(n) for n in range(start, min(start + PAGE, records + 1)) if drifted(n) != "missing"]
        if page == (records + PAGE - 1) // PAGE:
            items.append({"number": "SO-EXTRA-1", "customerId": "CUST-0", "amount": {"value": 1.0}})
        data = json.dumps({"orders": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


def psql(sql: str) -> None:
    subprocess.run([*PSQL, "-c", sql], check=True, capture_output=True)


def load_tables(records: int) -> None:
    """legacy: every order; cloud_copy (for reladiff): the cloud's records as a table."""
    psql(
        "DROP TABLE IF EXISTS bench_legacy_orders; CREATE TABLE bench_legacy_orders (id text PRIMARY KEY, "
        "customer text, total numeric(12,2)); "
        f"INSERT INTO bench_legacy_orders SELECT 'SO-' || lpad(n::text, 8, '0'), 'CUST-' || (n % 7919), "
        f"round(10 + (n % 997) * 1.25, 2) FROM generate_series(1, {records}) n"
    )
    psql(
        "DROP TABLE IF EXISTS bench_cloud_orders; CREATE TABLE bench_cloud_orders AS SELECT id, customer, "
        "CASE WHEN substr(id, 4)::int % 1000 = 17 THEN total + 5 ELSE total END AS total "
        "FROM bench_legacy_orders WHERE substr(id, 4)::int % 1000 <> 523; "
        "INSERT INTO bench_cloud_orders VALUES ('SO-EXTRA-1', 'CUST-0', 1.00); "
        "ALTER TABLE bench_cloud_orders ADD PRIMARY KEY (id)"
    )


def spec(url: str, cloud_table: bool = False) -> dict[str, object]:
    legacy = {
        "odbc": {
            "connection_env": "BENCH_PG_ODBC",
            "query": "SELECT id, customer, total FROM bench_legacy_orders",
            "fetch": 5000,
        },
        "map": {"map": {"/orderId": "/id", "/customer": "/customer", "/total": "/total"}},
    }
    cloud: dict[str, object] = {
        "http": {
            "url": f"{url}/orders",
            "items": "/orders",
            "paging": {"style": "page", "param": "page", "size_param": None, "size": PAGE},
        },
        "map": {"map": {"/orderId": "/number", "/customer": "/customerId", "/total": "/amount/value"}},
    }
    if cloud_table:
        cloud = {
            "odbc": {
                "connection_env": "BENCH_PG_ODBC",
                "query": "SELECT id, customer, total FROM bench_cloud_orders",
                "fetch": 5000,
            },
            "map": {"map": {"/orderId": "/id", "/customer": "/customer", "/total": "/total"}},
        }
    return {
        "name": "bench-orders",
        "entity": "order",
        "key": ["orderId"],
        "legacy": legacy,
        "cloud": cloud,
        "compare": {"tolerance": 0.001},
    }


CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from cutover.store import open_store
from reconcile.run import Reconciler
from reconcile.sources import Reader
from specs.reconciliations import Reconciliation
spec = Reconciliation.model_validate(json.loads(sys.argv[3]))
start = time.perf_counter()
if sys.argv[2] == "read":
    read = sum(1 for _ in Reader(spec.legacy, "ACME-US", None)) + sum(1 for _ in Reader(spec.cloud, "ACME-US", None))
    found = {"read": read}
else:
    store = open_store(sys.argv[4])
    run_id, tally = Reconciler(spec, store).run("ACME-US")
    from reconcile.store import Runs
    keys = sorted(key for _, key, _ in Runs(store).found(run_id))
    found = {"counts": tally.as_dict(), "keys": keys}
elapsed = time.perf_counter() - start
found["seconds"] = elapsed
peaks = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
found["peak_mb"] = max(peaks) / 1024
print(json.dumps(found))
"""


def child(mode: str, made: dict[str, object], store: str = "") -> dict[str, object]:
    env = {**os.environ, "BENCH_PG_ODBC": ODBC}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), mode, json.dumps(made), store],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def planted(records: int) -> list[str]:
    keys = [f"SO-{n:08d}" for n in range(1, records + 1) if drifted(n)]
    return sorted([*keys, "SO-EXTRA-1"])


def measure(report: Report, records: int, folder: Path, label: str) -> dict[str, object]:
    load_tables(records)
    helper = folder / "reconcile_bench_orders.py"
    helper.write_text(f"PAGE = {PAGE}\n" + "\n".join(_source(f) for f in (drifted, order)))
    api = subprocess.Popen([sys.executable, "-c", API, str(records), str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert api.stdout is not None
        url = f"http://127.0.0.1:{api.stdout.readline().strip()}"
        made = spec(url)
        reading = child("read", made)
        running = child("run", made, str(folder / f"store-{records}.db"))
    finally:
        api.terminate()
        api.wait()
    ratio = float(running["seconds"]) / float(reading["seconds"])  # type: ignore[arg-type]
    exact = running["keys"] == planted(records)
    report.say(f"{label}: {records:,} orders a side, PostgreSQL over ODBC against a paged REST API, 0.1 % drifted")
    report.say(f"  only reading both sides   {float(reading['seconds']):7.1f} s")  # type: ignore[arg-type]
    report.say(
        f"  reconciling them          {float(running['seconds']):7.1f} s   ratio {ratio:.2f} (goal ≤ 1.5)"  # type: ignore[arg-type]
        f"   peak memory {float(running['peak_mb']):.0f} MB (goal ≤ 300)"
    )  # type: ignore[arg-type]
    report.say(
        f"  keys found: {len(running['keys']):,} (planted {len(planted(records)):,}): "  # type: ignore[arg-type]
        f"{'exactly the planted ones' if exact else 'NOT the planted ones'}"
    )
    report.figure(f"reconcile_ratio_{records}", ratio)
    report.figure(f"reconcile_peak_mb_{records}", float(running["peak_mb"]))  # type: ignore[arg-type]
    report.figure(f"reconcile_exact_{records}", 1.0 if exact else 0.0)
    return running


def _source(function: object) -> str:
    import inspect

    return inspect.getsource(function)  # type: ignore[arg-type]


def against_reladiff(report: Report, records: int, folder: Path) -> None:
    try:
        import reladiff  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "reladiff[postgresql]"], check=True)
    made = spec("http://unused", cloud_table=True)
    ours = child("run", made, str(folder / "store-tables.db"))
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reladiff",
            "postgresql://postgres@127.0.0.1:5432/test",
            "bench_legacy_orders",
            "postgresql://postgres@127.0.0.1:5432/test",
            "bench_cloud_orders",
            "-k",
            "id",
            "-c",
            "customer",
            "-c",
            "total",
            "--stats",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    theirs = time.perf_counter() - start
    ratio = float(ours["seconds"]) / theirs  # type: ignore[arg-type]
    report.say(f"both sides PostgreSQL tables, {records:,} orders a side")
    report.say(f"  reladiff                  {theirs:7.1f} s   (exit {done.returncode})")
    report.say(f"  Banyan                    {float(ours['seconds']):7.1f} s   ratio {ratio:.2f} (goal ≤ 2)")  # type: ignore[arg-type]
    exact = ours["keys"] == planted(records)
    settled = ours["counts"]["settled"]  # type: ignore[index]
    report.say(
        f"  keys found: {len(ours['keys']):,} (planted {len(planted(records)):,}): "  # type: ignore[arg-type]
        f"{'exactly the planted ones' if exact else 'NOT the planted ones'}; {settled:,} matched in the "
        "databases by their hashes, never read"
    )
    report.figure("reladiff_ratio", ratio)
    report.figure("reladiff_exact", 1.0 if exact else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--flat", type=int, default=0, help="measure memory again at this many records")
    parser.add_argument("--reladiff", action="store_true", help="also both sides as tables, against reladiff")
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    with tempfile.TemporaryDirectory(prefix="banyan-bench-reconcile-") as folder:
        measure(report, args.records, Path(folder), "reconcile")
        if args.reladiff:
            against_reladiff(report, args.records, Path(folder))
        if args.flat:
            measure(report, args.flat, Path(folder), "flat")
    psql("DROP TABLE IF EXISTS bench_legacy_orders; DROP TABLE IF EXISTS bench_cloud_orders")
    report.done()


if __name__ == "__main__":
    main()
