"""Shared test helpers: where the public corpora are, and how a missing service is reported."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("BANYAN_CORPORA", REPO.parent / "shared" / "corpora"))


def missing_service(reason: str) -> None:
    """Skip with the reason on a developer's machine; under CI=true a missing service is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not (CORPORA / "filedrop" / "SOURCES.tsv").is_file():
        missing_service(f"the public sample corpora are not at {CORPORA} (set BANYAN_CORPORA)")
    return CORPORA


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium, driven by playwright; per module, as playwright's sync API keeps an
    event loop running in this thread until it stops, and other tests start their own."""
    if not Path(CHROMIUM).exists():
        missing_service("Debian's chromium is not installed (make test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright (in the test extra) is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_TEMPLATE = "banyan_cutover_template"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once for the session (the migrations from nothing run here, on the real
    PostgreSQL), that each test's database is copied from: a copy takes a third of the migrations'
    time."""
    import psycopg

    from cutover.store import open_store

    def _admin(statement: str) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as connection:
            connection.execute(statement)

    try:
        _admin(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")
        _admin(f"CREATE DATABASE {PG_TEMPLATE}")
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc})")
    open_store(f"postgresql://postgres@127.0.0.1:5432/{PG_TEMPLATE}").close()
    yield PG_TEMPLATE
    _admin(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")
