"""Live database scans through the real ODBC drivers: MariaDB, PostgreSQL and SQLite.

Each test loads a public schema with the engine's own client, scans it over ODBC and checks the
ground truth of shared/corpora/README.md; the live scan must agree with the offline scan of the
same file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, Kind
from inventory_scan.db.scan import DbScan, DbSource
from tests.conftest import missing_service

pytestmark = pytest.mark.integration
DATABASE = "banyan_test_sakila"
MARIADB = f"DRIVER={{MariaDB Unicode}};SERVER=127.0.0.1;PORT=3306;DATABASE={DATABASE};UID=root;PWD="
POSTGRES = f"DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT=5432;DATABASE={DATABASE};UID=postgres"


def _client(*command: str, stdin: str | None = None) -> None:
    if shutil.which(command[0]) is None:
        missing_service(f"the {command[0]} client is not installed")
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        missing_service(f"{command[0]} could not load the schema (is the server running?): {done.stderr.strip()[:300]}")


def _odbc_driver(name: str) -> None:
    drivers = subprocess.run(["odbcinst", "-q", "-d"], capture_output=True, text=True, check=False).stdout
    if f"[{name}]" not in drivers:
        missing_service(f"the ODBC driver {name!r} is not installed (make test installs it)")


@pytest.fixture(scope="module")
def mariadb(corpora: Path) -> Iterator[str]:
    _odbc_driver("MariaDB Unicode")
    script = (corpora / "sql" / "sakila-mysql-schema.sql").read_text()
    _client("mariadb", "-h", "127.0.0.1", "-u", "root", stdin=re.sub(r"\bsakila\b", DATABASE, script))
    yield MARIADB
    _client("mariadb", "-h", "127.0.0.1", "-u", "root", "-e", f"DROP DATABASE IF EXISTS {DATABASE}")


@pytest.fixture(scope="module")
def postgres(corpora: Path) -> Iterator[str]:
    _odbc_driver("PostgreSQL Unicode")
    _psql("postgres", "-c", f"DROP DATABASE IF EXISTS {DATABASE}")
    _psql("postgres", "-c", f"CREATE DATABASE {DATABASE}")
    _psql(DATABASE, "-f", str(corpora / "sql" / "sakila-postgres-schema.sql"))
    yield POSTGRES
    _psql("postgres", "-c", f"DROP DATABASE IF EXISTS {DATABASE}")


def _psql(database: str, *args: str) -> None:
    _client("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-q", *args)


@pytest.fixture(scope="module")
def sqlite(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    _odbc_driver("SQLite3")
    database = tmp_path_factory.mktemp("sqlite") / "sakila.db"
    _client("sqlite3", str(database), stdin=(corpora / "sql" / "sakila-sqlite-schema.sql").read_text())
    return f"DRIVER={{SQLite3}};DATABASE={database}"


def live(connection: str) -> Catalog:
    catalog, errors = DbScan().run([DbSource(connection=connection)])
    assert errors == []
    return catalog


def offline(path: Path, dialect: str) -> Catalog:
    catalog, errors = DbScan().run([DbSource(ddl=path, dialect=dialect)])
    assert errors == []
    return catalog


def short(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]


def facts(catalog: Catalog) -> set[tuple[object, ...]]:
    """What a trigger is and does, without the schema prefixes only a live scan knows."""
    return {
        (
            short(i.name),
            short(i.attributes["table"]),
            i.attributes["timing"],
            tuple(i.attributes["events"]),
            i.attributes["level"],
            i.attributes["enabled"],
            tuple(sorted(short(t) for t in i.writes)),
            tuple(sorted(short(t) for t in i.reads)),
            tuple(i.side_effects),
        )
        for i in catalog.interfaces
        if i.kind is Kind.db_trigger
    }


def test_mariadb(mariadb: str, corpora: Path) -> None:
    catalog = live(mariadb)
    found = facts(catalog)
    assert {(f[0], f[1], f[2], f[3], f[6]) for f in found} == {
        ("ins_film", "film", "AFTER", ("INSERT",), ("film_text",)),
        ("upd_film", "film", "AFTER", ("UPDATE",), ("film_text",)),
        ("del_film", "film", "AFTER", ("DELETE",), ("film_text",)),
    }
    assert found == facts(offline(corpora / "sql" / "sakila-mysql-schema.sql", "mysql"))
    routines = {short(i.name) for i in catalog.interfaces if i.kind is Kind.db_procedure}
    assert routines == {
        "rewards_report",
        "get_customer_balance",
        "film_in_stock",
        "film_not_in_stock",
        "inventory_held_by_customer",
        "inventory_in_stock",
    }
    trigger = next(i for i in catalog.interfaces if i.name.endswith("ins_film"))
    assert trigger.locator == f"odbc+mysql://127.0.0.1/{DATABASE}/{DATABASE}.film#ins_film"
    assert catalog.sources[0].locator == f"odbc+mysql://127.0.0.1/{DATABASE}"


def test_postgres_follows_the_trigger_function(postgres: str, corpora: Path) -> None:
    catalog = live(postgres)
    found = facts(catalog)
    assert len(found) == 15
    assert found == facts(offline(corpora / "sql" / "sakila-postgres-schema.sql", "postgres"))
    fulltext = next(i for i in catalog.interfaces if i.name == "public.film_fulltext_trigger")
    assert (fulltext.attributes["timing"], fulltext.attributes["events"], fulltext.attributes["executes"]) == (
        "BEFORE",
        ["INSERT", "UPDATE"],
        "tsvector_update_trigger",
    )
    function = next(i for i in catalog.interfaces if i.kind is Kind.db_procedure and i.name == "public.last_updated")
    runs = [e for e in catalog.edges if e.target == function.id and e.relation == "executes"]
    assert len(runs) == 14


def test_postgres_disabled_trigger_is_recorded(postgres: str) -> None:
    _psql(DATABASE, "-c", "ALTER TABLE staff DISABLE TRIGGER last_updated")
    catalog = live(postgres)
    staff = next(i for i in catalog.interfaces if i.kind is Kind.db_trigger and i.attributes["table"] == "public.staff")
    assert staff.attributes["enabled"] is False
    _psql(DATABASE, "-c", "ALTER TABLE staff ENABLE TRIGGER last_updated")


def test_sqlite(sqlite: str, corpora: Path) -> None:
    catalog = live(sqlite)
    found = facts(catalog)
    assert len(found) == 30
    assert found == facts(offline(corpora / "sql" / "sakila-sqlite-schema.sql", "sqlite"))


def test_wrong_password_never_shows_it(mariadb: str) -> None:
    connection = mariadb.replace("UID=root;PWD=", "UID=banyan_nobody;PWD=Tr0ub4dor&3")
    catalog, errors = DbScan().run([DbSource(connection=connection)])
    assert len(errors) == 1 and "login refused" in errors[0]
    assert "Tr0ub4dor&3" not in errors[0] and "Tr0ub4dor&3" not in catalog.model_dump_json()


def test_unreachable_server(mariadb: str) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, errors = DbScan().run([DbSource(connection=mariadb.replace("PORT=3306", f"PORT={port}"))])
    assert len(errors) == 1 and "cannot connect" in errors[0]


@pytest.mark.parametrize(
    ("driver", "message"),
    [("FreeTDS", "apt-get install tdsodbc"), ("No Such Driver 9", "odbcinst -q -d")],
)
def test_missing_driver_says_what_to_install(driver: str, message: str) -> None:
    _, errors = DbScan().run([DbSource(connection=f"DRIVER={{{driver}}};SERVER=127.0.0.1;PWD=s3cret")])
    assert len(errors) == 1 and message in errors[0] and "s3cret" not in errors[0]


def test_one_failing_source_does_not_stop_the_others(mariadb: str, sqlite: str) -> None:
    catalog, errors = DbScan().run(
        [DbSource(connection="DRIVER={No Such Driver 9}"), DbSource(connection=mariadb), DbSource(connection=sqlite)]
    )
    assert len(errors) == 1
    assert sum(source.complete for source in catalog.sources) == 2


def test_scan_db_command_with_connection_env(mariadb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANYAN_TEST_ODBC", mariadb)
    out = tmp_path / "catalog.json"
    result = CliRunner().invoke(app, ["scan", "db", "--connection-env", "BANYAN_TEST_ODBC", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "db_trigger 3" in result.output
    (tmp_path / "scan.yaml").write_text(
        "out: run.json\ndb:\n  - connection_env: BANYAN_TEST_ODBC\n    system: erp_uk\n"
    )
    result = CliRunner().invoke(app, ["scan", "run", str(tmp_path / "scan.yaml")])
    assert result.exit_code == 0, result.output
    assert {i.system for i in Catalog.load(tmp_path / "run.json").interfaces} == {"erp_uk"}


def test_two_engines_with_one_host_and_database_name_stay_two_sources(mariadb: str, postgres: str) -> None:
    catalog, errors = DbScan().run([DbSource(connection=mariadb), DbSource(connection=postgres)])
    assert errors == []
    assert [s.locator for s in catalog.sources] == [
        f"odbc+mysql://127.0.0.1/{DATABASE}",
        f"odbc+postgres://127.0.0.1/{DATABASE}",
    ]
    triggers = [i for i in catalog.interfaces if i.kind is Kind.db_trigger]
    assert len(triggers) == 3 + 15
