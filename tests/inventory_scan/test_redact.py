"""The redaction step every catalog string passes through."""

import pytest

from inventory_scan.catalog import Evidence, Interface, Kind, ScanWarning, Source
from inventory_scan.redact import MASK, is_secret_name, printable, redact, redact_tree

CASES = [
    ("http://wsuser:Sup3rSecret@host/svc?wsdl&apikey=K3YK3Y", "http://host/svc?wsdl&apikey=***"),
    ("jdbc:mysql://dbuser:DbPw55@host/db", "jdbc:mysql://host/db"),
    ("jdbc:oracle:thin:scott/tiger@host:1521/db", "jdbc:oracle:thin:host:1521/db"),
    ("vfs:sftp://u:p@ss@host/in", "vfs:sftp://host/in"),
    ("amqp://guest:guest@rabbit:5672/vh", "amqp://rabbit:5672/vh"),
    ("ftp://user@host/in?password=x&binary=true", "ftp://host/in?password=***&binary=true"),
    ("Driver=x;Server=h;UID=u;PWD=abc;", "Driver=x;Server=h;UID=u;PWD=***;"),
    ("https://acct.blob/c?sv=1&sig=AbC%2F&se=2", "https://acct.blob/c?sv=1&sig=***&se=2"),
    ('<jdbc password="hunter2" user="u"/>', '<jdbc password=*** user="u"/>'),
    ("db.password = s3cr3t", "db.password = ***"),
    ("client_secret: abc", "client_secret: ***"),
    ("X-Api-Key=abc", "X-Api-Key=***"),
    # Placeholders say where a secret comes from; they are kept.
    ("password=${db.pw}", "password=${db.pw}"),
    ("PWD=$(LedgerPassword)", "PWD=$(LedgerPassword)"),
    # Not secrets.
    ("table: orders", "table: orders"),
    ("jms:queue:orders", "jms:queue:orders"),
    ("mailto:ops@example.com", "mailto:ops@example.com"),
    ("file:///in/ORD_*.csv", "file:///in/ORD_*.csv"),
    ("keyspace=orders", "keyspace=orders"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("db.password", True),
        ("PWD", True),
        ("apiKey", True),
        ("sas", True),
        ("connectionString", True),
        ("keys", True),
        ("bypass", False),
        ("monkey", False),
        ("host", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_tree_masks_secret_named_keys_but_keeps_placeholders() -> None:
    tree = {"password": "hunter2", "nested": [{"token": "t0k"}, {"token": "${env:TOKEN}"}], "url": "sftp://u:p@h/x"}
    assert redact_tree(tree) == {
        "password": MASK,
        "nested": [{"token": MASK}, {"token": "${env:TOKEN}"}],
        "url": "sftp://h/x",
    }


def test_catalog_records_redact_what_they_hold() -> None:
    interface = Interface.build(
        kind=Kind.esb_endpoint,
        system="erp",
        locator="http://wsuser:Sup3rSecret@host/svc?apikey=K3YK3Y",
        name="http://wsuser:Sup3rSecret@host/svc",
        protocol="http",
        evidence=[Evidence(source="a.xml", detail="address http://u:Pw1@h/")],
        attributes={"config": {"password": "Pw2", "url": "jdbc:mysql://u:Pw3@h/db"}},
    )
    again = Interface.build(
        kind=Kind.esb_endpoint,
        system="erp",
        locator="http://other:Changed@host/svc?apikey=NEW",
        name="x",
        protocol="http",
    )
    source = Source(
        locator="http://u:Pw4@host/svc?wsdl",
        kind="esb",
        scanned_at="2026-01-01T00:00:00Z",
        reason="cannot fetch http://u:Pw5@host/",
        warnings=[ScanWarning(path="ftp://u:Pw6@h/", message="token=Pw7")],
    )
    dumped = interface.model_dump_json() + source.model_dump_json()
    for secret in ("Sup3rSecret", "K3YK3Y", "Pw1", "Pw2", "Pw3", "Pw4", "Pw5", "Pw6", "Pw7", "wsuser"):
        assert secret not in dumped
    assert interface.id == again.id  # a changed password keeps the interface's id


def test_printable_shows_escape_codes_as_marks() -> None:
    assert printable("a\x1b[31mred\x07") == "a?[31mred?"
