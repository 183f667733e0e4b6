"""One /metrics for a gateway of several processes: whichever worker a scrape reaches, it counts
every worker's calls and the deliverer's deliveries, with exemplars (trace ids) still on the SLO."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import ADMIN, erp, ladder_routes, wait_until
from tests.gateway.test_deliverer import serve
from tests.gateway.test_workers import children, listening

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads processes from /proc (Linux)")

WRITES = 30


def _value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_every_scrape_counts_the_whole_gateway(tmp_path: Path) -> None:
    with erp("legacy") as legacy, erp("cloud") as cloud:
        port = free_port()
        gateway = serve(tmp_path, ladder_routes(legacy.url, cloud.url), port, "--workers", "2")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: len(listening(port, children(gateway.pid))) == 2)
            change = {"mode": "dual_write", "reason": "both sides", "force": True}
            assert requests.put(f"{url}/admin/cutover/order-put/ACME-US", json=change, headers=ADMIN, timeout=5).ok
            time.sleep(1)  # both workers have the rule in memory (they poll the store every 0.2 s)
            for n in range(WRITES):  # a connection each: the kernel spreads them over the two workers
                assert requests.post(f"{url}/v1/ACME-US/orders/PO-{n}", json={}, timeout=5).status_code == 201
            wait_until(lambda: len(cloud.effects) == WRITES)
            served = 'banyan_requests_total{entity="ACME-US",route="order-put",status="201"}'
            delivered = (
                'banyan_cutover_calls_total{entity="ACME-US",outcome="ok",role="outbox",route="order-put",'
                'side="cloud"}'
            )  # (only the deliverer makes these)
            for _ in range(6):  # a connection each: both workers answer some of these
                text = requests.get(f"{url}/metrics", timeout=5).text
                assert _value(text, served) == WRITES
                assert 'pid="' not in text  # the gauges here say how processes add up: none is per pid
                assert _value(text, delivered) == WRITES

            with requests.Session() as one:  # one connection, so one worker: its exemplar is in its scrape
                for n in range(3):
                    assert one.get(f"{url}/v1/ACME-US/orders/PO-{n}", timeout=5).ok
                openmetrics = one.get(
                    f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5
                ).text
            line = next(
                line
                for line in openmetrics.splitlines()
                if line.startswith('banyan_slo_events_total{entity="ACME-US",result="good",route="order-get"')
            )
            assert ' # {trace_id="' in line and float(line.split()[1]) >= 3
        finally:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
        assert "Traceback" not in (tmp_path / "gateway.log").read_text()
