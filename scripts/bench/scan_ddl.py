"""Benchmark: `banyan scan db` on a DDL script of 10,000 triggers and procedures against bare sqlglot.

    python scripts/bench/scan_ddl.py [--objects 10000] [--rounds 3]

Generates a T-SQL install script shaped like an ERP's (GO batches; triggers that queue rows,
call procedures, write through linked servers and send mail; procedures with joins, updates and
dynamic SQL), then times in one process, several rounds:

- the whole scan: splitting, headers, body analysis with sqlglot, side effects, complexity, interfaces;
- `sqlglot.parse` of the script's batches (what sqlglot alone does with the file: bodies stay text);
- `sqlglot.parse` of every statement the scan hands to sqlglot (the parse work inside the scan).

It prints both throughputs and the ratios. The target is a scan within 1.5× of the parse work it
needs, i.e. the second ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlglot
from report import Report, add_json_flag

from inventory_scan.db import analysis
from inventory_scan.db.objects import parse_script
from inventory_scan.db.scan import DbScan, DbSource
from inventory_scan.db.split import split

TABLES = ["Orders", "OrderLines", "Customers", "Items", "Stock", "Invoices", "Shipments", "Prices"]


def trigger(n: int, rng: random.Random) -> str:
    table = rng.choice(TABLES)
    queue = f"dbo.{table}_Export_Queue"
    body = [
        f"INSERT INTO {queue} ({table[:-1]}ID, ChangedAt) SELECT i.{table[:-1]}ID, GETDATE() FROM inserted i",
        "UPDATE s SET s.Reserved = s.Reserved + i.Qty FROM dbo.Stock s JOIN inserted i ON i.ItemID = s.ItemID "
        f"WHERE s.Site = {n % 7}",
    ]
    if n % 5 == 0:
        body.append(f"INSERT INTO WMS{n % 3}.Warehouse.dbo.Inbound (ID) SELECT {table[:-1]}ID FROM inserted")
    if n % 7 == 0:
        body.append(
            "EXEC msdb.dbo.sp_send_dbmail @profile_name = 'ERP', @recipients = 'ops@acme.example', @subject = 'changed'"
        )
    if n % 3 == 0:
        body.append(
            "IF EXISTS (SELECT 1 FROM inserted i JOIN dbo.Customers c ON c.CustomerID = i.CustomerID "
            "WHERE c.Blocked = 1)\n"
            "BEGIN\n    RAISERROR ('blocked customer', 16, 1)\n    ROLLBACK TRANSACTION\nEND"
        )
    body.append(f"EXEC dbo.usp_Recalc_{n % 500} @id = 1")
    timing = rng.choice(["AFTER INSERT, UPDATE", "AFTER INSERT", "AFTER DELETE", "INSTEAD OF DELETE"])
    return (
        f"CREATE TRIGGER dbo.trg_{table}_{n} ON dbo.{table}\n{timing}\nAS\nBEGIN\n    SET NOCOUNT ON\n    "
        + "\n    ".join(body)
        + "\nEND\nGO\n"
    )


def procedure(n: int, rng: random.Random) -> str:
    a, b = rng.sample(TABLES, 2)
    body = [
        f"SELECT x.{a[:-1]}ID, y.Amount FROM dbo.{a} x JOIN dbo.{b} y ON y.{a[:-1]}ID = x.{a[:-1]}ID "
        f"WHERE x.Status = 'OPEN' AND y.Amount > {n}",
        f"UPDATE dbo.{a} SET Status = 'DONE', ChangedAt = GETDATE() WHERE {a[:-1]}ID = @id",
        f"DELETE FROM dbo.{b}_Staging WHERE CreatedAt < DATEADD(day, -30, GETDATE())",
    ]
    if n % 4 == 0:
        body.append(
            "DECLARE @sql nvarchar(max) = N'UPDATE dbo.Prices SET Price = Price * 1.02'\n    EXEC sp_executesql @sql"
        )
    return f"CREATE PROCEDURE dbo.usp_Recalc_{n} @id int\nAS\nBEGIN\n    " + "\n    ".join(body) + "\nEND\nGO\n"


def build(objects: int, path: Path) -> None:
    rng = random.Random(7)
    parts = [":setvar Database ERP\nGO\n"]
    for n in range(objects):
        parts.append(trigger(n, rng) if n % 2 == 0 else procedure(n, rng))
    path.write_text("".join(parts), encoding="utf-8")


def parse_work(script: Path) -> list[str]:
    """The statements the scan gives to sqlglot, collected by running its own body splitter."""
    statements = []
    for obj in parse_script(script.read_text(encoding="utf-8"), "tsql"):
        clean = analysis._blank_strings(analysis._COMMENTS.sub(" ", obj.body))
        for piece in analysis._pieces(clean, "tsql"):
            found = analysis._DML.search(piece)
            if found:
                statement = analysis._TRAILING_CONTROL.sub("", piece[found.start() :]).strip()
                if statement:
                    statements.append(statement)
    return statements


def timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def bare_parse(statements: list[str]) -> None:
    for statement in statements:
        with contextlib.suppress(sqlglot.errors.SqlglotError):
            sqlglot.parse(statement, read="tsql")


def main() -> None:
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # both sides hit the same fallbacks: keep them quiet
    parser = argparse.ArgumentParser(description="banyan scan db versus bare sqlglot parsing, side by side")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    script = Path(tempfile.mkdtemp()) / "erp_install.sql"
    build(args.objects, script)
    batches = [s.text for s in split(script.read_text(encoding="utf-8"), "tsql")]
    inner = parse_work(script)
    report.say(
        f"script: {script.stat().st_size / 1e6:.1f} MB, {args.objects:,} objects, {len(batches):,} batches, "
        f"{len(inner):,} statements parsed by the scan"
    )
    rows = []
    for round_no in range(1, args.rounds + 1):
        scan = timed(lambda: DbScan().run([DbSource(ddl=script, dialect="tsql")]))
        file_parse = timed(lambda: bare_parse(batches))
        work_parse = timed(lambda: bare_parse(inner))
        rows.append((scan, file_parse, work_parse))
        report.say(
            f"round {round_no}: scan {scan:6.2f} s   sqlglot on batches {file_parse:6.2f} s   "
            f"sqlglot on the scan's statements {work_parse:6.2f} s"
        )
    scan, file_parse, work_parse = (statistics.median(column) for column in zip(*rows, strict=True))
    report.say()
    rate = args.objects
    verdict = "met" if scan / work_parse <= 1.5 else "MISSED"
    report.figure("scan_objects_per_s", rate / scan)
    report.figure("sqlglot_batches_objects_per_s", rate / file_parse)
    report.figure("sqlglot_statements_objects_per_s", rate / work_parse)
    report.figure("scan_over_sqlglot_batches", scan / file_parse)
    report.figure("scan_over_sqlglot_statements", scan / work_parse)
    report.say(f"banyan scan db:                       {rate / scan:8,.0f} objects/s")
    report.say(
        f"sqlglot.parse of the batches:         {rate / file_parse:8,.0f} objects/s   ratio {scan / file_parse:5.2f}×"
    )
    report.say(
        f"sqlglot.parse of the same statements: {rate / work_parse:8,.0f} objects/s   ratio {scan / work_parse:5.2f}×"
    )
    report.say(f"target: the scan within 1.5× of the parse work it needs — {verdict}")
    report.done()


if __name__ == "__main__":
    main()
