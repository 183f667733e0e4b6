import pytest

from inventory_scan.files.patterns import fallback_pattern, name_pattern, shape

CASES = [
    ("ORD_20260101_000123.csv", "ORD_{date}_{seq}.csv"),
    ("IN0001.dat", "IN{seq}.dat"),
    ("IN1.dat", "IN{seq}.dat"),
    ("X12_850_00017.edi", "X12_850_{seq}.edi"),
    ("orders_v2_20260101.csv", "orders_v2_{date}.csv"),
    ("INV-2026-01-05.xml", "INV-{date}.xml"),
    ("ASN_20260105T021500.xml", "ASN_{datetime}.xml"),
    ("ASN_20260105021500.xml", "ASN_{datetime}.xml"),
    ("stock 2026-01-05 14-30.csv", "stock {datetime}.csv"),
    ("stock_2026.01.05_14.30.00.csv", "stock_{datetime}.csv"),
    ("DELFOR_31122025_0001.edi", "DELFOR_{date}_{seq}.edi"),
    ("ack_3f2a9c1e-1b2c-4d5e-8f90-123456789abc.xml", "ack_{uuid}.xml"),
    ("export_0a1b2c3d4e5f6a7b.json", "export_{hex}.json"),
    ("PO4500012345.txt", "PO{seq}.txt"),
    ("report.csv", "report.csv"),
    ("file7.csv", "file{seq}.csv"),
    # 8 digits that are no date stay a sequence number
    ("00000001.dat", "{seq}.dat"),
    ("SEQ_99999999.dat", "SEQ_{seq}.dat"),
]


@pytest.mark.parametrize(("name", "pattern"), CASES)
def test_name_pattern(name: str, pattern: str) -> None:
    assert name_pattern(name) == pattern


def test_names_of_one_shape_share_a_pattern() -> None:
    assert shape("ORD_20260101_000123.csv") == shape("ORD_20261231_999999.csv")
    assert shape("IN1.dat") != shape("IN10.dat")  # different shapes, same pattern
    assert name_pattern("IN1.dat") == name_pattern("IN10.dat")


def test_shape_of_a_name_that_is_not_utf8() -> None:
    name = b"ORD_\xff_0001.csv".decode("utf-8", "surrogateescape")
    assert shape(name) == b"ORD_\xff_9999.csv"


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("customer_smith.csv", "{name}.csv"),
        ("README", "{name}"),
        (".hidden", "{name}"),
        ("a.verylongextension", "{name}"),
    ],
)
def test_fallback_pattern(name: str, pattern: str) -> None:
    assert fallback_pattern(name) == pattern
