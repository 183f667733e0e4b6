"""Both sides tables in one kind of database, on real PostgreSQL and MariaDB through their ODBC
drivers: the databases group and hash the rows, and a run finds exactly what reading both sides in
full finds, duplicates, keys without a value, keys with spaces and equal numbers written apart
included, while reading only the groups that differ."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutover.store import open_store
from reconcile import pushdown
from reconcile.run import Reconciler, Tally
from reconcile.store import Runs
from specs.reconciliations import Reconciliation
from tests.conftest import missing_service

SERVERS = {
    "PostgreSQL": ("PostgreSQL Unicode", "SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres", "double precision"),
    "MariaDB": ("MariaDB Unicode", "SERVER=127.0.0.1;PORT=3306;UID=root;PWD=", "DOUBLE"),
}
ROWS = 4000


def _connected(server: str) -> Any:
    import pyodbc

    driver, where, _ = SERVERS[server]
    if driver not in pyodbc.drivers():
        missing_service(f"the ODBC driver {driver!r} is not installed (make test installs it)")
    try:
        connection = pyodbc.connect(f"DRIVER={{{driver}}};{where}", autocommit=True, timeout=10)
    except pyodbc.Error as exc:
        missing_service(f"{server} is not reachable at 127.0.0.1: {exc}")
    if server == "MariaDB":
        connection.execute("CREATE DATABASE IF NOT EXISTS banyan_test_pushdown")
        connection.execute("USE banyan_test_pushdown")
    return connection


def _rows(side: str) -> list[tuple[Any, ...]]:
    """The legacy ERP's orders, and the cloud's with drift planted: totals changed, orders on one side
    only, a total written 15.0 where legacy wrote 15.00 (equal), a key with spaces (the same order, its
    orderId differing),
    a duplicate on both sides, keys null and empty, and a null customer on both."""
    rows: list[tuple[Any, ...]] = []
    for n in range(1, ROWS + 1):
        key, total = f"SO-{n:06d}", f"{10 + (n % 97) * 1.25:.2f}"
        if side == "cloud":
            if n % 1000 == 17:
                total = f"{float(total) + 5:.2f}"
            if n % 1000 == 523:
                continue
            if n == 40:
                total = "15.0"
            if n == 41:
                key = f" {key} "
        elif n == 40:
            total = "15.00"
        rows.append((key, None if n == 42 else f"CUST-{n % 79}", total, n / 8))
    rows += [
        ("SO-000100", "CUST-21", f"{10 + (100 % 97) * 1.25:.2f}", 12.5),
        (None, "CUST-0", "1.00", 0.0),
        ("", "CUST-0", "2.00", 0.0),
    ]
    if side == "cloud":
        rows.append(("SO-EXTRA-1", "CUST-0", "1.00", 0.0))
    return rows


@pytest.fixture(params=sorted(SERVERS))
def tables(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    server = request.param
    connection = _connected(server)
    double = SERVERS[server][2]
    for side in ("legacy", "cloud"):
        connection.execute(f"DROP TABLE IF EXISTS recon_push_{side}")
        connection.execute(
            f"CREATE TABLE recon_push_{side} (id VARCHAR(20), customer VARCHAR(20), total NUMERIC(12, 3), "
            f"weight {double})"
        )
        cursor = connection.cursor()
        cursor.fast_executemany = server == "PostgreSQL"
        cursor.executemany(f"INSERT INTO recon_push_{side} VALUES (?, ?, ?, ?)", _rows(side))
    driver, where, _ = SERVERS[server]
    if server == "MariaDB":
        where += ";DATABASE=banyan_test_pushdown"
    yield server, f"DRIVER={{{driver}}};{where}"
    for side in ("legacy", "cloud"):
        connection.execute(f"DROP TABLE IF EXISTS recon_push_{side}")
    if server == "MariaDB":
        connection.execute("DROP DATABASE IF EXISTS banyan_test_pushdown")
    connection.close()


def _spec(weight: bool, query: str = "SELECT id, customer, total{weight} FROM recon_push_{side}") -> Reconciliation:
    columns = {
        "/orderId": "/id",
        "/customer": "/customer",
        "/total": "/total",
        **({"/weight": "/weight"} if weight else {}),
    }
    return Reconciliation.model_validate(
        {
            "name": "orders",
            "entity": "order",
            "key": ["orderId"],
            **{
                side: {
                    "odbc": {
                        "connection_env": f"PUSH_{side.upper()}",
                        "query": query.format(side=side, weight=", weight" if weight else ""),
                    },
                    "map": {"map": columns},
                }
                for side in ("legacy", "cloud")
            },
        }
    )


def _found(spec: Reconciliation, tmp_path: Path, name: str) -> tuple[Tally, list[tuple[str, str]]]:
    store = open_store(str(tmp_path / f"{name}.db"))
    try:
        run_id, tally = Reconciler(spec, store, tmp_path).run("ACME-US")
        return tally, sorted((kind, key) for kind, key, _ in Runs(store).found(run_id))
    finally:
        store.close()


def _counts(tally: Tally) -> dict[str, Any]:
    return {name: value for name, value in tally.as_dict().items() if name != "settled"}


@pytest.mark.parametrize("weight", [False, True], ids=["numbers", "with a double"])
def test_the_databases_settle_what_is_alike_and_a_run_finds_what_reading_everything_finds(
    tables: tuple[str, str], weight: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, dsn = tables
    monkeypatch.setenv("PUSH_LEGACY", dsn)
    monkeypatch.setenv("PUSH_CLOUD", dsn)
    spec = _spec(weight)
    pushed, pushed_found = _found(spec, tmp_path, "pushed")
    with monkeypatch.context() as patch:
        patch.setattr(pushdown.Pushdown, "of", classmethod(lambda cls, spec: None))
        whole, whole_found = _found(spec, tmp_path, "whole")
    assert _counts(pushed) == _counts(whole)
    assert pushed_found == whole_found
    assert sorted(key for _, key in pushed_found) == [
        "SO-000017",
        "SO-000041",
        "SO-000523",
        "SO-001017",
        "SO-001523",
        "SO-002017",
        "SO-002523",
        "SO-003017",
        "SO-003523",
        "SO-EXTRA-1",
    ]
    assert whole.matched == ROWS - 9 and whole.duplicates == {"legacy": 1, "cloud": 1}
    assert whole.no_key == {"legacy": 2, "cloud": 2} and whole.settled == 0
    if weight and server == "MariaDB":  # a double written in 15 digits: both sides read in full
        assert pushed.settled == 0
    else:
        assert ROWS * 0.8 < pushed.settled < whole.matched  # most groups alike; the odd ones read


def test_a_query_the_database_cannot_group_is_read_in_full_with_a_warning(
    tables: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query naming a column twice reads well on its own, but its columns cannot be told apart
    inside the grouped query (PostgreSQL refuses; MariaDB refuses the subquery)."""
    _, dsn = tables
    monkeypatch.setenv("PUSH_LEGACY", dsn)
    monkeypatch.setenv("PUSH_CLOUD", dsn)
    spec = _spec(False, "SELECT id, customer, total, total FROM recon_push_{side} -- twice{weight}")
    tally, found = _found(spec, tmp_path, "refused")
    assert tally.settled == 0 and len(found) == 10
    assert any("could not group and hash the query, so both sides were read in full" in w for w in tally.warnings)
    assert "PWD" not in " ".join(tally.warnings)


def test_a_grouping_that_breaks_reads_both_sides_in_full_and_finishes_the_run(
    tables: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever stops the grouping (here a driver that hands back what nobody expected) is a
    warning; the run reads both sides and finishes with what reading them finds."""
    _, dsn = tables
    monkeypatch.setenv("PUSH_LEGACY", dsn)
    monkeypatch.setenv("PUSH_CLOUD", dsn)
    grouped = pushdown.Pushdown._groups

    def breaking(self: pushdown.Pushdown, side: str, entity: str, since: str | None) -> Any:
        if side == "cloud":
            raise RuntimeError("an unexpected group name")
        return grouped(self, side, entity, since)

    monkeypatch.setattr(pushdown.Pushdown, "_groups", breaking)
    tally, found = _found(_spec(False), tmp_path, "broken")
    assert tally.settled == 0 and len(found) == 10
    assert any("groups could not be read, so both sides were read in full: RuntimeError" in w for w in tally.warnings)
