"""Every benchmark under scripts/bench takes --json and prints one JSON object of its figures."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


def test_report_prints_tables_or_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("report", BENCH / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for as_json in (False, True):
        report = module.Report(as_json)
        report.say("nginx reverse proxy   27,633 req/s")
        report.figure("proxy_rps", 27633)
        report.figure("gateway_over_nginx_proxy", 1970 / 27633)
        report.done()
        out = capsys.readouterr().out
        if as_json:
            assert json.loads(out) == {"gateway_over_nginx_proxy": 0.0713, "proxy_rps": 27633.0}
        else:
            assert out == "nginx reverse proxy   27,633 req/s\n"


HELPERS = {"report.py", "bare_proxy.py"}  # what the benchmarks use, not benchmarks themselves


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name not in HELPERS))
def test_every_benchmark_offers_json(script: str) -> None:
    text = (BENCH / script).read_text()
    assert "add_json_flag(parser)" in text and "report.done()" in text
    assert not re.search(r"^\s+print\((?!.*file=sys\.stderr)", text, re.MULTILINE)  # stdout is the report's
