from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from inventory_scan import Activity, Catalog, Edge, Interface, Kind
from inventory_scan.analysis.graph import (
    MAX_SVG_NODES,
    Link,
    crossings,
    graph,
    layout,
    placed,
    to_dot,
    to_graphml,
    to_mermaid,
    to_svg,
)
from inventory_scan.analysis.rollup import rollup, units


def test_rollup_per_entity_and_system(corpus_catalog: Catalog) -> None:
    summary = rollup(corpus_catalog)
    assert sum(g.interfaces for g in summary.systems) == len(corpus_catalog.interfaces)
    assert sum(g.units for g in summary.entities) == sum(units(i).score for i in corpus_catalog.interfaces)
    _, dependants = summary.most_depended_on[0]
    assert dependants >= 2
    assert all(n >= 1 for _, n in summary.most_depended_on)


def drop(name: str, count: int, last: datetime | None) -> Interface:
    return Interface.build(
        kind=Kind.file_drop, system="s", locator=f"file:///in/{name}", name=name, protocol="file"
    ).model_copy(update={"activity": Activity(count=count, last_seen=last)})


def test_retirement_candidates() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    catalog = Catalog(
        interfaces=[drop("busy", 100, now), drop("quiet", 5, now - timedelta(days=90)), drop("never", 0, None)]
    )
    assert [(i.name, why) for i, why in rollup(catalog).quiet] == [
        ("never", "no files seen"),
        ("quiet", "no file for 90 days before the newest activity"),
    ]


def test_exports_hold_every_node_and_edge(corpus_catalog: Catalog) -> None:
    nodes = (
        {e.source for e in corpus_catalog.edges}
        | {e.target for e in corpus_catalog.edges}
        | {i.id for i in corpus_catalog.interfaces}
    )
    graphml = etree.fromstring(to_graphml(corpus_catalog).encode())
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(graphml.findall(".//g:node", ns)) == len(nodes)
    assert len(graphml.findall(".//g:edge", ns)) == len(corpus_catalog.edges)
    dot = to_dot(corpus_catalog)
    assert dot.startswith("digraph catalog {") and dot.count(" -> ") == len(corpus_catalog.edges)
    mermaid = to_mermaid(corpus_catalog)
    assert mermaid.startswith("flowchart LR") and mermaid.count(" -->|") == len(corpus_catalog.edges)
    svg, left_out = to_svg(corpus_catalog)
    assert left_out == 0
    assert all(f'href="#{i.id}"' in svg for i in corpus_catalog.interfaces)
    etree.fromstring(svg.encode())  # well-formed SVG


def test_svg_keeps_the_most_connected_nodes_of_a_huge_catalog() -> None:
    hub = drop("hub", 1, None)
    spokes = [drop(f"spoke{n}", 1, None) for n in range(MAX_SVG_NODES + 50)]
    edges = [Edge(source=s.id, target=hub.id, relation="calls") for s in spokes[:10]]
    svg, left_out = to_svg(Catalog(interfaces=[hub, *spokes], edges=edges))
    assert left_out == 51
    assert f'href="#{hub.id}"' in svg


def test_the_layers_keep_edge_crossings_down_on_the_corpora(corpus_catalog: Catalog) -> None:
    """155 nodes and 171 edges: 3,573 crossings in the kind-per-column layout this replaced, 313 in
    layers; every node placed once, no two boxes on top of each other."""
    nodes, links = graph(corpus_catalog)
    position = placed(layout(nodes, links))
    assert set(position) == {node.id for node in nodes}
    assert len(set(position.values())) == len(position)
    assert crossings(position, links) <= 313


def test_crossings_counts_what_crosses_and_not_what_shares_a_node() -> None:
    corners = {"a": (0.0, 0.0), "b": (500.0, 100.0), "c": (0.0, 100.0), "d": (500.0, 0.0), "e": (500.0, -300.0)}
    links = [Link("a", "b", "x"), Link("c", "d", "x"), Link("a", "e", "x")]
    assert crossings(corners, links) == 1  # a→b crosses c→d; a→e shares a with a→b and stays above c→d


def test_no_scheme_or_loopback_is_a_system(corpus_catalog: Catalog) -> None:
    """A folder, a queue or this machine (file:, jms:, localhost) belongs to the ESB whose flows use it."""
    systems = {group.name for group in rollup(corpus_catalog).systems}
    assert not systems & {"file", "jms", "db", "vfs", "ftp", "sftp", "http", "https", "localhost", "127.0.0.1"}, systems
