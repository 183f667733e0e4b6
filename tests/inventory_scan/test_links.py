"""Links between scanners: tables are graph nodes, and odd locators never stop the link step."""

from inventory_scan.analysis.graph import graph
from inventory_scan.catalog import Catalog, Direction, Interface, Kind
from inventory_scan.links import link


def _trigger() -> Interface:
    return Interface.build(
        kind=Kind.db_trigger,
        system="erp",
        locator="odbc+sqlite://localhost/erp.db/stock#stock_outbox_au",
        name="stock_outbox_au",
        protocol="sql",
        writes=["main.stock_outbox"],
        attributes={"table": "stock"},
    )


def _endpoint(locator: str, operations: list[str], tables: list[str]) -> Interface:
    return Interface.build(
        kind=Kind.esb_endpoint,
        system="esb",
        locator=locator,
        name=locator,
        protocol="db",
        direction=Direction.into,
        attributes={"operations": operations, "tables": tables},
    )


def test_what_a_trigger_writes_and_a_flow_reads_meet_at_the_table() -> None:
    poller = _endpoint("jdbc:sqlite:erp.db#STOCK_OUTBOX", ["select"], ["STOCK_OUTBOX"])
    catalog = link(Catalog(interfaces=[_trigger(), poller]))
    edges = {(e.source, e.relation, e.target) for e in catalog.edges}
    trigger = catalog.interfaces[0].id if catalog.interfaces[0].kind is Kind.db_trigger else catalog.interfaces[1].id
    assert {
        ("table:stock", "link:fires", trigger),
        (trigger, "link:writes", "table:stock_outbox"),
        ("table:stock_outbox", "link:reads", poller.id),
    } <= edges
    nodes = {node.id: node.kind for node in graph(catalog)[0]}
    assert nodes["table:stock_outbox"] == "resource"


def test_placeholders_in_hosts_and_ports_are_linked_not_fatal() -> None:
    odd = [
        "http://${p['implementation.host']}:${p['implementation.port']}/x",
        "sftp://[::1:22/in",
        "ftp://h:notaport/in",
        "file:///in/[unclosed",
        "\x00",
        "",
    ]
    catalog = link(Catalog(interfaces=[_endpoint(address, ["write"], []) for address in odd]))
    assert len(catalog.interfaces) == len(odd)
