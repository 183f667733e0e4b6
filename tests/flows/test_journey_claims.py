"""A partner sends the same bytes under two names, and two runners (two gateways on one store)
take them at once: one file is delivered, the other is a duplicate of it, on SQLite and on
PostgreSQL. A flow that takes resends delivers both."""

from __future__ import annotations

import threading
from pathlib import Path

from cutover.store import open_store
from flows.journey import Journey
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures

TO_DELIVER = {
    "state": "delivering",
    "entity": "ACME-UK",
    "business_key": "PO-1",
    "document": "x12:850",
    "rung": "legacy",
}


def test_the_same_bytes_under_two_names_are_delivered_once(store_location: str) -> None:  # noqa: F811
    journey = Journey(open_store(store_location))
    first = journey.claim("edi", "PO1.x12/10/1", "PO1.x12", "d" * 64, 10, 0.0, dict(TO_DELIVER))
    again = journey.claim("edi", "PO1-resent.x12/10/2", "PO1-resent.x12", "d" * 64, 10, 0.0, dict(TO_DELIVER))
    assert first is not None and first[1] == "delivering"
    assert again is not None and again[1] == "duplicate"
    row = journey.get(again[0])
    assert row is not None and row.state == "duplicate" and f"file {first[0]} (PO1.x12)" in row.reason
    resent = journey.claim("edi", "PO1-more.x12/10/3", "PO1-more.x12", "d" * 64, 10, 0.0, dict(TO_DELIVER), once=False)
    assert resent is not None and resent[1] == "delivering"  # a flow that takes resends


def test_two_runners_taking_the_same_bytes_at_once_deliver_them_once(store_location: str, tmp_path: Path) -> None:  # noqa: F811
    """Forty pairs of files, each pair the same bytes under two names, claimed by two runners with
    their own connections at the same moment: of each pair, exactly one is delivering."""
    runners = [Journey(open_store(store_location)) for _ in range(2)]
    pairs = 40
    start = threading.Barrier(2)
    states: dict[str, list[str]] = {f"{n:064d}": [] for n in range(pairs)}

    def run(index: int) -> None:
        start.wait()
        for digest in states:
            claimed = runners[index].claim(
                "edi", f"file-{index}-{digest[-3:]}/10/1", f"file-{index}", digest, 10, 0.0, dict(TO_DELIVER)
            )
            assert claimed is not None
            states[digest].append(claimed[1])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(sorted(found) == ["delivering", "duplicate"] for found in states.values()), states
