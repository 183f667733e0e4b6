"""`banyan serve --workers N` supervises its workers: a worker that dies is replaced, and no worker
outlives the gateway (it would keep the port, shared through SO_REUSEPORT, serving stale keys)."""

from __future__ import annotations

import contextlib
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


def listening(port: int, pids: set[int]) -> set[int]:
    """Those of `pids` that hold a socket listening on `port` (from /proc/net/tcp and their fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                found.add(pid)
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


def answers(port: int, timeout: float = 2) -> bool:
    return not why_not_answered(port, timeout)


def why_not_answered(port: int, timeout: float) -> str:
    """'' when a fresh connection is answered 200, else what happened instead."""
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}, timeout=timeout)
    except requests.ConnectionError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "" if answer.ok else f"HTTP {answer.status_code}"


def two_workers(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """`banyan serve --workers 2` in a session of its own (its group can be signalled), stderr kept."""
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "orders.yaml").write_text(ROUTES)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--routes",
            str(tmp_path / "routes"),
            "--insecure-no-auth",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc (Linux)")
def test_a_dead_worker_is_replaced_and_workers_die_with_the_gateway(tmp_path: Path) -> None:
    port = free_port()
    gateway = two_workers(tmp_path, port)
    try:
        # both workers listening: killing one while the other still starts would leave nobody to answer
        assert wait(
            lambda: len(children(gateway.pid)) == 2 and listening(port, children(gateway.pid)) == children(gateway.pid),
            30,
        )
        first = children(gateway.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait(lambda: len(children(gateway.pid)) == 2 and victim not in children(gateway.pid))
        assert wait(lambda: listening(port, children(gateway.pid)) == children(gateway.pid), 30)  # the new one serves
        # every fresh connection is still answered (in time for a busy machine: a refusal or a reset fails at once)
        failures = [why for why in (why_not_answered(port, 10) for _ in range(20)) if why]
        assert not failures, failures
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


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc (Linux)")
@pytest.mark.parametrize("after", [0.0, 0.01, 0.1, 0.3, 0.6])
def test_a_worker_stopped_while_it_starts_goes_quietly(tmp_path: Path, after: float) -> None:
    """SIGTERM reaching a worker that is still starting (one just started in place of a dead one):
    before aiohttp's handlers, the supervisor's own (inherited with the fork) swallowed it and the
    gateway never stopped; during aiohttp's setup, the worker died with a traceback."""
    port = free_port()
    gateway = two_workers(tmp_path, port)
    try:
        assert wait(lambda: listening(port, children(gateway.pid)) == children(gateway.pid) != set(), 30)
        victim = min(children(gateway.pid))
        os.kill(victim, signal.SIGKILL)
        assert wait(lambda: len(children(gateway.pid)) == 2 and victim not in children(gateway.pid))
        time.sleep(after)  # the new worker is building its app, or has just built it
        os.killpg(gateway.pid, signal.SIGTERM)  # as a service manager stops the gateway's group
        gateway.wait(30)  # TimeoutExpired: a worker did not stop
    finally:
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.wait()
    log = gateway.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in log, log
