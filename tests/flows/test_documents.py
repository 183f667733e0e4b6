"""Partner documents as data: the public X12 and EDIFACT samples parsed into stable JSON paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.compare import Comparator, Rules
from flows.documents import NOISE, DocumentError, detect, parse, value_at


def test_an_x12_850_reads_its_partner_control_and_po_number(corpora: Path) -> None:
    order = parse((corpora / "filedrop/x12/850_from-bots-plugins_850-004010-ascii1.x12").read_bytes())
    assert (order.kind, order.sender, order.control, order.groups) == ("x12", "1234567890", "000000183", ["183"])
    assert order.types == ["850"] and order.numbers == ["12345678"]
    assert value_at(order, "/ST/*/BEG/03") == "12345678"
    assert [line["02"] for line in order.data["ST"][0]["PO1"]] == ["1", "2", "1", "1"]  # a list, always
    assert value_at(order, "/ST/*/PO1/*/04") == "23.52"
    assert not order.acknowledgement


@pytest.mark.parametrize("name", ["850-004010-ascii-lf.x12", "850-02_pipe.x12", "850_01_tilde-as-element-sep.x12"])
def test_every_delimiter_set_gives_the_same_shape(corpora: Path, name: str) -> None:
    order = parse((corpora / f"filedrop/x12/850_from-bots-plugins_{name}").read_bytes())
    assert order.types and order.types[0] == "850" and order.sender
    assert isinstance(order.data["ST"][0]["PO1"], list)


def test_a_997_says_which_group_it_answers_and_its_verdict(corpora: Path) -> None:
    ack = parse((corpora / "filedrop/x12/997_from-bots-plugins_997_1.x12").read_bytes())
    assert ack.answers == ["214"] and ack.accepted is True and ack.acknowledgement


@pytest.mark.parametrize(
    ("name", "numbers"),
    [
        ("810_from-bots-plugins_810_1.x12", ["95018017", "ordernumber"]),  # the invoice's number, then its PO's
        ("856_from-bots-plugins_856_1.x12", ["15918861602", "ordernumber"]),
    ],  # the shipment's, then its order's
)
def test_an_invoice_or_a_shipment_names_the_order_it_is_for(corpora: Path, name: str, numbers: list[str]) -> None:
    assert parse((corpora / "filedrop/x12" / name).read_bytes()).numbers == numbers


def test_an_edifact_orders_reads_its_partner_and_document_number(corpora: Path) -> None:
    order = parse((corpora / "filedrop/edifact/ORDERS_from-pydifact_order.edi").read_bytes())
    assert (order.kind, order.sender, order.control) == ("edifact", "12345678", "807")
    assert order.types == ["ORDERS"] and order.numbers == ["801715918011"]
    assert value_at(order, "/UNH/*/BGM/02") == "801715918011"
    assert value_at(order, "/UNH/*/QTY/*/01/1") == "8"
    assert [party["01"] for party in order.data["UNH"][0]["NAD"]] == ["SU", "BY", "DP"]


def test_every_edi_sample_parses(corpora: Path) -> None:
    samples = sorted((corpora / "filedrop/edifact").glob("*.edi")) + sorted((corpora / "filedrop/x12").glob("*"))
    assert len(samples) >= 15
    for sample in samples:
        document = parse(sample.read_bytes())
        assert document.types, sample.name


def test_contrl_answers_the_interchange_it_acknowledges() -> None:
    contrl = parse(
        b"UNB+UNOC:3+CLOUD:ZZ+5012345000017:14+261207:0900+77'UNH+1+CONTRL:D:3:UN'"
        b"UCI+807+5012345000017:14+CLOUD:ZZ+7'UNT+3+1'UNZ+1+77'"
    )
    assert contrl.answers == ["807"] and contrl.accepted is True
    rejected = parse(b"UNB+UNOC:3+A+B+261207:0900+78'UNH+1+CONTRL:D:3:UN'UCI+807+B+A+4'UNT+3+1'UNZ+1+78'")
    assert rejected.accepted is False


def test_the_release_character_keeps_a_separator_in_a_value() -> None:
    order = parse(b"UNA:+.? 'UNB+UNOC:3+A+B+261207:0900+1'UNH+1+ORDERS:D:96A:UN'BGM+220+PO?+1?'X+9'UNT+3+1'")
    assert order.numbers == ["PO+1'X"]


def test_two_sides_acknowledging_the_same_file_differ_only_on_what_matters() -> None:
    def ack(control: str, stamp: str, verdict: str) -> bytes:
        return (
            f"ISA*00*          *00*          *ZZ*ERP            *ZZ*PARTNER        *{stamp}*1200*U*00401*"
            f"{control}*0*P*>~GS*FA*ERP*PARTNER*20261207*1200*{control[-3:]}*X*004010~ST*997*0001~AK1*PO*183~"
            f"AK9*{verdict}*1*1*1~SE*4*0001~GE*1*{control[-3:]}~IEA*1*{control}~"
        ).encode()

    compare = Comparator(Rules(ignore=list(NOISE)))
    legacy, cloud = parse(ack("000000001", "261207", "A")), parse(ack("000000777", "261208", "A"))
    assert compare.compare(legacy.data, cloud.data) == []  # other control numbers and dates: the same answer
    rejected = parse(ack("000000778", "261208", "R"))
    [difference] = compare.compare(legacy.data, rejected.data)
    assert difference.path == "/ST/*/AK9/01" and (difference.legacy, difference.cloud) == ("A", "R")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02binary",
        b"ISA*00*short",
        b"UNA:+",
        b"UNH+1+ORDERS'BGM",
        b"hello world",
        b"ISA*00*" + b"x" * 200,
        b"UNB+UNOC:3+A+B+1+2'UNZ+0+2'",
    ],
)
def test_what_is_no_document_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(DocumentError):
        parse(data)


def test_a_file_cut_short_is_refused(corpora: Path) -> None:
    whole = (corpora / "filedrop/x12/850_from-bots-plugins_850-004010-ascii1.x12").read_bytes()
    with pytest.raises(DocumentError, match="cut short"):
        parse(whole[: whole.index(b"SE*")])
    edifact = (corpora / "filedrop/edifact/ORDERS_from-pydifact_order.edi").read_bytes()
    with pytest.raises(DocumentError, match="cut short"):
        parse(edifact[: edifact.index(b"UNT")])


def test_detect() -> None:
    assert detect(b"\xef\xbb\xbfISA*00") == "x12"
    assert detect(b"UNA:+.? 'UNB") == "edifact"
    assert detect(b"po,sku,qty\n1,2,3\n") == "csv"
    assert detect(b"%PDF-1.4") is None
    rows = parse(b"po;sku;qty\nPO-1;SKU-9;3\n")
    assert value_at(rows, "/rows/*/sku") == "SKU-9"


def test_an_xml_order_is_json_by_local_names_and_its_external_doctype_is_never_fetched(corpora: Path) -> None:
    order = parse((corpora / "filedrop/cxml/OrderRequest_from-cxml-php_OrderRequest.xml").read_bytes())
    assert order.kind == "xml" and order.types == ["cXML"]
    assert value_at(order, "/cXML/Header/From/Credential/Identity") == "inbound@prominate-platform.com"
    assert value_at(order, "/cXML/Request/OrderRequest/OrderRequestHeader/@orderID") == "DO1234"
    ubl = parse((corpora / "filedrop/ubl/Invoice_from-ph-ubl_UBL-Invoice-2.0-Example-NS1_prefixed.xml").read_bytes())
    assert value_at(ubl, "/Invoice/ID") == "A00095678"  # the prefixes (Bob:, Harry:) resolved away


def test_xml_that_declares_its_own_entities_is_refused() -> None:
    with pytest.raises(DocumentError, match="declares entities"):
        parse(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><r>&a;</r>')
    with pytest.raises(DocumentError, match="not well-formed"):
        parse(b"<Order><Line></Order>")
