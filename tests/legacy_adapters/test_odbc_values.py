"""Values an ODBC driver would change silently are refused before they are bound: the SQLite
driver stores "PO\\x00X" as "PO", and a lone surrogate cannot be encoded for any driver."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from legacy_adapters import BackendRejected, Call, OdbcConfig, create
from tests.conftest import missing_service


@pytest.mark.parametrize("value", ["PO\x00X", "PO-\ud800"])
def test_a_value_the_driver_would_change_is_refused(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    database = tmp_path / "erp.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE orders (number TEXT)")
    monkeypatch.setenv("BANYAN_TEST_ODBC", f"DRIVER={{SQLite3}};DATABASE={database}")
    config = OdbcConfig(
        connection_env="BANYAN_TEST_ODBC",
        statement="INSERT INTO orders (number) VALUES (?)",
        params=["/number"],
        result="none",
    )

    async def scenario() -> None:
        backend = create(config)
        try:
            with pytest.raises(BackendRejected, match="NUL or a lone surrogate"):
                await backend.call(Call(route="order-create", payload={"number": value}, writes=True))
            await backend.call(Call(route="order-create", payload={"number": "PO-1"}, writes=True))
        finally:
            await backend.close()

    asyncio.run(scenario())
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT number FROM orders").fetchall() == [("PO-1",)]  # nothing cut short
