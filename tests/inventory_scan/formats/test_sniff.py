"""Inputs that must not fool the sniffer: encodings, wrapping, several interchanges, hostile XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scan.formats import PREFIX_BYTES, sniff

X12 = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260101*0215*U*00401*000000001*0*P*>~"
    "GS*PO*SENDER*RECEIVER*20260101*0215*1*X*004010~ST*850*0001~BEG*00*SA*PO1**20260101~SE*3*0001~GE*1*1~"
    "IEA*1*000000001~"
)


def test_x12_in_ebcdic() -> None:
    found = sniff(X12.encode("cp500"))
    assert found.formats == ["x12:850"]
    assert found.details["encoding"] == "ebcdic-cp500"


def test_x12_wrapped_at_80_columns_with_crlf() -> None:
    wrapped = "\r\n".join(X12[i : i + 80] for i in range(0, len(X12), 80))
    found = sniff(wrapped.encode())
    assert found.formats == ["x12:850"]
    assert found.details["senders"] == ["SENDER"]


def test_several_x12_interchanges_of_several_types() -> None:
    second = X12.replace("ST*850", "ST*856").replace("GS*PO", "GS*SH")
    found = sniff((X12 + "\n" + second).encode())
    assert found.formats == ["x12:850", "x12:856"]
    assert found.details["interchanges"] == 2


def test_x12_with_utf8_bom() -> None:
    assert sniff(b"\xef\xbb\xbf" + X12.encode()).formats == ["x12:850"]


def test_edifact_release_character_does_not_end_a_segment() -> None:
    text = "UNB+UNOA:3+ACME:14+SHOP:14+260101:0200+1'UNH+1+ORDERS:D:96A:UN'FTX+AAA+++Don?'t split'UNT+3+1'UNZ+1+1'"
    found = sniff(text.encode())
    assert found.formats == ["edifact:ORDERS"]
    assert found.details["senders"] == ["ACME"]


def test_two_edifact_interchanges_in_one_file(corpora: Path) -> None:
    data = (corpora / "filedrop/edifact/SLSRPT_from-bots-plugins_slsrpt01.edi").read_bytes()
    found = sniff(data[:PREFIX_BYTES], len(data) > PREFIX_BYTES)
    assert found.details["interchanges"] == 2
    assert set(found.details["receivers"]) == {"8712345678906", "4007060000007"}


def test_tradacoms_is_not_edifact(corpora: Path) -> None:
    found = sniff((corpora / "filedrop/tradacoms/ORDHDR_from-bots-plugins_orders01org.tra").read_bytes())
    assert found.family == "tradacoms"


def test_sap_idoc_flat_file() -> None:
    control = (
        "EDI_DC40".ljust(10)
        + "800"
        + "0000000000123456"
        + "740 "
        + "30"
        + "2"
        + " "
        + " "
        + " "
        + "ORDERS05".ljust(30)
        + "".ljust(30)
        + "ORDERS".ljust(30)
    )
    found = sniff((control + "\nE2EDK01005" + " " * 40 + "\n").encode())
    assert (found.family, found.formats, found.details["message_type"]) == ("idoc", ["idoc:ORDERS05"], "ORDERS")


def test_billion_laughs_is_not_expanded() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    doc = f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(entities)}]><lolz>&lol9;</lolz>'
    found = sniff(doc.encode())
    assert found.formats == ["xml:lolz"]


def test_xxe_does_not_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    doc = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
    found = sniff(doc.encode())
    assert found.formats == ["xml:r"]
    assert "TOP-SECRET-VALUE" not in repr(found)


def test_utf16_xml_with_namespace_prefix() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><b:Order xmlns:b="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>'
    assert sniff(doc.encode("utf-16")).formats == ["ubl:Order"]


def test_soap_envelope_names_its_operation() -> None:
    doc = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<m:GetOrderStatus xmlns:m="urn:acme:orders"/></s:Body></s:Envelope>'
    )
    assert sniff(doc.encode()).formats == ["soap:{urn:acme:orders}GetOrderStatus"]


def test_malformed_xml_is_unknown_not_a_crash() -> None:
    found = sniff(b"<<<not xml at all>>>")
    assert found.family == "unknown"
    assert "error" in found.details


def test_xml_cut_by_the_prefix_still_names_its_root() -> None:
    doc = '<?xml version="1.0"?><Orders xmlns="urn:acme">' + "<Order><Id>1</Id></Order>" * 5000
    data = doc.encode()
    found = sniff(data[:PREFIX_BYTES], truncated=True)
    assert found.formats == ["xml:{urn:acme}Orders"]


@pytest.mark.parametrize(
    ("data", "formats"),
    [
        (b'{"orders": [{"id": 1}]}', ["json"]),
        (b'{"id": 1}\n{"id": 2}\n', ["jsonl"]),
        (b'[{"id": 1}, {"id": 2}]', ["json"]),
    ],
)
def test_json(data: bytes, formats: list[str]) -> None:
    assert sniff(data).formats == formats


def test_binary_junk_is_unknown() -> None:
    found = sniff(bytes(range(256)) * 8)
    assert (found.family, found.details["looks_like"]) == ("unknown", "binary")


def test_gzip_is_binary() -> None:
    import gzip

    assert sniff(gzip.compress(X12.encode())).details["looks_like"] == "binary"


def test_empty_file() -> None:
    assert sniff(b"").family == "empty"


def test_prose_is_not_csv_or_fixed() -> None:
    text = b"Dear partner,\nplease find attached our new price list.\nKind regards\n"
    assert sniff(text).family == "unknown"


def test_isa_lookalike_that_is_not_x12() -> None:
    assert sniff(b"ISA is a savings account, see notes.txt\n").family == "unknown"


def test_csv_with_quoted_delimiters_and_header() -> None:
    text = b'sku,description,qty\n"A-1","Bolt, M6",10\n"A-2","Nut, M6",25\n"A-3","Washer",7\n'
    found = sniff(text)
    assert found.formats == ["csv"]
    assert found.details | {"consistent_rows": 1.0} == {
        "delimiter": ",",
        "columns": 3,
        "header": True,
        "consistent_rows": 1.0,
        "header_names": ["sku", "description", "qty"],
    }


# Envelopes read the way translators read them: fixed ISA positions, acknowledgements, banners.


def test_x12_whose_separators_are_control_characters() -> None:
    # Element separator GS (0x1D), component US (0x1F), segment terminator FS (0x1C), as some VANs send.
    text = X12.replace("*", "\x1d").replace(">~", "\x1f\x1c").replace("~", "\x1c")
    found = sniff(text.encode())
    assert found.formats == ["x12:850"]
    assert found.details["separators"] == {"element": "\x1d", "component": "\x1f", "segment": "\x1c"}
    assert found.details["senders"] == ["SENDER"]


def test_x12_separators_come_from_fixed_isa_positions() -> None:
    # ISA16 is ':' and the terminator a newline; the element separator also appears in the data.
    text = X12.replace(">~", ":\n").replace("~", "\n")
    found = sniff(text.encode())
    assert found.details["separators"] == {"element": "*", "component": ":", "segment": "\n"}
    assert found.formats == ["x12:850"]


def test_x12_interchange_of_acknowledgements_only() -> None:
    isa = X12.split("GS*")[0]
    found = sniff((isa + "TA1*000000001*260101*0215*A*000~IEA*0*000000001~").encode())
    assert found.family == "x12"
    assert found.formats == ["x12:TA1"]
    assert found.details["interchange_acknowledgements"] == 1
    assert found.details["functional_groups"] == {}


def test_x12_with_groups_of_different_functional_ids() -> None:
    isa, rest = X12.split("GS*", 1)
    invoice = "GS*IN*SENDER*RECEIVER*20260101*0215*2*X*004010~ST*810*0002~BIG*20260101*INV1~SE*3*0002~GE*1*2~"
    found = sniff((isa + "GS*" + rest.replace("IEA*1", invoice + "IEA*2")).encode())
    assert found.formats == ["x12:810", "x12:850"]
    assert found.details["functional_groups"] == {"PO": 1, "IN": 1}


EDIFACT = (
    "UNA:+.? 'UNB+UNOC:3+SENDER:14+RECEIVER:14+260101:0215+1'"
    "UNG+ORDERS+SENDER+RECEIVER+260101:0215+1+UN+D:96A'"
    "UNH+1+ORDERS:D:96A:UN:EAN008'BGM+220+PO1+9'UNT+3+1'UNE+1+1'UNZ+1+1'"
)


def test_edifact_after_a_mailbox_banner() -> None:
    banner = "From: mailbox@van.example\r\nSubject: download 0042\r\n\r\n=== BEGIN ===\r\n"
    found = sniff((banner + EDIFACT).encode())
    assert found.formats == ["edifact:ORDERS"]
    assert found.details["groups"] == {"ORDERS": 1}
    assert found.warnings == [f"{len(banner)} bytes before the envelope skipped (a banner or mailbox header)"]


def test_junk_beyond_the_limit_is_not_searched() -> None:
    banner = ("x" * 100 + "\n") * 50  # 5 KB of lines before the envelope
    assert sniff((banner + EDIFACT).encode()).family != "edifact"


def test_tradacoms_after_a_banner() -> None:
    text = "VAN HEADER 0001\nSTX=ANA:1+5000000000000:SENDER+5010000000000:BUYER+260101:021500+1'MHD=1+ORDHDR:9'END=1'"
    found = sniff(text.encode())
    assert found.formats == ["tradacoms:ORDHDR"]
    assert found.details["senders"] == ["5000000000000"]
