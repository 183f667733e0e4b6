"""An export's records in every format a batch compares: the public samples read into rows, and
two exports of one format compared record by record."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.batches import compare_exports
from flows.records import RecordsError, open_records
from specs.flows import Records


def rows(path: Path, **spec: object) -> tuple[list[str], list[list[str]]]:
    header, found, handle = open_records(path, Records.model_validate(spec))
    with handle:
        return header, list(found)


def test_an_x12_846_is_a_record_per_lin_loop_with_qualified_quantities(corpora: Path) -> None:
    header, found = rows(
        corpora / "filedrop/x12/846_from-oopfactory-x12parser_Example1.txt",
        format="x12",
        key=["item"],
        record="LIN",
        fields={"item": "LIN/03", "on_hand": "QTY[01=34]/02", "on_order": "QTY[01=QH]/02"},
    )
    assert header == ["item", "on_hand", "on_order"] and found == [["46L5055", "5250", "100"]]


def test_an_edifact_invrpt_reads_its_lines_and_components(corpora: Path) -> None:
    _, found = rows(
        corpora / "filedrop/edifact/INVRPT_from-go-edilib_invrpt1_no-UNB.edi",
        format="edifact",
        key=["gtin"],
        record="LIN",
        fields={"gtin": "LIN/03/0", "quantity": "QTY[01/0=145]/01/1"},
    )
    assert found[:3] == [["5412345100102", "55"], ["5412345100560", "12"], ["5412345100782", "325"]]


def test_a_fixed_width_file_reads_its_record_lines_by_position(corpora: Path) -> None:
    _, found = rows(
        corpora / "filedrop/fixed/ORDERS-inhouse_from-bots-plugins_060101.fix",
        format="fixed",
        key=["line", "gtin"],
        record="LIN",
        columns=[{"name": "line", "start": 4, "width": 6}, {"name": "gtin", "start": 10, "width": 13}],
    )
    assert found[:2] == [["000001", "8712345873151"], ["000002", "8712345873182"]]


def test_an_xml_file_reads_each_record_element_in_any_namespace(corpora: Path) -> None:
    _, found = rows(
        corpora / "filedrop/ubl/Invoice_from-ph-ubl_UBL-Invoice-2.0-Example-NS1_prefixed.xml",
        format="xml",
        key=["line"],
        record="InvoiceLine",
        fields={
            "line": "ID",
            "quantity": "InvoicedQuantity",
            "unit": "InvoicedQuantity/@unitCode",
            "order": "OrderLineReference/OrderReference/ID",
        },
    )
    assert found[0] == ["A", "100", "KGM", "AEG012345"]


def test_two_846s_are_compared_record_by_record(corpora: Path, tmp_path: Path) -> None:
    sample = corpora / "filedrop/x12/846_from-oopfactory-x12parser_Example1.txt"
    legacy, cloud = tmp_path / "legacy.x12", tmp_path / "cloud.x12"
    shutil.copy(sample, legacy)
    cloud.write_bytes(sample.read_bytes().replace(b"QTY~34~5250", b"QTY~34~5200"))
    spec = Records.model_validate(
        {"format": "x12", "key": ["item"], "record": "LIN", "fields": {"item": "LIN/03", "on_hand": "QTY[01=34]/02"}}
    )
    found = compare_exports(legacy, cloud, spec, [])
    assert (found.records, found.mismatches, found.only_legacy, found.only_cloud) == (1, 1, 0, 0)
    [(key, [difference])] = found.samples
    assert (key, difference.path, difference.legacy, difference.cloud) == ("46L5055", "/record/on_hand", "5250", "5200")


def test_a_large_edifact_export_is_read_a_segment_at_a_time(tmp_path: Path) -> None:
    """A release character at a chunk's edge and 200,000 lines: every record, none split."""
    lines = "".join(f"LIN+{n}++{n:013d}:SRV'QTY+145:{n % 97}'FTX+AAA+++a?'b'" for n in range(1, 200_001))
    path = tmp_path / "big.edi"
    path.write_text(f"UNA:+.? 'UNB+UNOC:3+A+B+261207:0200+1'UNH+1+INVRPT:D:01B:UN'{lines}UNT+2+1'UNZ+1+1'")
    _, found, handle = open_records(
        path,
        Records.model_validate(
            {
                "format": "edifact",
                "key": ["gtin"],
                "record": "LIN",
                "fields": {"gtin": "LIN/03/0", "quantity": "QTY/01/1", "note": "FTX/04"},
            }
        ),
    )
    with handle:
        count = 0
        for count, row in enumerate(found, start=1):
            assert row == [f"{count:013d}", str(count % 97), "a'b"]
    assert count == 200_000


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"format": "x12", "key": ["sku"]}, "needs record"),
        ({"format": "fixed", "key": ["sku"]}, "needs columns"),
        ({"format": "x12", "key": ["sku"], "record": "LIN", "fields": {"sku": "LIN.03"}}, "SEG/NN"),
        ({"format": "xml", "key": ["sku"], "record": "Item", "fields": {"qty": "Qty"}}, "no column"),
    ],
)
def test_a_records_spec_that_cannot_be_read_is_refused_at_load(spec: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Records.model_validate(spec)


def test_hostile_xml_is_refused_without_expanding_entities(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        "<r><Item><Sku>&b;</Sku></Item><Item><Sku>2</Sku>"
    )
    _, found, handle = open_records(
        path, Records.model_validate({"format": "xml", "key": ["sku"], "record": "Item", "fields": {"sku": "Sku"}})
    )
    with handle, pytest.raises(RecordsError, match="not well-formed"):
        for row in found:
            assert "aaaa" not in row[0]
