"""How every benchmark here reports: a table for people by default, one JSON object with `--json`.

    report = Report.from_args(args)      # args.json set by add_json_flag(parser)
    report.say("nginx reverse proxy   27,633 req/s")   # printed unless --json
    report.figure("proxy_rps", 27633.0)                 # kept for the JSON object
    report.done()                                       # prints {"proxy_rps": 27633.0, …} with --json

Figures are name → number (ratios included), so other tools can read them without parsing tables.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures instead of tables")


class Report:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.figures: dict[str, float] = {}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Report:
        return cls(bool(getattr(args, "json", False)))

    def say(self, text: str = "") -> None:
        if not self.as_json:
            print(text, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)  # progress stays visible, stdout stays one object

    def figure(self, name: str, value: float) -> float:
        self.figures[name] = round(float(value), 4)
        return value

    def done(self) -> None:
        if self.as_json:
            print(json.dumps(self.figures, sort_keys=True))
