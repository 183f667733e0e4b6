"""The dependency graph of a catalog: Graphviz DOT, Mermaid, GraphML, and an SVG picture.

Nodes are the interfaces, plus the folders, tables and queues edges point at that no scanner
cataloged as an interface. The SVG needs no layout engine: one column per kind, in the order data
usually flows (drops → endpoints → flows → operations → database), which is how an architect
reads an estate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from xml.etree import ElementTree

from inventory_scan.catalog import Catalog

# Columns of the SVG, left to right, and the kinds each holds.
COLUMNS = [
    (("file_drop",), "file drops"),
    (("resource",), "folders, tables, queues"),
    (("esb_endpoint",), "ESB endpoints"),
    (("esb_flow",), "ESB flows"),
    (("soap_operation", "queue"), "SOAP operations, queues"),
    (("db_trigger", "db_procedure"), "database triggers, routines"),
]
BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y, TOP = 210, 30, 44, 10, 40
LABEL_CHARS = 27  # what fits a box at the report's 12 px (about 7 px a character)
PATTERN_COLOURS = {
    "sync_api": "#2b7bb9",
    "event": "#c7691c",
    "batch": "#5a8f29",
    "orchestration": "#8e44ad",
    None: "#777777",
}
MAX_SVG_NODES = 400


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str
    entity: str | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    relation: str


def graph(catalog: Catalog) -> tuple[list[Node], list[Link]]:
    nodes = {
        i.id: Node(i.id, i.name, i.kind.value, i.entity, i.pattern.name if i.pattern else None)
        for i in catalog.interfaces
    }
    links = []
    for edge in catalog.edges:
        for end in (edge.source, edge.target):
            if end not in nodes:
                nodes[end] = Node(end, end, "resource")
        links.append(Link(edge.source, edge.target, edge.relation))
    return sorted(nodes.values(), key=lambda n: (n.kind, n.entity or "", n.label)), links


def to_dot(catalog: Catalog) -> str:
    nodes, links = graph(catalog)

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph catalog {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor=white];']
    for node in nodes:
        colour = PATTERN_COLOURS.get(node.pattern, PATTERN_COLOURS[None])
        shape = "folder" if node.kind == "resource" else "box"
        label = f"{node.label}\n{node.kind}" + (f" · {node.entity}" if node.entity else "")
        lines.append(f"  {quote(node.id)} [label={quote(label)}, color={quote(colour)}, shape={shape}];")
    for link in links:
        lines.append(f"  {quote(link.source)} -> {quote(link.target)} [label={quote(link.relation)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(catalog: Catalog) -> str:
    nodes, links = graph(catalog)
    ids = {node.id: f"n{index}" for index, node in enumerate(nodes)}

    def safe(text: str) -> str:
        return text.replace('"', "#quot;").replace("\n", " ")

    lines = ["flowchart LR"]
    for node in nodes:
        # tables, folders and database objects are drawn as cylinders, everything else as boxes
        opening, closing = ("[(", ")]") if node.kind in ("resource", "db_trigger", "db_procedure") else ("[", "]")
        lines.append(f'  {ids[node.id]}{opening}"{safe(node.label)}<br/><small>{node.kind}</small>"{closing}')
    for link in links:
        lines.append(f"  {ids[link.source]} -->|{safe(link.relation)}| {ids[link.target]}")
    for pattern, colour in PATTERN_COLOURS.items():
        if pattern:
            lines.append(f"  classDef {pattern} stroke:{colour},stroke-width:2px")
    for node in nodes:
        if node.pattern:
            lines.append(f"  class {ids[node.id]} {node.pattern}")
    return "\n".join(lines) + "\n"


def to_graphml(catalog: Catalog) -> str:
    nodes, links = graph(catalog)
    ns = "http://graphml.graphdrawing.org/xmlns"
    ElementTree.register_namespace("", ns)
    root = ElementTree.Element(f"{{{ns}}}graphml")
    keys = [("label", "node"), ("kind", "node"), ("entity", "node"), ("pattern", "node"), ("relation", "edge")]
    for name, domain in keys:
        ElementTree.SubElement(
            root, f"{{{ns}}}key", id=name, attrib={"for": domain, "attr.name": name, "attr.type": "string"}
        )
    body = ElementTree.SubElement(root, f"{{{ns}}}graph", id="catalog", edgedefault="directed")
    for node in nodes:
        element = ElementTree.SubElement(body, f"{{{ns}}}node", id=node.id)
        for name in ("label", "kind", "entity", "pattern"):
            value = getattr(node, name)
            if value:
                ElementTree.SubElement(element, f"{{{ns}}}data", key=name).text = value
    for index, link in enumerate(links):
        element = ElementTree.SubElement(body, f"{{{ns}}}edge", id=f"e{index}", source=link.source, target=link.target)
        ElementTree.SubElement(element, f"{{{ns}}}data", key="relation").text = link.relation
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def clip(text: str, length: int = LABEL_CHARS) -> str:
    """`text` in at most `length` characters, cut in the middle: a name keeps its start and its end,
    a locator its host and, mostly, its last folders (a file URI drops its scheme)."""
    text = text.removeprefix("file://")
    if len(text) <= length:
        return text
    head = (length - 1) // (4 if "/" in text else 2)
    return text[:head] + "…" + text[len(text) - (length - 1 - head) :]


def to_svg(catalog: Catalog) -> tuple[str, int]:
    """An SVG picture of the graph (nodes link to `#<id>`), and how many nodes were left out."""
    nodes, links = graph(catalog)
    degree: dict[str, int] = {}
    for link in links:
        degree[link.source] = degree.get(link.source, 0) + 1
        degree[link.target] = degree.get(link.target, 0) + 1
    left_out = 0
    if len(nodes) > MAX_SVG_NODES:
        keep = {n.id for n in sorted(nodes, key=lambda n: -degree.get(n.id, 0))[:MAX_SVG_NODES]}
        left_out = len(nodes) - len(keep)
        nodes = [n for n in nodes if n.id in keep]
        links = [link for link in links if link.source in keep and link.target in keep]
    width, height = BOX_WIDTH, BOX_HEIGHT
    used = [column for column in COLUMNS if any(n.kind in column[0] for n in nodes)]
    position: dict[str, tuple[float, float]] = {}
    parts: list[str] = []
    tallest = 0.0
    for column_index, (kinds, title) in enumerate(used):
        x = 10 + column_index * (width + GAP_X)
        parts.append(f'<text class="column" x="{x}" y="20">{html.escape(title)}</text>')
        column_nodes = [n for n in nodes if n.kind in kinds]
        for row, node in enumerate(column_nodes):
            y = TOP + row * (height + GAP_Y)
            position[node.id] = (x, y)
            tallest = max(tallest, y + height)
    for link in links:
        if link.source not in position or link.target not in position:
            continue
        (sx, sy), (tx, ty) = position[link.source], position[link.target]
        forward = tx >= sx
        x1, x2 = (sx + width, tx) if forward else (sx, tx + width)
        y1, y2 = sy + height / 2, ty + height / 2
        bend = max(40.0, abs(x2 - x1) / 2)
        c1, c2 = (x1 + bend, x2 - bend) if forward else (x1 - bend, x2 + bend)
        relation = html.escape(link.relation)
        parts.append(
            f'<path class="edge" data-relation="{relation}" marker-end="url(#arrow)" '
            f'd="M{x1},{y1} C{c1},{y1} {c2},{y2} {x2},{y2}">'
            f"<title>{relation}</title></path>"
        )
    for node in nodes:
        left, row_top = position[node.id]
        colour = PATTERN_COLOURS.get(node.pattern, PATTERN_COLOURS[None])
        label = html.escape(clip(node.label))
        title = html.escape(f"{node.label} ({node.kind}{', ' + node.entity if node.entity else ''})")
        # A nested <svg> is a viewport: whatever a label's font makes of it stays inside its box.
        shape = (
            f'<svg x="{left}" y="{row_top}" width="{width}" height="{height}">'
            f'<rect x="1" y="1" width="{width - 2}" height="{height - 2}" rx="6" style="stroke:{colour}"/>'
            f'<text x="8" y="19">{label}</text></svg>'
        )
        if node.kind == "resource":
            parts.append(f'<g class="node resource" data-id="{html.escape(node.id)}"><title>{title}</title>{shape}</g>')
        else:
            parts.append(f'<a href="#{node.id}" class="node" data-id="{node.id}"><title>{title}</title>{shape}</a>')
    total_width = 20 + len(used) * (width + GAP_X) - GAP_X
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" viewBox="0 0 {total_width} {tallest + 20}" '
        f'width="{total_width}" height="{tallest + 20}" data-width="{total_width}" role="img" '
        'aria-label="dependency graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b1"/></marker></defs>'
        + "".join(parts)
        + "</svg>"
    )
    return svg, left_out
