"""The catalog measured against truth: precision and recall per scanner family on shared/corpora.

The truth is written by hand, from the files themselves, never from a scan:
- file drops: `shared/corpora/filedrop/SOURCES.tsv` (format, document types, party ids per file),
  with the facts it leaves out in `truth/filedrop_more.tsv`;
- database objects: `truth/db_triggers.tsv` (every trigger with its table, timing and events);
- ESB: the flows and endpoints of each document (`esb/test_corpora.py`), the links between flows,
  the WSDL's operations and the BizTalk receive locations below;
- Spring Integration: the project's own samples in `esb/spring_integration/` (SOURCES.tsv), their
  flows, endpoints and the ids each endpoint is cataloged under, below.
Each family prints its figures; the suite fails below 100 % on the corpora we have.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inventory_scan import Kind
from inventory_scan.db.scan import DbScan, DbSource
from inventory_scan.esb import EsbScan, EsbSource
from inventory_scan.formats import PREFIX_BYTES, sniff
from tests.inventory_scan.esb.test_corpora import EXPECTED as ESB_FLOWS
from tests.inventory_scan.formats.test_corpora import ROWS as FILE_ROWS

HERE = Path(__file__).parent
Fact = tuple[str, ...]

ESB_CALLS = {
    ("xml", "java"),
    ("json", "java"),
    ("java", "csv"),
    ("query-update-route-part1", "query-update-route-part2"),
    ("FtpReceivePort", "FtpSendport"),
    ("FileReceivePort", "FileSendPort"),
}
ESB_OPERATIONS = {f"LBService1.{op}" for op in ("sleepOperation", "setClientName", "sampleOperation", "loadOperation")}
ESB_LOCATIONS = {
    ("FtpReceiveLocation", "ftp://127.0.0.1:21/receive"),
    ("FileReceiveLocation", "file:///C:/BiztalkApp/Input"),
}


def _measure(family: str, truth: set[Fact], found: set[Fact], capsys: pytest.CaptureFixture[str]) -> None:
    hits = truth & found
    precision = len(hits) / len(found) if found else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    with capsys.disabled():
        print(
            f"\n  truth · {family:<9} {len(truth):>4} facts, {len(found):>4} found · "
            f"precision {precision:.1%} · recall {recall:.1%}"
        )
    assert (found - truth, truth - found) == (set(), set()), f"{family}: wrong facts, then missed facts"


def test_file_drop_formats(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (HERE / "truth" / "filedrop_more.tsv").open(encoding="utf-8") as handle:
        truth: set[Fact] = {(r["file"], r["fact"], r["value"]) for r in csv.DictReader(handle, delimiter="\t")}
    found: set[Fact] = set()
    for row in FILE_ROWS:
        truth |= {(row.file, "format", f) for f in row.formats}
        truth |= {(row.file, "sender", s) for s in row.senders} | {(row.file, "receiver", r) for r in row.receivers}
        data = (corpora / "filedrop" / row.file).read_bytes()
        detected = sniff(data[:PREFIX_BYTES], len(data) > PREFIX_BYTES)
        found |= {(row.file, "format", f) for f in detected.formats}
        if row.senders or row.receivers:  # party ids are facts only where the envelope carries them
            found |= {(row.file, "sender", s) for s in detected.details.get("senders", [])}
            found |= {(row.file, "receiver", r) for r in detected.details.get("receivers", [])}
    _measure("files", truth, found, capsys)


def test_database_triggers(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (HERE / "truth" / "db_triggers.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    truth = {(r["file"], r["trigger"], r["table"], r["timing"], r["events"]) for r in rows}
    found: set[Fact] = set()
    for file in sorted({r["file"] for r in rows}):
        catalog, errors = DbScan().run([DbSource(ddl=corpora / "sql" / file)])
        assert errors == []
        found |= {
            (
                file,
                i.name.rsplit(".", 1)[-1].strip('`"[]'),
                str(i.attributes["table"]).rsplit(".", 1)[-1].strip('`"[]'),
                {"FOR": "AFTER"}.get(str(i.attributes["timing"]).upper(), str(i.attributes["timing"]).upper()),
                ",".join(sorted(str(e).upper() for e in i.attributes["events"])),
            )
            for i in catalog.interfaces
            if i.kind is Kind.db_trigger
        }
    _measure("database", truth, found, capsys)


def test_esb_flows_endpoints_and_links(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth: set[Fact] = set()
    for product, flows in ESB_FLOWS.values():
        for name, endpoints in flows.items():
            truth.add(("flow", product, name))
            truth |= {("endpoint", name, *endpoint) for endpoint in endpoints}
    truth |= {("calls", *pair) for pair in ESB_CALLS}
    truth |= {("operation", name) for name in ESB_OPERATIONS}
    truth |= {("location", *location) for location in ESB_LOCATIONS}

    catalog, errors = EsbScan().run([EsbSource(str(corpora / "esb"))])
    assert errors == []
    names = {i.id: i.name for i in catalog.interfaces}
    found: set[Fact] = set()
    for i in catalog.interfaces:
        if i.kind is Kind.esb_flow:
            found.add(("flow", str(i.attributes["product"]), i.name))
            found |= {("endpoint", i.name, e["role"], e["protocol"], e["locator"]) for e in i.attributes["endpoints"]}
        elif i.kind is Kind.soap_operation:
            found.add(("operation", i.name))
        elif i.kind is Kind.esb_endpoint and "location" in i.attributes:
            found.add(("location", i.name, i.locator))
    found |= {("calls", names[e.source], names[e.target]) for e in catalog.edges if e.relation == "calls"}
    _measure("esb", truth, found, capsys)


# Spring Integration as its own project writes it (esb/spring_integration/SOURCES.tsv): `<beans>` and
# `<beans:beans>` roots, int-ip, int-jdbc (queries and stored procedures), int-ws in a chain, jms,
# ftp with its session factory's host from the project's user.properties, messaging gateways.
SPRING = "tests/inventory_scan/esb/spring_integration"
TCP_CLIENT, TCP_SERVER = "tcp://localhost:#{crLfServer.port}", "tcp://{app}:${availableServerSocket:0}"
COFFEE, PERSON = "java:org.springframework.integration.service.CoffeeService", "jdbc:datasource#Person"
SPRING_FLOWS: dict[str, set[tuple[str, str, str]]] = {
    "gw": {
        ("source", "java", "java:org.springframework.integration.samples.tcpclientserver.SimpleGateway"),
        ("target", "tcp", TCP_CLIENT),
    },
    "gatewayCrLf": {("source", "tcp", TCP_SERVER)},
    "ws:outbound-gateway#0": {("target", "soap", "http://www.w3schools.com/xml/tempconvert.asmx")},
    "gateway": {
        ("source", "java", COFFEE),
        ("target", "db", "jdbc:dataSource#FIND_COFFEE"),
        ("target", "db", "jdbc:dataSource#FIND_ALL_COFFEE_BEVERAGES"),
    },
    "jdbc:stored-proc-inbound-channel-adapter#0": {("source", "db", "jdbc:dataSource#FIND_ALL_COFFEE_BEVERAGES")},
    "stdin": {("target", "jms", "jms:queue:requestQueue")},
    "ftpOutbound": {("target", "ftp", "ftp://localhost:${availableServerPort}/")},
    "personService": {
        ("source", "java", "java:org.springframework.integration.samples.jdbc.service.PersonService"),
        ("target", "db", PERSON),
    },
}
SPRING_NAMES = {  # each endpoint under the ids of the elements that name it
    TCP_CLIENT: "outGateway",
    TCP_SERVER: "gatewayCrLf",
    COFFEE: "gateway",
    "jms:queue:requestQueue": "jmsout",
    "jdbc:dataSource#FIND_ALL_COFFEE_BEVERAGES": "jdbc:stored-proc-inbound-channel-adapter#0, "
    "outbound-gateway-storedproc-find-all",
    "jdbc:dataSource#FIND_COFFEE": "outbound-gateway-storedproc-find-coffee",
    PERSON: "jdbc:outbound-gateway#0, jdbc:outbound-gateway#1",
    "ftp://localhost:${availableServerPort}/": "ftpOutbound",
    "http://www.w3schools.com/xml/tempconvert.asmx": "ws:outbound-gateway#0",
    "java:org.springframework.integration.samples.tcpclientserver.SimpleGateway": "gw",
    "java:org.springframework.integration.samples.jdbc.service.PersonService": "personService",
}


def test_spring_integration_adapters_and_gateways(capsys: pytest.CaptureFixture[str]) -> None:
    truth: set[Fact] = {("flow", name) for name in SPRING_FLOWS}
    truth |= {("endpoint", name, *endpoint) for name, endpoints in SPRING_FLOWS.items() for endpoint in endpoints}
    truth |= {("named", locator, name) for locator, name in SPRING_NAMES.items()}
    catalog, errors = EsbScan().run([EsbSource(SPRING)])
    assert errors == [] and catalog.sources[0].warnings == []
    found: set[Fact] = set()
    for i in catalog.interfaces:
        if i.kind is Kind.esb_flow:
            assert i.attributes["product"] == "spring-integration"
            found.add(("flow", i.name))
            found |= {("endpoint", i.name, e["role"], e["protocol"], e["locator"]) for e in i.attributes["endpoints"]}
        elif i.kind is Kind.esb_endpoint:
            found.add(("named", i.locator, i.name))
    _measure("spring", truth, found, capsys)
    text = catalog.model_dump_json()
    assert "demo" not in text and 'value="postgres"' not in text  # the FTP and database passwords
