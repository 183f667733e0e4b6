"""Stores for the cutover tests: a SQLite file, and a database of its own on the real PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cutover.store import Store, open_store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_TEST = "postgresql://postgres@127.0.0.1:5432/banyan_cutover_test"


def _admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as connection:
        connection.execute(statement)


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh database for one test, migrated (a copy of the session's template), dropped afterwards."""
    _admin("DROP DATABASE IF EXISTS banyan_cutover_test WITH (FORCE)")
    _admin(f"CREATE DATABASE banyan_cutover_test TEMPLATE {postgres_template}")
    yield PG_TEST
    _admin("DROP DATABASE IF EXISTS banyan_cutover_test WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "cutover.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    opened = open_store(store_location)
    yield opened
    opened.close()


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver: what it was sent, in order."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    """The URL of a webhook receiver on loopback; `Hook.received` holds what it got."""
    Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
