"""SIGKILL a gateway mid-stream of partner files in dual_write: after a restart on the same store no
file is lost, none reaches a side twice, none is left half-written in an intake, and a file whose
delivery cannot be told is named in doubt. SQLite and PostgreSQL gateways side by side."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import yaml

from cutover.store import open_store
from flows.journey import Journey
from tests.cutover.conftest import postgres_url  # noqa: F401 - the fixture
from tests.flows.test_runner import PARTNER_A, PARTNER_B, x12_order
from tests.gateway.conftest import free_port
from tests.gateway.test_cutover import wait_until
from tests.gateway.test_outbox_crash import start

FILES = 300


def _estate(root: Path) -> Path:
    for folder in ("drop", "legacy/in", "cloud/in", "routes"):
        (root / folder).mkdir(parents=True)
    flow = {
        "name": "partner-orders",
        "source": {"folder": str(root / "drop"), "pattern": "*.x12", "settle_seconds": 0},
        "entity": {"from": "partner", "partners": {PARTNER_A: "ACME-UK", PARTNER_B: "ACME-UK"}},
        "legacy": {"intake": str(root / "legacy/in")},
        "cloud": {"intake": str(root / "cloud/in")},
        "cutover": {"mode": "dual_write"},
    }
    (root / "routes" / "flows.yaml").write_text(yaml.safe_dump({"flows": [flow]}))
    return root / "routes"


def _send(root: Path) -> None:
    """Partner files as a careful sender writes them: under a temporary name, then renamed."""
    for n in range(FILES):
        partial = root / "drop" / f"po-{n:04d}.x12.part"
        partial.write_bytes(x12_order(PARTNER_A if n % 2 else PARTNER_B, f"PO-{n}", f"{1000 + n:09d}"))
        partial.rename(root / "drop" / f"po-{n:04d}.x12")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_sigkill_mid_stream_loses_no_file_and_delivers_none_twice(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    stores = {"sqlite": str(tmp_path / "sqlite" / "cutover.db"), "postgres": postgres_url}
    roots = {name: tmp_path / name for name in stores}
    routes = {name: _estate(root) for name, root in roots.items()}
    ports = {name: free_port() for name in stores}
    gateways: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, store in stores.items():
            gateways[name] = start(routes[name], store, ports[name])  # type: ignore[arg-type]
        for root in roots.values():
            _send(root)
        wait_until(lambda: all(len(_names(root / "cloud/in")) >= 60 for root in roots.values()), 60)
        for gateway in gateways.values():
            os.killpg(gateway.pid, signal.SIGKILL)  # mid-stream: no goodbye
            gateway.wait(10)
        for name, store in stores.items():
            gateways[name] = start(routes[name], store, ports[name])  # type: ignore[arg-type]
        journeys = {name: Journey(open_store(store)) for name, store in stores.items()}

        def settled() -> bool:
            return all(
                not list((roots[name] / "drop").glob("*.x12"))
                and not journey.files("partner-orders", state="delivering")
                and not journey.files("partner-orders", state="new")
                for name, journey in journeys.items()
            )

        wait_until(settled, 60)
        for name, journey in journeys.items():
            root = roots[name]
            rows = journey.files("partner-orders", limit=10 * FILES)
            by_state: dict[str, list[str]] = {}
            for row in rows:
                by_state.setdefault(row.state, []).append(row.name)
            expected = [f"po-{n:04d}.x12" for n in range(FILES)]
            assert sorted(by_state.get("delivered", []) + by_state.get("in_doubt", [])) == expected, name
            assert len(by_state.get("in_doubt", [])) <= 2, (name, by_state.get("in_doubt"))  # the copies under way
            for side in ("legacy", "cloud"):
                there = _names(root / side / "in")
                assert not [n for n in there if n.startswith(".banyan-")], (name, side)  # no half file left
                assert len(there) == len(set(there)) and not [n for n in there if "_1." in n], (
                    name,
                    side,
                )  # never twice
                # every delivered file is there, whole; an in-doubt one at most once
                assert set(by_state.get("delivered", [])) <= set(there), (name, side)
                assert set(there) <= set(expected), (name, side)
                for file in there:
                    number = int(file[3:7])
                    assert (root / side / "in" / file).read_bytes() == x12_order(
                        PARTNER_A if number % 2 else PARTNER_B, f"PO-{number}", f"{1000 + number:09d}"
                    ), (name, side, file)
            journey.store.close()
    finally:
        for gateway in gateways.values():
            if gateway.poll() is None:
                os.killpg(gateway.pid, signal.SIGTERM)
                gateway.wait(20)
