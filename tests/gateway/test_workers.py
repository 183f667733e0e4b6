"""`banyan serve --workers N` supervises its workers: a worker that dies is replaced, and no worker
outlives the gateway (it would keep the port, shared through SO_REUSEPORT, serving stale keys)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.gateway.conftest import free_port

ROUTES = """\
routes:
  - name: order-get
    operation: {method: GET, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    legacy: {backend: {backend: memory, system: erp}}
"""


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(child) for child in text}
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state != "Z"  # a zombie has stopped: only its parent has not collected it


def wait(condition: object, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}, timeout=2).ok
    except requests.ConnectionError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc (Linux)")
def test_a_dead_worker_is_replaced_and_workers_die_with_the_gateway(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "orders.yaml").write_text(ROUTES)
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--routes", str(tmp_path / "routes"), "--insecure-no-auth",
         "--port", str(port), "--workers", "2", "--no-access-log"],
        cwd=REPO, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait(lambda: answers(port) and len(children(gateway.pid)) == 2, 30)
        first = children(gateway.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait(lambda: len(children(gateway.pid)) == 2 and victim not in children(gateway.pid))
        assert all(answers(port) for _ in range(20))  # every fresh connection is still answered
        workers = children(gateway.pid)
        # the gateway itself killed outright: its workers go too, and the port is free again
        os.kill(gateway.pid, signal.SIGKILL)
        gateway.wait(10)
        assert wait(lambda: not any(alive(worker) for worker in workers)), "a worker outlived the gateway"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        with_group = gateway.poll() is None
        if with_group:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
    log = gateway.stderr.read().decode()  # type: ignore[union-attr]
    assert f"worker {victim} stopped (killed by SIGKILL); starting another" in log
