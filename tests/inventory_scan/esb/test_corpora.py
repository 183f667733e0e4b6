"""Every ESB file in shared/corpora/esb, with the flows and endpoints written out from reading it."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scan import Catalog, Kind
from inventory_scan.esb import EsbScan, EsbSource

Flows = dict[str, set[tuple[str, str, str]]]  # flow name → {(role, protocol, locator)}

MULE_DB = {
    name: {("target", "db", "jdbc:derby:target/muleEmbeddedDB#PLANET")}
    for name in ("select", "insert", "update", "delete")
}
MULE_SFTP = {
    "flow": {
        ("source", "sftp", "sftp://localhost:${sftpSourcePort}/~/source"),
        ("target", "sftp", "sftp://localhost:${sftpDestinationPort}/target"),
    }
}
MULE_JMS = {"jmsBridge": {("source", "jms", "jms:queue:in"), ("target", "jms", "jms:queue:out")}}
STOCK_QUOTE = "http://localhost:9000/services/SimpleStockQuoteService"

EXPECTED: dict[str, tuple[str, Flows]] = {
    "mule/db_db-crud__mule3__mule-config.xml": ("mule", MULE_DB),
    "mule/db_db-crud__mule4__mule-config.xml": ("mule", MULE_DB),
    "mule/ftp_sftp__mule3__mule-config.xml": ("mule", MULE_SFTP),
    "mule/ftp_sftp__mule4__mule-config.xml": ("mule", MULE_SFTP),
    "mule/jms_jms1Mvn__mule3__mule-config.xml": ("mule", MULE_JMS),
    "mule/jms_jms1Mvn__mule4__mule-config.xml": ("mule", MULE_JMS),
    "camel/jdbc-camel-context.xml": (
        "camel",
        {
            "sample-generator-route": {("target", "db", "jdbc:dataSource#CAMEL_TEST")},
            "query-update-route-part1": {("target", "db", "jdbc:dataSource#CAMEL_TEST")},
            "query-update-route-part2": {("target", "db", "jdbc:dataSource#CAMEL_TEST")},
        },
    ),
    "camel/spring-camel-context.xml": ("camel", {}),  # routes come from a Java package, not XML
    "camel/spring-xquery-camelContext.xml": (
        "camel",
        {
            "route1": {("source", "file", "file:src/data"), ("target", "jms", "jms:queue:MyQueue")},
            "route2": {("source", "jms", "jms:queue:MyQueue"), ("target", "file", "file:target/outputFiles")},
        },
    ),
    "camel/transformer-demo-camel-context.xml": (
        "camel",
        {"xml": set(), "json": set(), "java": set(), "csv": {("target", "file", "file:target/output")}},
    ),
    "synapse/synapse_sample_0.xml": ("synapse", {"main": set()}),
    "synapse/synapse_sample_150.xml": (
        "synapse",
        {
            "StockQuoteProxy": {
                ("source", "soap", "http://{esb}/services/StockQuoteProxy"),
                ("target", "http", STOCK_QUOTE),
            }
        },
    ),
    "synapse/synapse_sample_254.xml": (
        "synapse",
        {
            "StockQuoteProxy": {
                ("source", "file", "file:///home/user/test/in"),
                ("target", "file", "file:///home/user/test/original"),
                ("target", "soap", STOCK_QUOTE),
                ("target", "file", "file:///home/user/test/out"),
            }
        },
    ),
    "synapse/synapse_sample_800.xml": (
        "synapse",
        {
            "StockQuoteAPI": {
                ("source", "http", "http://{esb}/stockquote/view/{symbol}"),
                ("source", "http", "http://{esb}/stockquote/order/*"),
                ("target", "soap", STOCK_QUOTE),
            }
        },
    ),
    "biztalk/001-FtpPassthru-Bindings.xml": (
        "biztalk",
        {
            "FtpReceivePort": {("source", "ftp", "ftp://127.0.0.1:21/receive")},
            "FtpSendport": {("target", "ftp", "ftp://127.0.0.1:21/send")},
        },
    ),
    "biztalk/002-XmlMapping-Bindings.xml": (
        "biztalk",
        {
            "FileReceivePort": {("source", "file", "file:///C:/BiztalkApp/Input")},
            "FileSendPort": {("target", "file", "file:///C:/BiztalkApp/Output")},
        },
    ),
    "spring-integration/fileCopyDemo-text.xml": (
        "spring-integration",
        {
            "filesIn": {
                ("source", "file", "file:${java.io.tmpdir}/spring-integration-samples/input"),
                ("target", "file", "file:${java.io.tmpdir}/spring-integration-samples/output"),
            }
        },
    ),
}


def scan(path: Path) -> Catalog:
    catalog, errors = EsbScan().run([EsbSource(str(path))])
    assert errors == []
    return catalog


def flows_of(catalog: Catalog) -> Flows:
    return {
        i.name: {(e["role"], e["protocol"], e["locator"]) for e in i.attributes["endpoints"]}
        for i in catalog.interfaces
        if i.kind is Kind.esb_flow
    }


@pytest.mark.parametrize("file", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_flows_and_endpoints(corpora: Path, file: str) -> None:
    product, flows = EXPECTED[file]
    catalog = scan(corpora / "esb" / file)
    assert flows_of(catalog) == flows
    assert {i.attributes["product"] for i in catalog.interfaces if i.kind is Kind.esb_flow} <= {product}
    assert catalog.sources[0].warnings == []


def test_every_corpus_file_is_expected(corpora: Path) -> None:
    on_disk = {str(p.relative_to(corpora / "esb")) for p in (corpora / "esb").rglob("*") if p.is_file()}
    assert on_disk - {"wsdl/synapse-sample_proxy_2.wsdl"} == set(EXPECTED)


@pytest.mark.parametrize("case", ["db_db-crud", "ftp_sftp", "jms_jms1Mvn"])
def test_mule3_and_mule4_versions_yield_the_same_endpoints(corpora: Path, case: str) -> None:
    three = scan(corpora / "esb" / "mule" / f"{case}__mule3__mule-config.xml")
    four = scan(corpora / "esb" / "mule" / f"{case}__mule4__mule-config.xml")
    endpoints = lambda c: {(i.locator, i.protocol, i.direction) for i in c.interfaces if i.kind is Kind.esb_endpoint}  # noqa: E731
    assert endpoints(three) == endpoints(four)


def test_wsdl_operations(corpora: Path) -> None:
    catalog = scan(corpora / "esb" / "wsdl" / "synapse-sample_proxy_2.wsdl")
    operations = {i.name: i for i in catalog.interfaces if i.kind is Kind.soap_operation}
    assert set(operations) == {
        f"LBService1.{op}" for op in ("sleepOperation", "setClientName", "sampleOperation", "loadOperation")
    }
    sleep = operations["LBService1.sleepOperation"]
    assert {b["protocol"] for b in sleep.attributes["bindings"]} == {"soap1.1", "soap1.2", "http"}
    soap11 = next(b for b in sleep.attributes["bindings"] if b["protocol"] == "soap1.1")
    assert soap11["soap_action"] == "urn:sleepOperation"
    assert {p["address"] for p in soap11["ports"]} == {
        "https://localhost:9005/services/LBService1",
        "http://localhost:9001/services/LBService1",
    }
    assert (sleep.attributes["input"], sleep.attributes["output"]) == ("sleepOperation", "sleepOperationResponse")


def test_links_between_flows(corpora: Path) -> None:
    catalog = scan(corpora / "esb")
    calls = {
        (catalog.interface(e.source).name, catalog.interface(e.target).name)
        for e in catalog.edges
        if e.relation == "calls"
    }
    assert calls == {
        ("xml", "java"),
        ("json", "java"),
        ("java", "csv"),
        ("query-update-route-part1", "query-update-route-part2"),
        ("FtpReceivePort", "FtpSendport"),  # the send port's filter subscribes to the receive port
        ("FileReceivePort", "FileSendPort"),
    }


def test_credentials_never_reach_the_catalog(corpora: Path) -> None:
    text = scan(corpora / "esb").model_dump_json()
    assert "muletest1" not in text  # the Mule sftp user, and its password
    assert "btsuser" not in text  # the BizTalk FTP login


def test_the_whole_folder_scans_every_product(corpora: Path) -> None:
    catalog = scan(corpora / "esb")
    assert catalog.sources[0].stats == {"documents": 18, "flows": 30, "endpoints": 23, "operations": 4}
