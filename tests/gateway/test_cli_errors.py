"""Every command given bad arguments: one line that says what is wrong, an exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cutover.store import open_store
from tests.conftest import REPO

runner = CliRunner(env={"COLUMNS": "300"})
ROUTES = ["--routes", str(REPO / "routes")]


@pytest.fixture
def store(tmp_path: Path) -> str:
    location = str(tmp_path / "cutover.db")
    open_store(location).close()
    return location


CASES = [
    # (arguments, with {store} / {tmp} filled in, exit code, what the line says)
    (["cutover", "status", "--store", str(REPO / "README.md"), *ROUTES], 2, "is not a cutover store"),
    (["cutover", "status", "--store", "{tmp}/cutovr.db", *ROUTES], 2, "no cutover store at"),
    (["cutover", "history", "--store", "{tmp}/cutovr.db", *ROUTES], 2, "no cutover store at"),
    (["outbox", "status", "--store", "{tmp}/cutovr.db"], 2, "no cutover store at"),
    (["outbox", "list", "--store", str(REPO / "README.md")], 2, "is not a cutover store"),
    (["cutover", "status", "--store", "{store}", "--route", "nope", *ROUTES], 2, "unknown route 'nope'"),
    (["cutover", "status", "--store", "{store}", "--entity", "ACME-XX", *ROUTES], 2, "unknown legal entity 'ACME-XX'"),
    (["cutover", "history", "--store", "{store}", "--entity", "ACME-XX", *ROUTES], 2, "unknown legal entity"),
    (["cutover", "history", "--store", "{store}", "--route", "nope", *ROUTES], 2, "unknown route"),
    (["cutover", "mismatches", "nope", "--store", "{store}", *ROUTES], 2, "unknown route"),
    (
        ["cutover", "mismatches", "order-status", "--entity", "ACME-US", "--store", "{store}", *ROUTES],
        2,
        "does not serve ACME-US",
    ),
    (
        ["cutover", "set", "nope", "ACME-UK", "dual_write", "--reason", "r", "--store", "{store}", *ROUTES],
        2,
        "unknown route",
    ),
    (
        ["cutover", "set", "order-create", "ACME-XX", "dual_write", "--reason", "r", "--store", "{store}", *ROUTES],
        2,
        "unknown legal entity",
    ),
    (
        [
            "cutover",
            "set",
            "order-create",
            "ACME-UK",
            "canary",
            "--percent",
            "150",
            "--reason",
            "r",
            "--store",
            "{store}",
            *ROUTES,
        ],
        2,
        "at most 100, not 150",
    ),
    (
        [
            "cutover",
            "schedule",
            "order-create",
            "ACME-UK",
            "dual_write",
            "--at",
            "yesterday",
            "--reason",
            "r",
            "--store",
            "{store}",
            *ROUTES,
        ],
        2,
        "the time is ISO 8601",
    ),
    (
        ["cutover", "set", "order-create", "ACME-UK", "dual_write", "--reason", "r", "--store", "{store}", *ROUTES],
        1,
        "the gate says Inconclusive",
    ),  # a refusal of the ladder's, not a bad argument
    (["scan", "files", "{tmp}/nowhere", "-o", "{tmp}/catalog.json"], 2, "no such folder"),
    (["scan", "esb", "{tmp}/nowhere.xml", "-o", "{tmp}/catalog.json"], 2, "no such file or folder"),
    (["scan", "db", "{tmp}/list.yaml", "-o", "{tmp}/catalog.json"], 2, "not a DDL script"),
    (["keys", "create", "x", "--consumers", "/no/such/dir/consumers.yaml"], 2, "is not a folder"),
    (["keys", "create", "x", "--consumers", "{tmp}/garbage.yaml"], 2, "cannot be read as a consumers file"),
    (["keys", "create", "x", "--consumers", "{tmp}/list.yaml"], 2, "is not a consumers file"),
]


@pytest.mark.parametrize(
    ("args", "code", "says"), CASES, ids=[" ".join(c[0][:3]) + f" {i}" for i, c in enumerate(CASES)]
)
def test_bad_arguments_get_one_line(args: list[str], code: int, says: str, store: str, tmp_path: Path) -> None:
    (tmp_path / "garbage.yaml").write_text("consumers: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    filled = [a.replace("{store}", store).replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, filled)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], result.output
    assert not (tmp_path / "cutovr.db").exists()  # a read never creates a store
    assert not (tmp_path / "catalog.json").exists()  # a refused scan writes no catalog


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["keys", "create", "x", "--consumers", "{tmp}/consumers.yaml", "--rate", "-3"], "is not a rate"),
        (["keys", "create", "x", "--consumers", "{tmp}/consumers.yaml", "--rate", "nan"], "is not a rate"),
        (["serve", "--port", "99999"], "less than or equal to 65535"),
        (["serve", "--port", "-5"], "greater than or equal to 1"),
        (["serve", "--workers", "0"], "greater than or equal to 1"),
        (["serve", "--insecure-no-auth", "--trusted-proxy", "nginx.local"], "--trusted-proxy takes an address"),
        (
            ["cutover", "mismatches", "order-status", "--minutes", "-5", "--store", "{tmp}/c.db", *ROUTES],
            "greater than or equal to 1",
        ),
    ],
)
def test_values_out_of_range_are_refused_before_anything_is_written(args: list[str], says: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and says in " ".join(result.output.split()), result.output
    assert not (tmp_path / "consumers.yaml").exists() and not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_once_when_it_cannot_listen(workers: str) -> None:
    """A port another server holds, or an address not this machine's: one line and exit code 2
    before any worker starts (else each would fail in turn, taken for a crash loop)."""
    import socket
    import subprocess
    import sys

    serve = [sys.executable, "-m", "cli.main", "serve", *ROUTES, "--insecure-no-auth", "--workers", workers]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        busy = subprocess.run([*serve, "--port", port], cwd=REPO, capture_output=True, text=True, timeout=60)
    foreign = subprocess.run(
        [*serve, "--host", "192.0.2.1", "--port", "8080"], cwd=REPO, capture_output=True, text=True, timeout=60
    )  # (TEST-NET-1: never this machine's)
    for result, says in (
        (busy, f"cannot listen on 127.0.0.1:{port}: Address already in use"),
        (foreign, "--host takes an address or name of this machine"),
    ):
        assert result.returncode == 2, result.stderr
        assert says in result.stderr and "Traceback" not in result.stderr + result.stdout
