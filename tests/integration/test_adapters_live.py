"""Legacy adapters against real services: ODBC against PostgreSQL, the file drop over a real sshd."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from legacy_adapters import BackendRejected, BackendTimeout, Call, FileDropConfig, OdbcConfig, create
from tests.conftest import missing_service
from tests.integration.conftest import Sshd

pytestmark = pytest.mark.integration
SCHEMA = "banyan_gateway_test"
CONNECTION = "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres"


def psql(sql: str) -> None:
    if shutil.which("psql") is None:
        missing_service("psql is not installed")
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        missing_service(f"PostgreSQL refused the test schema: {done.stderr.strip()[:200]}")


@pytest.fixture(scope="module")
def orders_procedure() -> Iterator[None]:
    psql(
        f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};"
        f"CREATE TABLE {SCHEMA}.orders (id serial PRIMARY KEY, customer text NOT NULL, qty int NOT NULL CHECK (qty > 0));"
        f"CREATE FUNCTION {SCHEMA}.create_order(p_customer text, p_qty int) RETURNS TABLE (order_id int, customer text) "
        f"LANGUAGE sql AS $$ INSERT INTO {SCHEMA}.orders (customer, qty) VALUES (p_customer, p_qty) RETURNING id, customer $$;"
    )
    yield
    psql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_odbc_procedure_with_bound_parameters(orders_procedure: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANYAN_TEST_ERP_ODBC", CONNECTION)
    config = OdbcConfig(
        connection_env="BANYAN_TEST_ERP_ODBC",
        statement=f"SELECT * FROM {SCHEMA}.create_order(?, ?)",
        params=["/customer", "/qty"],
        result="row",
    )

    async def scenario() -> list[object]:
        backend = create(config)
        try:
            hostile = "x'); DROP TABLE banyan_gateway_test.orders; --"
            first = await backend.call(Call(route="order-create", payload={"customer": "globex", "qty": 2}))
            second = await backend.call(Call(route="order-create", payload={"customer": hostile, "qty": 1}))
            with pytest.raises(BackendRejected, match="SQLSTATE 23514"):
                await backend.call(Call(route="order-create", payload={"customer": "initech", "qty": 0}))
            with pytest.raises(BackendRejected, match="missing parameter"):
                await backend.call(Call(route="order-create", payload={"customer": "initech"}))
            return [first.body, second.body]
        finally:
            await backend.close()

    first, second = run(scenario())  # type: ignore[misc]
    assert first["customer"] == "globex" and isinstance(first["order_id"], int)
    assert second["customer"] == "x'); DROP TABLE banyan_gateway_test.orders; --"  # stored as data, not run
    psql(f"SELECT count(*) FROM {SCHEMA}.orders")  # the table is still there


def test_file_drop_over_sftp(sshd: Sshd, tmp_path: Path) -> None:
    inbound, replies = tmp_path / "in", tmp_path / "ack"
    inbound.mkdir()
    replies.mkdir()
    tmp_path.chmod(0o755)
    config = FileDropConfig(
        folder=sshd.url(inbound),
        name="ORD_{entity}_{correlation_id}.json",
        reply_folder=sshd.url(replies),
        known_hosts=sshd.known_hosts,
        key_file=sshd.user_key,
        timeout=10,
    )

    def importer() -> None:  # the legacy system on the server side
        for _ in range(200):
            for order in inbound.glob("ORD_*.json"):
                correlation = order.stem.rsplit("_", 1)[1]
                (replies / f"{correlation}.ack").write_text('{"orderId": "UK-42"}')
                order.rename(tmp_path / order.name)
                return
            time.sleep(0.05)

    async def scenario() -> object:
        backend = create(config)
        try:
            return await backend.call(
                Call(route="order-create", payload={"sku": "A"}, entity="ACME-UK", correlation_id="abc123")
            )
        finally:
            await backend.close()

    thread = threading.Thread(target=importer)
    thread.start()
    reply = run(scenario())
    thread.join()
    assert reply.body == {"orderId": "UK-42"}  # type: ignore[attr-defined]
    assert (tmp_path / "ORD_ACME-UK_abc123.json").read_text() == '{"sku": "A"}'
    assert not list(replies.iterdir())  # the reply was taken
    assert not list(inbound.glob(".*.part"))  # no temporary file left behind


def test_file_drop_reply_timeout(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "ack").mkdir()
    config = FileDropConfig(folder=str(tmp_path / "in"), reply_folder=str(tmp_path / "ack"), timeout=0.5)

    async def scenario() -> None:
        backend = create(config)
        try:
            await backend.call(Call(route="r", payload={}, correlation_id="nobody-answers"))
        finally:
            await backend.close()

    with pytest.raises(BackendTimeout, match=r"no reply file within 0\.5 s"):
        run(scenario())
    assert [p.name for p in (tmp_path / "in").iterdir()] == ["r_nobody-answers.json"]


def test_odbc_insert_then_read_back_through_sqlite_odbc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's ODBC driver has no RETURNING: `then` reads back what the INSERT (and its trigger) made."""
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    database = tmp_path / "erp.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, reference TEXT UNIQUE, qty INTEGER, status TEXT DEFAULT 'NEW');"
            "CREATE TABLE order_export (reference TEXT);"
            "CREATE TRIGGER export AFTER INSERT ON orders BEGIN INSERT INTO order_export VALUES (NEW.reference); END;"
        )
    monkeypatch.setenv("BANYAN_TEST_SQLITE_ODBC", f"DRIVER={{SQLite3}};DATABASE={database}")
    config = OdbcConfig(
        connection_env="BANYAN_TEST_SQLITE_ODBC",
        statement="INSERT INTO orders (reference, qty) VALUES (?, ?)",
        params=["/orderNumber", "/qty"],
        then="SELECT id, reference, status FROM orders WHERE reference = ?",
        then_params=["/orderNumber"],
        result="row",
    )

    async def scenario() -> object:
        backend = create(config)
        try:
            reply = await backend.call(Call(route="order-create", payload={"orderNumber": "PO-1", "qty": 3}))
            with pytest.raises(BackendRejected, match="refused the values"):  # the same reference twice
                await backend.call(Call(route="order-create", payload={"orderNumber": "PO-1", "qty": 1}))
            # a quantity beyond 64 bits is the caller's error, and the pooled connection stays usable
            with pytest.raises(BackendRejected, match="cannot be sent to the database"):
                await backend.call(Call(route="order-create", payload={"orderNumber": "PO-2", "qty": 10**23}))
            again = await backend.call(Call(route="order-create", payload={"orderNumber": "PO-3", "qty": 1}))
            assert again.body["reference"] == "PO-3"
            return reply.body
        finally:
            await backend.close()

    assert run(scenario()) == {"id": 1, "reference": "PO-1", "status": "NEW"}
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT reference FROM order_export").fetchall() == [("PO-1",), ("PO-3",)]
