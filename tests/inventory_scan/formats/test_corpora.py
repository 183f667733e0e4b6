"""Format detection on every real document in shared/corpora/filedrop, as named and renamed.

The expected format, document types and party ids come from that folder's SOURCES.tsv, written
by hand from the files themselves.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from inventory_scan import FileScan, FileSource
from inventory_scan.formats import PREFIX_BYTES, sniff
from tests.conftest import CORPORA


@dataclass(frozen=True)
class Expected:
    file: str
    family: str
    formats: frozenset[str]
    senders: frozenset[str]
    receivers: frozenset[str]
    header: bool | None  # CSV only


def _parties(text: str) -> tuple[frozenset[str], frozenset[str]]:
    if m := re.match(r"ISA06=([^/]+)/ISA08=(.+)", text):
        return frozenset([m[1].strip()]), frozenset([m[2].strip()])
    if m := re.match(r"UNB sender=([^:]+):\S+ / recipient=([^:]+):", text):
        return frozenset([m[1]]), frozenset([m[2]])
    if m := re.match(r"STX from=([^:]+):.* / to=([^:]+):", text):
        return frozenset([m[1]]), frozenset([m[2]])
    return frozenset(), frozenset()


def _expected(row: dict[str, str]) -> Expected:
    family, doc = row["format"], row["doc_type"]
    if family == "x12":
        formats = {"x12:" + re.findall(r"X12 (\d+)", doc)[0]}
    elif family == "edifact":
        formats = {"edifact:" + re.findall(r"EDIFACT ([A-Z]+?)(?:x\d+)? ", doc)[0]}
    elif family == "ubl":
        formats = {f"ubl:{doc.split()[1]}"}
    elif family == "cxml":
        formats = {f"cxml:{doc.split(': ')[1].split()[0]}"}
    elif family == "tradacoms":
        formats = {f"tradacoms:{kind}" for kind in doc.split()[1].split(",")}
    else:
        formats = {family}
    senders, receivers = _parties(row["sender_receiver_ids"])
    header = ("no header row" not in doc) if family == "csv" else None
    return Expected(row["local_file"], family, frozenset(formats), senders, receivers, header)


def _rows() -> list[Expected]:
    table = CORPORA / "filedrop" / "SOURCES.tsv"
    if not table.is_file():
        return []
    with table.open(encoding="utf-8") as handle:
        return [_expected(row) for row in csv.DictReader(handle, delimiter="\t")]


ROWS = _rows()


def test_every_corpus_file_is_covered(corpora: Path) -> None:
    listed = {row.file for row in ROWS}
    on_disk = {str(p.relative_to(corpora / "filedrop")) for p in (corpora / "filedrop").rglob("*") if p.is_file()}
    assert on_disk - {"SOURCES.tsv"} == listed


@pytest.mark.parametrize("row", ROWS, ids=[row.file for row in ROWS])
def test_format_from_content(corpora: Path, row: Expected) -> None:
    data = (corpora / "filedrop" / row.file).read_bytes()
    found = sniff(data[:PREFIX_BYTES], len(data) > PREFIX_BYTES)
    assert found.family == row.family
    assert set(found.formats) == row.formats
    if row.senders:
        # SOURCES.tsv names the first interchange's parties; a file may hold more interchanges.
        assert row.senders <= set(found.details["senders"])
        assert row.receivers <= set(found.details["receivers"])
    if row.header is not None:
        assert found.details["header"] is row.header


def test_renamed_copies_scan_to_the_same_formats(corpora: Path, tmp_path: Path) -> None:
    """Real drops are named IN0001.dat: one folder per document, neutral names, through a full scan."""
    for n, row in enumerate(ROWS):
        folder = tmp_path / f"partner{n:02d}" / "in"
        folder.mkdir(parents=True)
        (folder / f"IN{n:04d}.dat").write_bytes((corpora / "filedrop" / row.file).read_bytes())
    catalog, errors = FileScan(jobs=1).run([FileSource(path=tmp_path)])
    assert errors == []
    by_folder = {i.attributes["folder"]: i for i in catalog.interfaces}
    for n, row in enumerate(ROWS):
        drop = by_folder[str(tmp_path / f"partner{n:02d}" / "in")]
        assert drop.name == "IN{seq}.dat"
        assert set(drop.formats) == row.formats, row.file
