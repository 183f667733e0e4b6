"""`make demo`'s cutover, run end to end: the story the README tells must stay true."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cutover.store import open_store

REPO = Path(__file__).resolve().parents[2]


def test_demo_cutover_climbs_and_the_guardrail_steps_down(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_cutover.py"), str(tmp_path), "--once"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "✓ promoted order-status/ACME-DE → dual_write" in run.stdout
    assert "✓ set order-status/ACME-DE → canary 25 %" in run.stdout
    store = open_store(str(tmp_path / "cutover" / "cutover.db"))
    events = list(reversed(store.history()))
    store.close()
    assert [e.kind for e in events[:4]] == ["set", "promote", "promote", "set"]
    guardrail = events[4]
    assert (guardrail.kind, guardrail.from_mode, guardrail.to_mode) == ("guardrail", "canary", "dual_write")
    assert guardrail.evidence["errors_cloud"] >= 20, json.dumps(guardrail.evidence)
    # the consumers never saw the cloud's maintenance: its reads fell back to legacy
    assert "error" not in run.stdout.split("maintenance without notice", 1)[1].split("$ banyan", 1)[0]
