"""The dependency graph of a catalog: Graphviz DOT, Mermaid, GraphML, and an SVG picture.

Nodes are the interfaces, plus the folders, tables and queues edges point at that no scanner
cataloged as an interface. The SVG is laid out in layers, left to right in the direction data
flows, by grandalf's Sugiyama layout (layers, then the order within each layer swept to cut edge
crossings), each connected part of the estate on its own, stacked, under a heading naming its legal
entities that folds it away (a big estate reads part by part); what is connected to nothing is set
out in rows in a part of its own. `crossings` counts where two edges cross, the measure the layout
is judged by (a test keeps it from growing back).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from xml.etree import ElementTree

from inventory_scan.catalog import Catalog

BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y, TOP = 210, 30, 70, 14, 10
LONE_PER_ROW = 5  # nodes connected to nothing, set out in rows of this many
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


Point = tuple[float, float]
HEAD = 26  # a part's heading: what it holds, and the control that folds it


@dataclass
class Part:
    """One connected part of the estate (or the nodes connected to nothing), laid out on its own:
    its nodes' top-left corners below its heading, and its size."""

    title: str
    position: dict[str, Point]
    width: float
    height: float


def layout(nodes: list[Node], links: list[Link]) -> list[Part]:
    """Connected parts laid out in layers by grandalf's Sugiyama layout, the largest first, then
    the lone nodes in rows; each part's corners are its own (a picture stacks them)."""
    from grandalf.graphs import Edge as LayoutEdge
    from grandalf.graphs import Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    vertices = {node.id: Vertex(node.id) for node in nodes}
    for vertex in vertices.values():
        vertex.view = _View()
    pairs = dict.fromkeys((link.source, link.target) for link in links if link.source != link.target)
    pairs = {(s, t): None for s, t in pairs if s in vertices and t in vertices}
    graph = Graph(list(vertices.values()), [LayoutEdge(vertices[s], vertices[t]) for s, t in pairs])
    by_id = {node.id: node for node in nodes}
    connected = sorted(
        (part for part in graph.C if len(part.sV) > 1), key=lambda part: (-len(part.sV), min(v.data for v in part.sV))
    )
    parts: list[Part] = []
    for component in connected:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = GAP_Y, GAP_X  # grandalf's layers run down the page: turned, ours run right
        sugiyama.init_all()
        sugiyama.draw(3)
        placed = {vertex.data: vertex.view.xy for vertex in component.sV}
        left = min(y for _, y in placed.values()) - BOX_WIDTH / 2
        upper = min(x for x, _ in placed.values()) - BOX_HEIGHT / 2
        position = {
            name: (10 + y - BOX_WIDTH / 2 - left, HEAD + x - BOX_HEIGHT / 2 - upper) for name, (x, y) in placed.items()
        }
        parts.append(_part([by_id[name] for name in placed], position))
    lone = sorted((by_id[next(iter(part.sV)).data] for part in graph.C if len(part.sV) == 1), key=lambda n: n.label)
    if lone:
        widest = max((part.width for part in parts), default=0.0)
        per_row = max(LONE_PER_ROW, int((widest + GAP_X) // (BOX_WIDTH + GAP_X)))
        position = {
            node.id: (10 + (n % per_row) * (BOX_WIDTH + GAP_X), HEAD + (n // per_row) * (BOX_HEIGHT + GAP_Y))
            for n, node in enumerate(lone)
        }
        parts.append(_part(lone, position, "connected to nothing"))
    return parts


def _part(nodes: list[Node], position: dict[str, Point], what: str = "") -> Part:
    """A part titled by the legal entities and systems of what it holds, most first."""
    entities = Counter(node.entity for node in nodes if node.entity)
    named = " · ".join(entity for entity, _ in entities.most_common(3)) or "no legal entity"
    title = f"{what or named} · {len(nodes)} {'node' if len(nodes) == 1 else 'nodes'}"
    width = max(x for x, _ in position.values()) + BOX_WIDTH
    height = max(y for _, y in position.values()) + BOX_HEIGHT + GAP_Y * 2
    return Part(title, position, width, height)


def placed(parts: list[Part]) -> dict[str, Point]:
    """Every node's corner in the picture, the parts stacked top to bottom, none folded."""
    position: dict[str, Point] = {}
    top = 0.0
    for part in parts:
        position |= {name: (x, top + y) for name, (x, y) in part.position.items()}
        top += part.height
    return position


class _View:
    """A vertex's box for grandalf, turned a quarter (its layers run down, the picture's run right)."""

    w, h = BOX_HEIGHT, BOX_WIDTH
    xy: Point = (0.0, 0.0)


def _ends(source: Point, target: Point) -> tuple[Point, Point]:
    """Where an edge leaves its source's box and enters its target's: right side to left side when
    it runs forward, left to right when it runs back."""
    (sx, sy), (tx, ty) = source, target
    forward = tx >= sx
    x1, x2 = (sx + BOX_WIDTH, tx) if forward else (sx, tx + BOX_WIDTH)
    return (x1, sy + BOX_HEIGHT / 2), (x2, ty + BOX_HEIGHT / 2)


def crossings(position: dict[str, Point], links: list[Link]) -> int:
    """How many pairs of edges cross, each drawn straight between its ends (edges that share a node
    do not count)."""
    segments = []
    for link in dict.fromkeys((link.source, link.target) for link in links):
        if link[0] in position and link[1] in position and link[0] != link[1]:
            segments.append((link, *_ends(position[link[0]], position[link[1]])))
    count = 0
    for i, (ends_a, a1, a2) in enumerate(segments):
        for ends_b, b1, b2 in segments[i + 1 :]:
            if set(ends_a) & set(ends_b):
                continue
            if _cross(a1, a2, b1, b2):
                count += 1
    return count


def _cross(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    def turn(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2, d3, d4 = turn(b1, b2, a1), turn(b1, b2, a2), turn(a1, a2, b1), turn(a1, a2, b2)
    return d1 * d2 < 0 and d3 * d4 < 0


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
    parts = layout(nodes, links)
    part_of = {name: n for n, part in enumerate(parts) for name in part.position}
    drawn: list[list[str]] = [[] for _ in parts]
    for link in links:
        if link.source not in part_of or link.target not in part_of:
            continue
        position = parts[part_of[link.source]].position
        (x1, y1), (x2, y2) = _ends(position[link.source], position[link.target])
        forward = x2 >= x1
        bend = max(40.0, abs(x2 - x1) / 2)
        c1, c2 = (x1 + bend, x2 - bend) if forward else (x1 - bend, x2 + bend)
        relation = html.escape(link.relation)
        drawn[part_of[link.source]].append(
            f'<path class="edge" data-relation="{relation}" marker-end="url(#arrow)" '
            f'd="M{x1:.0f},{y1:.0f} C{c1:.0f},{y1:.0f} {c2:.0f},{y2:.0f} {x2:.0f},{y2:.0f}">'
            f"<title>{relation}</title></path>"
        )
    for node in nodes:
        left, row_top = parts[part_of[node.id]].position[node.id]
        colour = PATTERN_COLOURS.get(node.pattern, PATTERN_COLOURS[None])
        label = html.escape(clip(node.label))
        title = html.escape(f"{node.label} ({node.kind}{', ' + node.entity if node.entity else ''})")
        # A nested <svg> is a viewport: whatever a label's font makes of it stays inside its box.
        shape = (
            f'<svg x="{left:.0f}" y="{row_top:.0f}" width="{width}" height="{height}">'
            f'<rect x="1" y="1" width="{width - 2}" height="{height - 2}" rx="6" style="stroke:{colour}"/>'
            f'<text x="8" y="19">{label}</text></svg>'
        )
        if node.kind == "resource":
            shown = f'<g class="node resource" data-id="{html.escape(node.id)}"><title>{title}</title>{shape}</g>'
        else:
            shown = f'<a href="#{node.id}" class="node" data-id="{node.id}"><title>{title}</title>{shape}</a>'
        drawn[part_of[node.id]].append(shown)
    sections, top = [], 0.0
    for n, part in enumerate(parts):  # each part folds to its heading (report.js moves the ones below up)
        sections.append(
            f'<g class="part" data-height="{part.height:.0f}" transform="translate(0,{top:.0f})">'
            f'<g class="part-head" role="button" tabindex="0" aria-expanded="true" aria-controls="part-{n}">'
            f'<text x="10" y="16">▾ {html.escape(part.title)}</text></g>'
            f'<g class="part-body" id="part-{n}">{"".join(drawn[n])}</g></g>'
        )
        top += part.height
    total_width = max((part.width for part in parts), default=0.0) + 20
    tallest = top
    parts_svg = "".join(sections)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" viewBox="0 0 {total_width:.0f} {tallest + 20:.0f}" '
        f'width="{total_width:.0f}" height="{tallest + 20:.0f}" data-width="{total_width:.0f}" role="img" '
        f'aria-label="dependency graph" data-crossings="{crossings(placed(parts), links)}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b1"/></marker></defs>'
        + parts_svg
        + "</svg>"
    )
    return svg, left_out
