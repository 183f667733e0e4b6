"""Consumers kept in the store: a key created, rotated or revoked with `banyan keys` counts on every
running gateway within a second — two real instances on one PostgreSQL store, and SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from typer.testing import CliRunner

from cli.main import app
from cutover.store import open_store
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.gateway.conftest import serve_process

ROUTES = """\
routes:
  - name: order-get
    operation: {method: GET, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    legacy: {backend: {backend: memory, system: erp}}
"""
runner = CliRunner()


@contextmanager
def gateway(folder: Path, store: str) -> Iterator[str]:
    """No consumers file: the store holds the keys."""
    (folder / "routes").mkdir(parents=True, exist_ok=True)
    (folder / "routes" / "orders.yaml").write_text(ROUTES)
    with serve_process("--routes", str(folder / "routes"), "--store", store) as url:
        yield url


def status(url: str, key: str) -> int:
    return requests.get(f"{url}/v1/ACME-DE/orders/SO-1", headers={"X-API-Key": key}, timeout=5).status_code


def within_a_second(check: object) -> bool:
    deadline = time.monotonic() + 1.5  # a second, and the time to ask
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def keys(*args: str) -> str:
    result = runner.invoke(app, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _fleet(store: str, folder: Path) -> None:
    open_store(store).close()
    with gateway(folder / "a", store) as a, gateway(folder / "b", store) as b:
        key = keys("create", "webshop", "--route", "order-get", "--store", store).splitlines()[0]
        assert key.startswith("bnk_")
        # the memory ERP has no SO-1: a 404 means the key was let in
        assert within_a_second(lambda: status(a, key) == 404 and status(b, key) == 404)
        rotated = keys("rotate", "webshop", "--store", store).splitlines()[0]
        assert within_a_second(lambda: status(a, rotated) == 404 and status(b, key) == 401)
        keys("revoke", "webshop", "--store", store)
        assert within_a_second(lambda: status(a, rotated) == 401 and status(b, rotated) == 401)
        listed = keys("list", "--store", store)
        assert "webshop" in listed and "revoked" in listed and "bnk_" not in listed
        history = runner.invoke(
            app, ["cutover", "history", "--store", store, "--routes", str(folder / "a" / "routes"), "--json"]
        ).output
        assert '"kind": "key_create"' in history and '"kind": "key_revoke"' in history and key not in history


def test_keys_count_on_two_instances_on_postgres_within_a_second(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    _fleet(postgres_url, tmp_path)


def test_keys_count_on_two_instances_on_sqlite_within_a_second(tmp_path: Path) -> None:
    _fleet(str(tmp_path / "cutover.db"), tmp_path)


def test_a_second_consumer_of_one_name_is_refused(tmp_path: Path) -> None:
    store = str(tmp_path / "cutover.db")
    open_store(store).close()
    keys("create", "webshop", "--store", store)
    again = runner.invoke(app, ["keys", "create", "webshop", "--store", store])
    assert again.exit_code == 2 and "exists" in again.output and "Traceback" not in again.output
    missing = runner.invoke(app, ["keys", "revoke", "nobody", "--store", store])
    assert missing.exit_code == 2 and "no consumer named nobody" in missing.output
