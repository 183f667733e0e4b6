"""A flow run by `banyan serve`, moved with `banyan cutover`, read with `banyan flows`: the commands a
migration lead types, against real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from tests.conftest import REPO
from tests.flows.test_runner import PARTNER_A, PARTNER_B, x12_order
from tests.gateway.conftest import serve_process
from tests.gateway.test_cutover import wait_until


def banyan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_a_flow_served_moved_and_read_from_the_command_line(tmp_path: Path) -> None:
    for folder in ("drop", "legacy/in", "cloud/in", "routes"):
        (tmp_path / folder).mkdir(parents=True)
    flow = {
        "name": "uk-partner-orders",
        "source": {"folder": str(tmp_path / "drop"), "pattern": "*.x12", "settle_seconds": 0.2},
        "entity": {"from": "partner", "partners": {PARTNER_A: "ACME-UK", PARTNER_B: "ACME-UK"}},
        "legacy": {"intake": str(tmp_path / "legacy/in")},
        "cloud": {"intake": str(tmp_path / "cloud/in")},
        "cutover": {"gate": {"min_samples": 1, "min_minutes": 0}},
    }
    (tmp_path / "routes" / "flows.yaml").write_text(yaml.safe_dump({"flows": [flow]}))
    store = str(tmp_path / "cutover.db")
    routes = ("--routes", str(tmp_path / "routes"), "--store", store)
    checked = banyan("routes", "check", str(tmp_path / "routes"))
    assert checked.returncode == 0 and "uk-partner-orders" in checked.stdout, checked.stdout + checked.stderr
    with serve_process(*routes, "--insecure-no-auth") as url:
        (tmp_path / "drop" / "one.x12").write_bytes(x12_order(PARTNER_A, "PO-1", "000000401"))
        wait_until(lambda: [p.name for p in (tmp_path / "legacy/in").iterdir()] == ["one.x12"], 20)
        assert list((tmp_path / "cloud/in").iterdir()) == []  # legacy, where every flow starts
        moved = banyan(
            "cutover",
            "set",
            "uk-partner-orders",
            "ACME-UK",
            "dual_write",
            "--reason",
            "CHG-401 both",
            "--force",
            *routes,
        )
        assert moved.returncode == 0, moved.stdout + moved.stderr
        time.sleep(1.5)  # the gateway takes the change up within a second
        (tmp_path / "drop" / "two.x12").write_bytes(x12_order(PARTNER_B, "PO-2", "000000402"))
        wait_until(lambda: [p.name for p in (tmp_path / "cloud/in").iterdir()] == ["two.x12"], 20)
        assert sorted(p.name for p in (tmp_path / "legacy/in").iterdir()) == ["one.x12", "two.x12"]
        listed = banyan("flows", "files", "uk-partner-orders", "--store", store, "--json")
        files = {item["name"]: item for item in json.loads(listed.stdout)}
        assert files["two.x12"]["rung"] == "ACME-UK@1" and files["one.x12"]["rung"] == "ACME-UK@0"
        assert {side["side"] for side in files["two.x12"]["sides"]} == {"legacy", "cloud"}
        status = banyan("flows", "status", *routes)
        assert "uk-partner-orders" in status.stdout and "dual_write" in status.stdout and "2 delivered" in status.stdout

        def counted() -> bool:  # evidence is flushed every second
            rows = json.loads(banyan("cutover", "status", "--route", "uk-partner-orders", "--json", *routes).stdout)
            return bool(rows) and rows[0]["evidence"]["calls_cloud"] == 1

        wait_until(counted, 10)
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert (
            'banyan_flow_files_total{entity="ACME-UK",flow="uk-partner-orders",outcome="delivered",side="cloud"} 1.0'
            in metrics
        )
