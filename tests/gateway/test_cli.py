"""banyan routes check / schema / scaffold, banyan keys create and banyan serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from typer.testing import CliRunner

from cli.main import app
from gateway.consumers import Consumers
from tests.gateway.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_the_shipped_routes_check() -> None:
    result = runner.invoke(app, ["routes", "check", str(REPO / "routes")])
    assert result.exit_code == 0, result.output
    assert "✓ order-create: POST /v1/{entity}/orders" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "routes:\n  - name: ok\n    operation:\n      methd: GET\n",
            "bad.yaml:4: routes.0.operation.methd: Extra inputs are not permitted",
        ),
        ("routes:\n  - name: Bad Name\n", "bad.yaml:2: routes.0.name: String should match pattern"),
        ("routes: [\n", "bad.yaml:2: not valid YAML"),
        (
            "routes:\n  - name: a\n    operation: {method: GET, path: /x}\n    legacy:\n      backend: {backend: ftp, url: x}\n",
            "bad.yaml:5: routes.0.legacy.backend: Input tag 'ftp' found using 'backend' does not match",
        ),
        (  # a managed route's body is JSON: an XPath entity was accepted and then never read
            "routes:\n  - name: a\n    operation: {method: POST, path: /x}\n    entity: {from: xpath, xpath: //e}\n",
            "bad.yaml:4: routes.0.entity.from: Input should be 'path', 'header', 'query', 'json' or 'constant'",
        ),
    ],
)
def test_check_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = runner.invoke(app, ["routes", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_route_files_take_hosts_and_folders_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specs.files import RouteError, load_file

    (tmp_path / "r.yaml").write_text(
        "routes:\n  - name: a\n    operation: {method: GET, path: '/x/{id}'}\n"
        "    legacy: {backend: {backend: http, url: '${ERP_URL}/x/{id}'}}\n"
        "    cloud: {backend: {backend: http, url: '${CLOUD_URL:-http://127.0.0.1:9}/x/{id}'}}\n"
    )
    monkeypatch.setenv("ERP_URL", "http://127.0.0.1:8123")
    monkeypatch.delenv("CLOUD_URL", raising=False)
    (route,) = load_file(tmp_path / "r.yaml")
    assert route.legacy.backend.url == "http://127.0.0.1:8123/x/{id}"  # type: ignore[union-attr]
    assert route.cloud.backend.url == "http://127.0.0.1:9/x/{id}"  # type: ignore[union-attr]
    monkeypatch.setenv("CLOUD_URL", "http://127.0.0.1:8124")
    assert load_file(tmp_path / "r.yaml")[0].cloud.backend.url == "http://127.0.0.1:8124/x/{id}"  # type: ignore[union-attr]
    monkeypatch.delenv("ERP_URL")
    with pytest.raises(RouteError, match=r"r.yaml:4: environment variable ERP_URL is not set"):
        load_file(tmp_path / "r.yaml")


def test_schema_validates_the_shipped_routes() -> None:
    result = runner.invoke(app, ["routes", "schema"])
    schema = json.loads(result.output)
    for path in (REPO / "routes").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"routes": [{"name": "x", "writes": "often"}]}, schema)


def test_scaffold_from_a_catalog_passes_check(corpora: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    assert runner.invoke(app, ["scan", "esb", str(corpora / "esb"), "-o", str(catalog)]).exit_code == 0
    result = runner.invoke(app, ["routes", "scaffold", str(catalog), "--out", str(tmp_path / "routes")])
    assert result.exit_code == 0, result.output
    check = runner.invoke(app, ["routes", "check", str(tmp_path / "routes")])
    assert check.exit_code == 0, check.output
    assert "✓ lbservice1-sleep-operation: POST /v1/{entity}/lbservice1/sleep-operation" in check.output


def test_keys_create(tmp_path: Path) -> None:
    consumers = tmp_path / "consumers.yaml"
    result = runner.invoke(
        app,
        ["keys", "create", "webshop", "--consumers", str(consumers), "--route", "order-create", "--entity", "ACME-DE"],
    )
    assert result.exit_code == 0, result.output
    key = result.output.splitlines()[0]
    assert key.startswith("bnk_") and key not in consumers.read_text()
    found = Consumers.load(consumers).find(key)
    assert found is not None and found.routes == ["order-create"] and found.entities == ["ACME-DE"]
    again = runner.invoke(app, ["keys", "create", "webshop", "--consumers", str(consumers)])
    assert again.exit_code == 2


def test_serve_refuses_to_run_without_keys(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--routes", str(REPO / "routes")])
    assert result.exit_code == 2 and "--consumers" in result.output


def test_serve_with_two_workers_and_a_clean_stop(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--routes",
        str(REPO / "routes"),
        "--insecure-no-auth",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json() == {"status": "ok"}
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "no answer"  # type: ignore[union-attr]
                time.sleep(0.2)
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 2
        spec = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).json()
        assert "/v1/{entity}/orders/{orderId}" in spec["paths"]
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0
