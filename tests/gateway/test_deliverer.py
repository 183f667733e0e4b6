"""`banyan serve --store …` delivers the outbox from a process of its own beside the workers: the
workers ring it as they settle a write and deliver nothing themselves; a deliverer that dies is
started again, and `--deliveries inline` keeps one process that does both."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from cutover.outbox import idempotency_key
from gateway.state import Doorbell
from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import ADMIN, erp, ladder_routes, wait_until
from tests.gateway.test_outbox_crash import start
from tests.gateway.test_workers import alive, children, listening

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads processes from /proc (Linux)")


def serve(tmp_path: Path, routes: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    folder = tmp_path / "routes"
    folder.mkdir(exist_ok=True)
    (folder / "orders.yaml").write_text(routes)
    log = open(tmp_path / "gateway.log", "wb")  # noqa: SIM115  (closed with the process)
    return start(folder, tmp_path / "cutover.db", port, *options, log=log)


def _write(url: str, n: int) -> None:
    answer = requests.post(f"{url}/v1/ACME-US/orders/PO-{n}", json={}, headers={"Idempotency-Key": f"k-{n}"}, timeout=5)
    assert answer.status_code == 201, answer.text


def _worker_and_deliverer(gateway: subprocess.Popen[bytes], port: int) -> tuple[int, int]:
    """The gateway's worker (the process listening on `port`) and its deliverer, once both run;
    the route order-put/ACME-US then writes both sides, and the worker has the rule in memory."""
    wait_until(lambda: len(children(gateway.pid)) == 2 and len(listening(port, children(gateway.pid))) == 1)
    (worker,) = listening(port, children(gateway.pid))
    (deliverer,) = children(gateway.pid) - {worker}
    change = {"mode": "dual_write", "reason": "both sides", "force": True}
    url = f"http://127.0.0.1:{port}/admin/cutover/order-put/ACME-US"
    assert requests.put(url, json=change, headers=ADMIN, timeout=5).ok
    time.sleep(1)  # the worker polls the store for rules every 0.2 s
    return worker, deliverer


def test_the_deliverer_alone_delivers_and_is_started_again_when_it_dies(tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        port = free_port()
        gateway = serve(tmp_path, ladder_routes(legacy.url, cloud.url), port)
        url = f"http://127.0.0.1:{port}"
        try:
            worker, deliverer = _worker_and_deliverer(gateway, port)
            # background work: it never preempts the worker when an answer wakes that one up
            assert (os.sched_getscheduler(deliverer), os.sched_getscheduler(worker)) == (os.SCHED_BATCH, os.SCHED_OTHER)
            _write(url, 1)
            wait_until(lambda: len(cloud.effects) == 1)  # the worker rang, the deliverer delivered

            os.kill(deliverer, signal.SIGSTOP)  # the deliverer paused: the worker serves, and delivers nothing
            try:
                for n in range(2, 6):
                    _write(url, n)
                stalled = requests.get(f"{url}/admin/outbox?state=pending", headers=ADMIN, timeout=5).json()
                assert stalled["counts"]["pending"] == 4 and len(cloud.effects) == 1
            finally:
                os.kill(deliverer, signal.SIGCONT)
            wait_until(lambda: len(cloud.effects) == 5)

            os.kill(deliverer, signal.SIGKILL)
            wait_until(lambda: not alive(deliverer) and len(children(gateway.pid)) == 2)
            assert worker in children(gateway.pid)  # the worker served on meanwhile
            _write(url, 6)
            wait_until(lambda: len(cloud.effects) == 6)  # by the deliverer started in its place
        finally:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
        assert (
            f"deliverer {deliverer} stopped (killed by SIGKILL); starting another"
            in (tmp_path / "gateway.log").read_text()
        )
        assert set(cloud.effects) == {idempotency_key("order-put", "ACME-US", f"k-{n}", "") for n in range(1, 7)}


def test_inline_deliveries_keep_one_process(tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        port = free_port()
        gateway = serve(tmp_path, ladder_routes(legacy.url, cloud.url), port, "--deliveries", "inline")
        url = f"http://127.0.0.1:{port}"
        try:
            assert children(gateway.pid) == set() and listening(port, {gateway.pid}) == {gateway.pid}
            change = {"mode": "dual_write", "reason": "both sides", "force": True}
            assert requests.put(f"{url}/admin/cutover/order-put/ACME-US", json=change, headers=ADMIN, timeout=5).ok
            time.sleep(1)
            _write(url, 1)
            wait_until(lambda: len(cloud.effects) == 1)
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)


def test_a_ring_through_the_pipe_wakes_the_listening_doorbell() -> None:
    async def scenario() -> None:
        heard, ring = os.pipe()
        os.set_blocking(heard, False)
        os.set_blocking(ring, False)
        worker, deliverer = Doorbell(ring), Doorbell()
        deliverer.listen(heard)
        try:
            for _ in range(3):
                deliverer.clear()
                worker.set()
                await asyncio.wait_for(deliverer.wait(), 5)
            for _ in range(100_000):  # rung far more often than it reads: the pipe fills, nobody blocks
                worker.set()
        finally:
            deliverer.stop_listening(heard)
            os.close(heard)
            os.close(ring)
        worker.set()  # the deliverer has gone (restarting): the ring is dropped, not an error

    asyncio.run(scenario())


def test_a_hot_keys_backlog_goes_out_in_order_in_runs(tmp_path: Path) -> None:
    """Twelve writes of one order wait while the deliverer is paused; then it sends them from one
    claim, each leased as the one before it is settled, in the order legacy took them."""
    with erp("legacy") as legacy, erp("cloud") as cloud:
        port = free_port()
        gateway = serve(tmp_path, ladder_routes(legacy.url, cloud.url), port)
        url = f"http://127.0.0.1:{port}"
        try:
            _, deliverer = _worker_and_deliverer(gateway, port)
            os.kill(deliverer, signal.SIGSTOP)
            try:
                for n in range(1, 13):
                    answer = requests.post(
                        f"{url}/v1/ACME-US/orders/PO-HOT",
                        json={"n": n},
                        headers={"Idempotency-Key": f"k-{n}"},
                        timeout=5,
                    )
                    assert answer.status_code == 201, answer.text
            finally:
                os.kill(deliverer, signal.SIGCONT)
            wait_until(lambda: len(cloud.effects) == 12)
        finally:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
        assert list(cloud.effects) == [idempotency_key("order-put", "ACME-US", f"k-{n}", "") for n in range(1, 13)]
        assert list(legacy.effects) == [f"k-{n}" for n in range(1, 13)]  # legacy took them in this order
