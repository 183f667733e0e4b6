"""SIGKILL the gateway in a stream of dual writes while the cloud is down: no acknowledged write is lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import requests

from cutover.outbox import Outbox, idempotency_key
from cutover.store import open_store
from tests.conftest import REPO
from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import ADMIN, erp, ladder_routes, wait_until


def start(routes: Path, store: Path, port: int, *options: str, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """`banyan serve` on a store, in a session of its own (its group, worker and deliverer, can be
    signalled at once); stderr to `log`, or dropped."""
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--routes",
        str(routes),
        "--insecure-no-auth",
        "--port",
        str(port),
        "--store",
        str(store),
        "--no-access-log",
        *options,
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "BANYAN_ADMIN_KEY": ADMIN["X-Admin-Key"]},
        stderr=log or subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(lambda: _up(port), 20)
    return process


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
    except requests.ConnectionError:
        return False


def test_sigkill_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        routes = tmp_path / "routes"
        routes.mkdir()
        (routes / "orders.yaml").write_text(ladder_routes(legacy.url, cloud.url))
        store = tmp_path / "cutover.db"
        port = free_port()
        gateway = start(routes, store, port, "--in-doubt-after", "1")
        url = f"http://127.0.0.1:{port}"
        change = {"mode": "dual_write", "reason": "both sides", "force": True}
        assert requests.put(f"{url}/admin/cutover/order-put/ACME-US", json=change, headers=ADMIN, timeout=5).ok
        time.sleep(0.5)  # the rule is in memory
        acknowledged: list[str] = []
        stop = threading.Event()

        def stream() -> None:
            n = 0
            while not stop.is_set():
                key = f"consumer-key-{n}"
                try:
                    answer = requests.post(
                        f"{url}/v1/ACME-US/orders/PO-{n}", json={}, headers={"Idempotency-Key": key}, timeout=5
                    )
                    if answer.status_code == 201:
                        acknowledged.append(key)
                except requests.RequestException:
                    pass
                n += 1

        cloud.fail = True  # the cloud is down: the copies pile up in the outbox
        writer = threading.Thread(target=stream)
        writer.start()
        wait_until(lambda: len(acknowledged) >= 60, 30)
        os.killpg(gateway.pid, signal.SIGKILL)  # the supervisor, its worker and its deliverer: no goodbye
        gateway.wait(10)
        time.sleep(0.3)
        stop.set()
        writer.join(10)
        owed = Outbox(open_store(str(store))).counts()
        assert owed["pending"] >= 50  # the crash left copies owed to the cloud
        cloud.fail = False
        gateway = start(routes, store, port, "--in-doubt-after", "1")  # the same store, a new process
        try:
            outbox = Outbox(open_store(str(store)))
            # every intent gets an outcome: delivered, or in doubt for a person; nothing stays pending
            wait_until(lambda: (c := outbox.counts())["pending"] == 0 and c["intent"] == 0, 30)
            counts = outbox.counts()
            assert counts["delivered"] >= len(acknowledged)
            delivered_keys = {m.idempotency_key for m in outbox.list("delivered", limit=10_000)}
            for key in acknowledged:
                outbox_key = idempotency_key("order-put", "ACME-US", key, "")
                assert outbox_key in delivered_keys, f"acknowledged write {key} never reached the cloud"
                assert outbox_key in cloud.effects  # written once: the cloud saw the same key on any redelivery
            assert len(cloud.effects) == counts["delivered"]
            doubtful = outbox.list("in_doubt")
            assert all(
                idempotency_key("order-put", "ACME-US", k, "") not in {m.idempotency_key for m in doubtful}
                for k in acknowledged
            )
            outbox.store.close()
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(20)
