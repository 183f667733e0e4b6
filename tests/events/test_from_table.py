"""`banyan events from-table`: the rows ACME-US's triggers write into order_export, published as
CloudEvents to the real NATS JetStream, read over SQLite's real ODBC driver; once each, past a mark
kept in the store, across restarts; a broker that is down loses nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from cutover.store import open_store
from tests.conftest import REPO, missing_service

runner = CliRunner()
NATS = "nats://127.0.0.1:4222"


async def _stream(stream: str) -> list[dict[str, Any]]:
    import nats

    connection = await nats.connect(NATS, connect_timeout=2)
    try:
        jetstream = connection.jetstream()
        info = await jetstream.stream_info(stream)
        found = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(stream, sequence)
            found.append(json.loads(message.data))
        return found
    finally:
        await connection.close()


async def _drop(stream: str) -> None:
    import nats

    connection = await nats.connect(NATS, connect_timeout=2)
    try:
        await connection.jetstream().delete_stream(stream)
    finally:
        await connection.close()


@pytest.fixture
def nats_stream() -> Any:
    import nats

    async def reachable() -> None:
        connection = await nats.connect(NATS, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        await connection.close()

    try:
        asyncio.run(reachable())
    except Exception as exc:
        missing_service(f"NATS is not reachable on 127.0.0.1:4222 ({type(exc).__name__})")
    name = f"BANYAN_TEST_{uuid.uuid4().hex[:8].upper()}"
    yield name
    asyncio.run(_drop(name))


@pytest.fixture
def erp_us(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import pyodbc

    if "SQLite3" not in pyodbc.drivers():
        missing_service("the SQLite ODBC driver (libsqliteodbc) is not installed")
    database = tmp_path / "erp_us.db"
    with sqlite3.connect(database) as connection:
        connection.executescript((REPO / "scripts" / "demo_db" / "erp_us.sql").read_text())
        connection.executemany(
            "INSERT INTO orders (customer, total) VALUES (?, ?)", [("Globex", 120.5), ("Initech", 88)]
        )
        connection.execute("UPDATE orders SET status = 'SHIPPED' WHERE customer = 'Globex'")
    monkeypatch.setenv("ERP_US_ODBC", f"DRIVER={{SQLite3}};DATABASE={database}")
    return database


def publish(store: str, stream: str, *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            "events",
            "from-table",
            "order_export",
            "--connection-env",
            "ERP_US_ODBC",
            "--type",
            "com.acme.order.status",
            "--source",
            "/erp/us",
            "--subject",
            f"{stream.lower()}.orders",
            "--stream",
            stream,
            "--subject-column",
            "order_id",
            "--entity",
            "ACME-US",
            "--store",
            store,
            *extra,
        ],
    )


def test_every_exported_row_becomes_one_event_across_restarts(tmp_path: Path, erp_us: Path, nats_stream: str) -> None:
    store = str(tmp_path / "cutover.db")
    open_store(store).close()
    first = publish(store, nats_stream)
    assert first.exit_code == 0, first.output
    assert "published 3 events" in first.output  # two inserts and one status change, as the triggers wrote them
    events = asyncio.run(_stream(nats_stream))
    assert [(e["type"], e["subject"], e["data"]["status"]) for e in events] == [
        ("com.acme.order.status", "1", "NEW"),
        ("com.acme.order.status", "2", "NEW"),
        ("com.acme.order.status", "1", "SHIPPED"),
    ]
    assert events[0]["id"] == "/erp/us/order_export/1" and events[0]["legalentity"] == "ACME-US"
    assert events[0]["specversion"] == "1.0" and events[0]["source"] == "/erp/us"
    # a new run (a restart) publishes only what the triggers wrote since
    with sqlite3.connect(erp_us) as connection:
        connection.execute("INSERT INTO orders (customer, total) VALUES ('Hooli', 10)")
    again = publish(store, nats_stream)
    assert again.exit_code == 0 and "published 1 events" in again.output
    assert publish(store, nats_stream).output.startswith("published 0 events")
    assert len(asyncio.run(_stream(nats_stream))) == 4
    # the mark lost (a restore of an old store): the rows go out again, and JetStream drops the repeats
    opened = open_store(store)
    opened.set_event_mark("/erp/us/order_export", 0)
    opened.close()
    assert "published 4 events" in publish(store, nats_stream).output
    assert len(asyncio.run(_stream(nats_stream))) == 4  # the ids are stable: no consumer sees one twice


def test_a_broker_that_is_down_loses_nothing(tmp_path: Path, erp_us: Path, nats_stream: str) -> None:
    store = str(tmp_path / "cutover.db")
    open_store(store).close()
    down = publish(store, nats_stream, "--broker", "nats://127.0.0.1:1")
    assert down.exit_code == 2 and "cannot reach NATS" in down.output and "nothing past" in down.output
    assert "Traceback" not in down.output
    opened = open_store(store)
    assert opened.event_mark("/erp/us/order_export") == 0  # nothing was marked as published
    opened.close()
    assert "published 3 events" in publish(store, nats_stream).output


def test_bad_names_and_a_missing_connection_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "cutover.db")
    open_store(store).close()
    monkeypatch.delenv("ERP_US_ODBC", raising=False)
    missing = publish(store, "S")
    assert missing.exit_code == 2 and "ERP_US_ODBC" in missing.output
    monkeypatch.setenv("ERP_US_ODBC", "DRIVER={SQLite3};DATABASE=/nonexistent/x.db;PWD=hunter2")
    hostile = runner.invoke(
        app,
        [
            "events",
            "from-table",
            "order_export; DROP TABLE orders",
            "--connection-env",
            "ERP_US_ODBC",
            "--type",
            "t",
            "--source",
            "s",
            "--subject",
            "x",
            "--store",
            store,
        ],
    )
    assert hostile.exit_code == 2 and "plain SQL name" in hostile.output
    unreadable = publish(store, "S")
    assert unreadable.exit_code == 2 and "hunter2" not in unreadable.output
