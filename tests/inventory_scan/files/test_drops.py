"""Folders → drops, as a table: which folder a pattern's drop lives in, and its lifecycle stages."""

from __future__ import annotations

import pytest

from inventory_scan.catalog import Direction
from inventory_scan.files.drops import group_drops, stage_of
from inventory_scan.files.folders import FolderAccumulator, FolderResult

T = 1767225600.0


def folders(layout: dict[str, list[str]]) -> list[FolderResult]:
    results = []
    for path, names in layout.items():
        folder = FolderAccumulator(path, 0)
        for n, name in enumerate(names):
            folder.add(name, f"{path}/{name}", 100, T + n)
        results.append(folder.result)
    return results


def summary(layout: dict[str, list[str]]) -> set[tuple[str, str, str, tuple[tuple[str, str, int], ...]]]:
    return {
        (
            drop.folder,
            drop.pattern,
            drop.direction.value,
            tuple((name, stage.folder, stage.stats.count) for name, stage in sorted(drop.stages.items())),
        )
        for drop in group_drops(folders(layout))
    }


CASES = [
    (
        "inbound with archive and error siblings",
        {"/e/in": ["A_1001.csv"], "/e/archive": ["A_1000.csv", "A_0999.csv"], "/e/error": ["A_0998.csv"], "/e": []},
        {("/e/in", "A_{seq}.csv", "into", (("archive", "/e/archive", 2), ("error", "/e/error", 1)))},
    ),
    (
        "archive under the drop folder, by month",
        {"/e/out": ["B_1.xml"], "/e/out/archive/2026-01": ["B_2.xml", "B_3.xml"], "/e/out/archive": []},
        {("/e/out", "B_{seq}.xml", "out_of", (("archive", "/e/out/archive", 2),))},
    ),
    (
        "empty inbound: the drop is found through its archive",
        {"/e/inbound": [], "/e/archive/2026/01": ["C_1.dat"], "/e/outbound": ["D_1.dat"]},
        {
            ("/e/inbound", "C_{seq}.dat", "into", (("archive", "/e/archive", 1),)),
            ("/e/outbound", "D_{seq}.dat", "out_of", ()),
        },
    ),
    (
        "only lifecycle folders: the drop is their parent, read by whoever files what failed",
        {"/e/orders/processed": ["O_1.edi", "O_2.edi"], "/e/orders/error": ["O_3.edi"]},
        {
            (
                "/e/orders",
                "O_{seq}.edi",
                "into",
                (("error", "/e/orders/error", 1), ("processed", "/e/orders/processed", 2)),
            )
        },
    ),
    (
        "a folder that says nothing, whose writer files what it sent",
        {"/e/asn/sent": ["A_1.edi", "A_2.edi"]},
        {("/e/asn", "A_{seq}.edi", "out_of", (("processed", "/e/asn/sent", 2),))},
    ),
    (
        "stages that disagree leave the direction unknown",
        {"/e/mix/sent": ["M_1.edi"], "/e/mix/error": ["M_2.edi"]},
        {("/e/mix", "M_{seq}.edi", "unknown", (("error", "/e/mix/error", 1), ("processed", "/e/mix/sent", 1)))},
    ),
    (
        "a pattern only in the archive does not join another folder's drop",
        {"/e/in": ["A_1.csv"], "/e/archive": ["Z_1.txt"]},
        {("/e/in", "A_{seq}.csv", "into", ()), ("/e", "Z_{seq}.txt", "unknown", (("archive", "/e/archive", 1),))},
    ),
    (
        "two patterns in one folder are two drops",
        {"/e/export": ["STOCK_20260101.csv", "PRICES_20260101.csv"]},
        {("/e/export", "STOCK_{date}.csv", "out_of", ()), ("/e/export", "PRICES_{date}.csv", "out_of", ())},
    ),
]


@pytest.mark.parametrize(("case", "layout", "expected"), CASES, ids=[c[0] for c in CASES])
def test_group_drops(case: str, layout: dict[str, list[str]], expected: set[object]) -> None:
    assert summary(layout) == expected


@pytest.mark.parametrize(
    ("path", "stage"),
    [
        ("/e/archive", ("archive", "/e/archive")),
        ("/e/Archive/2026/01/05", ("archive", "/e/Archive")),
        ("/e/02_failed", ("error", "/e/02_failed")),
        ("/e/in", None),
        ("/e/2026/01", None),
        ("/e/archive/customer_x", None),
    ],
)
def test_stage_of(path: str, stage: tuple[str, str] | None) -> None:
    assert stage_of(path) == stage


def test_drop_counts_join_all_stages() -> None:
    [drop] = group_drops(folders({"/e/in": ["A_3.csv"], "/e/archive": ["A_1.csv", "A_2.csv"]}))
    merged = drop.merged()
    assert (merged.count, merged.bytes) == (3, 300)
    assert drop.direction is Direction.into
