"""Benchmark: the answer comparator against deepdiff on the same pairs, with equivalent rules.

    python scripts/bench/compare.py [--pairs 2000]

Builds pairs of ~1 KB order documents (a header, a customer, 6–10 lines), the cloud side with
volatile fields changed (ignored), amounts off by less than the tolerance, lines shuffled (compared
unordered) and, in one pair of five, a real difference. Both tools get the same rules: ignored
paths, an absolute numeric tolerance of 0.01 and unordered lines. It checks that both find a
difference in the same pairs, then prints pairs/s for each and the ratio (target: 20×).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from typing import Any

from deepdiff import DeepDiff
from report import Report, add_json_flag

from cutover.compare import Comparator, Rules


def order(rng: random.Random, number: int) -> dict[str, Any]:
    lines = [
        {
            "line": n + 1,
            "sku": f"SKU-{rng.randrange(10_000):05d}",
            "qty": rng.randrange(1, 50),
            "price": round(rng.uniform(1, 500), 2),
            "uom": "EA",
            "requested": "2026-12-01",
        }
        for n in range(rng.randrange(6, 11))
    ]
    return {
        "orderId": f"SO-{number:06d}",
        "entity": "ACME-DE",
        "status": "open",
        "currency": "EUR",
        "customer": {"id": f"C-{rng.randrange(1000):04d}", "name": "Müller Handels GmbH", "vat": "DE123456789"},
        "total": round(sum(line["qty"] * line["price"] for line in lines), 2),
        "lines": lines,
        "etag": f"{rng.getrandbits(64):016x}",
        "fetchedAt": "2026-11-27T10:00:00Z",
    }


def cloud_side(rng: random.Random, legacy: dict[str, Any], differs: bool) -> dict[str, Any]:
    cloud = json.loads(json.dumps(legacy))
    cloud["etag"] = f"{rng.getrandbits(64):016x}"
    cloud["fetchedAt"] = "2026-11-27T10:00:01Z"
    cloud["total"] = round(cloud["total"] + 0.004, 3)
    rng.shuffle(cloud["lines"])
    if differs:
        cloud["lines"][0]["qty"] += 1
    return cloud


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    add_json_flag(parser)
    args = parser.parse_args()
    report = Report.from_args(args)
    logging.getLogger("deepdiff").setLevel(logging.ERROR)  # it warns on every call about nested epsilon
    rng = random.Random(7)
    pairs = []
    for n in range(args.pairs):
        legacy = order(rng, n)
        pairs.append((legacy, cloud_side(rng, legacy, n % 5 == 0)))
    size = sum(len(json.dumps(a)) for a, _ in pairs) / len(pairs)

    comparator = Comparator(Rules(ignore=["/etag", "/fetchedAt"], tolerance=0.01, unordered={"/lines": "line"}))

    def ours(a: Any, b: Any) -> bool:
        return bool(comparator.compare(a, b))

    def theirs(a: Any, b: Any) -> bool:
        return bool(
            DeepDiff(a, b, exclude_paths=["root['etag']", "root['fetchedAt']"], math_epsilon=0.01, ignore_order=True)
        )

    assert [ours(a, b) for a, b in pairs] == [theirs(a, b) for a, b in pairs], "the two disagree on a pair"
    rates = {}
    for name, function, share in (("banyan comparator", ours, 1.0), ("deepdiff", theirs, 0.25)):
        sample = pairs[: max(1, int(len(pairs) * share))]
        started = time.perf_counter()
        for a, b in sample:
            function(a, b)
        rates[name] = len(sample) / (time.perf_counter() - started)
    report.say(f"{len(pairs):,} pairs of ~{size:,.0f} B orders; {sum(n % 5 == 0 for n in range(len(pairs))):,} differ")
    for name, rate in rates.items():
        report.figure(f"{name.replace(' ', '_')}_pairs_per_s", rate)
        report.say(f"{name:<20}{rate:>12,.0f} pairs/s")
    ratio = report.figure("comparator_over_deepdiff", rates["banyan comparator"] / rates["deepdiff"])
    report.say(f"comparator / deepdiff: {ratio:.1f}×  (target ≥ 20×: {'met' if ratio >= 20 else 'MISSED'})")
    report.done()


if __name__ == "__main__":
    main()
