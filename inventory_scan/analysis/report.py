"""The catalog as a report: one self-contained HTML file (no network needed), or Markdown for a wiki."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from pathlib import PurePosixPath

from inventory_scan.analysis.graph import PATTERN_COLOURS, to_svg
from inventory_scan.analysis.issues import SEVERITIES, Issue, issues
from inventory_scan.analysis.roadmap import CAPACITY, WAVE_UNITS, Roadmap, plan
from inventory_scan.analysis.rollup import Group, Rollup, rollup, units
from inventory_scan.analysis.wrapped import Wrapper
from inventory_scan.catalog import Catalog, Criticality, Disposition, Interface

# The page's style and behaviour live beside this module and are inlined, so the report needs no network.
_CSS = (resources.files("inventory_scan.analysis") / "report.css").read_text(encoding="utf-8")
_JS = (resources.files("inventory_scan.analysis") / "report.js").read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _pill(pattern: str | None) -> str:
    if not pattern:
        return '<span class="muted">—</span>'
    return f'<span class="pill" style="background:{PATTERN_COLOURS[pattern]}">{_e(pattern)}</span>'


def _group_table(title: str, groups: list[Group]) -> str:
    patterns = ["sync_api", "event", "batch", "orchestration"]
    head = "".join(f'<th class="num">{p}</th>' for p in patterns)
    rows = "".join(
        f"<tr><td>{_e(g.name)}</td><td class='num'>{g.interfaces}</td><td class='num'>{g.units}</td>"
        f"<td>{_e(', '.join(f'{k} {n}' for k, n in sorted(g.by_kind.items())))}</td>"
        + "".join(f"<td class='num'>{g.by_pattern.get(p, 0)}</td>" for p in patterns)
        + "</tr>"
        for g in groups
    )
    return (
        f"<section><h2>{_e(title)}</h2><table><thead><tr><th>name</th><th class='num'>interfaces</th>"
        f"<th class='num'>effort units</th><th>kinds</th>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in sorted(set(values)))


def _reasoned(decided: Criticality | Disposition | None) -> str:
    if decided is None:
        return ""
    what = f"tier {decided.tier}" if isinstance(decided, Criticality) else decided.name
    return f"{what}: {'; '.join(decided.reasons)}"


def _evidence_link(evidence: str) -> str:
    """The evidence, as a link when it is a file on this machine (the report opens beside the scan)."""
    before, _, after = evidence.rpartition(":")
    path = before if after.isdigit() else evidence  # "/srv/erp.sql:14" is line 14 of /srv/erp.sql
    if path.startswith("file:///"):
        href = path
    elif path.startswith("/"):
        href = PurePosixPath(path).as_uri()
    else:
        return _e(evidence)
    return f'<a href="{_e(href)}">{_e(evidence)}</a>'


def _issue_list(found: list[Issue]) -> str:
    items = "".join(
        f'<li><span class="severity {i.severity}">{i.severity}</span> {_e(i.message)} '
        f'<span class="muted">({_evidence_link(i.evidence)})</span></li>'
        for i in found
    )
    return f'<h3>Issues</h3><ul class="issues">{items}</ul>' if found else ""


def _details(interface: Interface, found: list[Issue], routes: list[Wrapper]) -> str:
    effort = units(interface)
    cadence = interface.activity.cadence
    activity = f"{interface.activity.count} seen" + (f", {cadence.label}" if cadence else "")
    facts = [
        ("kind", interface.kind.value),
        ("system", interface.system),
        ("entity", interface.entity),
        ("locator", interface.locator),
        ("protocol", interface.protocol),
        ("direction", interface.direction.value),
        ("formats", ", ".join(interface.formats)),
        ("reads", ", ".join(interface.reads)),
        ("writes", ", ".join(interface.writes)),
        ("side effects", ", ".join(interface.side_effects)),
        ("pattern", f"{interface.pattern.name}: {'; '.join(interface.pattern.reasons)}" if interface.pattern else ""),
        ("effort", f"{effort.score} units: {'; '.join(effort.reasons)}"),
        ("carries", interface.business_object),
        ("criticality", _reasoned(interface.criticality)),
        ("disposition", _reasoned(interface.disposition)),
        ("wrapped by", "; ".join(map(str, routes))),
        ("activity", activity),
    ]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v)
    evidence = "".join(
        f"<li>{_e(e.source)}{':' + str(e.line) if e.line else ''} {_e(e.detail)}</li>" for e in interface.evidence
    )
    attributes = json.dumps(interface.attributes, indent=2, default=str, ensure_ascii=False)
    return (
        f'<details id="{interface.id}"><summary><b>{_e(interface.name)}</b> '
        f'<span class="muted">{interface.kind.value} · {_e(interface.entity or "no entity")}</span></summary>'
        f"<table>{rows}</table>{_issue_list(found)}<h3>Evidence</h3><ul>{evidence}</ul>"
        f"<h3>Attributes</h3><pre>{_e(attributes)}</pre></details>"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{title}</h2>{body}</section>"


def _table(headers: list[str], rows: list[str], empty: str = "none", table_id: str = "") -> str:
    """Headers may end in ':num' (right-aligned) and start with '~' (sortable)."""
    cells = []
    for header in headers:
        name, _, style = header.lstrip("~").partition(":")
        classes = " ".join(c for c in ("sortable" if header.startswith("~") else "", style) if c)
        cells.append(f'<th class="{classes}">{name}</th>' if classes else f"<th>{name}</th>")
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}" class="muted">{empty}</td></tr>'
    opening = f'<table id="{table_id}">' if table_id else "<table>"
    return f"{opening}<thead><tr>{''.join(cells)}</tr></thead><tbody>{body}</tbody></table>"


def _link(interface: Interface) -> str:
    return f'<a href="#{interface.id}">{_e(interface.name)}</a>'


def _row(interface: Interface, routes: list[Wrapper] | None) -> str:
    effort = units(interface).score
    cadence = interface.activity.cadence.label if interface.activity.cadence else ""
    pattern = interface.pattern.name if interface.pattern else ""
    disposition = interface.disposition.name if interface.disposition else ""
    tier = interface.criticality.tier if interface.criticality else ""
    data = (
        f'data-kind="{interface.kind.value}" data-entity="{_e(interface.entity or "")}" '
        f'data-pattern="{pattern}" data-system="{_e(interface.system)}" data-disposition="{disposition}"'
    )
    cells = [
        _link(interface),
        interface.kind.value,
        _e(interface.entity or ""),
        _e(interface.system),
        _pill(pattern or None),
        _e(disposition),
        _e(", ".join(interface.formats)),
    ]
    count = interface.activity.count
    return (
        f"<tr {data}>{''.join(f'<td>{cell}</td>' for cell in cells)}"
        f"<td class='num' data-value='{count}'>{count:,}</td><td>{_e(cadence)}</td>"
        f"<td class='num' data-value='{effort}'>{effort}</td><td class='num' data-value='{tier}'>{tier}</td>"
        + ("" if routes is None else f"<td>{'<br>'.join(_e(route) for route in routes)}</td>")
        + "</tr>"
    )


def _filters(interfaces: list[Interface]) -> str:
    def select(field: str, label: str, values: Iterable[str]) -> str:
        return (
            f'<select data-field="{field}" aria-label="{field}"><option value="">all {label}</option>'
            f"{_options(values)}</select>"
        )

    return (
        '<div class="filters"><input id="filter-text" type="search" placeholder="filter: name, locator, format…" '
        'aria-label="filter interfaces">'
        + select("kind", "kinds", (i.kind.value for i in interfaces))
        + select("entity", "entities", (i.entity for i in interfaces if i.entity))
        + select("pattern", "patterns", (i.pattern.name for i in interfaces if i.pattern))
        + select("disposition", "dispositions", (i.disposition.name for i in interfaces if i.disposition))
        + '<button type="button" id="export-csv">download the rows shown as CSV</button>'
        + "</div>"
    )


TIER_COLOURS = {1: "#c0392b", 2: "#d68910", 3: "#7f8c8d"}


def _timeline(roadmap: Roadmap) -> str:
    """The waves as bars on a timeline of weeks, coloured by tier, each saying what it holds."""
    if not roadmap.waves:
        return ""
    week, row, left = 36.0, 24, 70
    width = left + roadmap.weeks * week + 10
    parts = [
        f'<text class="week" x="{left + (n - 1) * week + week / 2:.0f}" y="14">{n}</text>'
        for n in range(1, roadmap.weeks + 1)
    ]
    for n, wave in enumerate(roadmap.waves):
        y = 22 + n * row
        said = (
            f"wave {wave.number}: tier {wave.tier}, {len(wave.steps)} interfaces, {wave.effort} effort units, "
            f"weeks {wave.first_week}–{wave.last_week}"
        )
        parts.append(
            f'<g class="wave"><title>{_e(said)}</title><text x="4" y="{y + 15}">wave {wave.number}</text>'
            f'<rect x="{left + (wave.first_week - 1) * week:.0f}" y="{y + 2}" width="{wave.weeks * week - 4:.0f}" '
            f'height="{row - 6}" rx="4" fill="{TIER_COLOURS.get(wave.tier, "#7f8c8d")}"/></g>'
        )
    height = 22 + len(roadmap.waves) * row
    return (
        f'<svg class="timeline" role="img" aria-label="the waves on a timeline of weeks" width="{width:.0f}" '
        f'height="{height}" viewBox="0 0 {width:.0f} {height}">{"".join(parts)}</svg>'
    )


def _roadmap_sections(roadmap: Roadmap) -> list[str]:
    def why(reasons: list[str]) -> str:
        return _e("; ".join(reasons))

    waves = [
        f"<tr><td class='num'>{wave.number if n == 0 else ''}</td><td class='num'>{step.tier}</td>"
        f"<td>{_link(step.interface)}</td><td>{step.interface.kind.value}</td><td>{_e(step.interface.entity)}</td>"
        f"<td class='num'>{step.dependants}</td><td class='num'>{step.effort}</td><td>{why(step.why)}</td></tr>"
        for wave in roadmap.waves
        for n, step in enumerate(wave.steps)
    ]
    events = [
        f"<tr><td class='num'>{step.tier}</td><td>{_link(step.interface)}</td>"
        f"<td>{_e(step.interface.business_object)}</td><td>{_e(step.interface.entity)}</td>"
        f"<td>{'<br>'.join(_e(place) for place in step.publish_from)}</td><td>{why(step.why)}</td></tr>"
        for step in roadmap.events
    ]
    retire = [
        f"<tr><td>{_link(step.interface)}</td><td>{step.interface.kind.value}</td>"
        f"<td>{_e(step.interface.entity)}</td><td>{why(step.why)}</td></tr>"
        for step in roadmap.retire
    ]
    wave_headers = ["wave:num", "tier:num", "interface", "kind", "entity", "dependants:num", "effort:num", "why"]
    count = len(roadmap.waves)
    return [
        _section(
            f"Roadmap: wrap in {count} wave{'' if count == 1 else 's'} over {roadmap.weeks} "
            f"week{'' if roadmap.weeks == 1 else 's'}",
            '<p class="muted">tier 1 first; within a tier the most depended on, then the cheapest; '
            f"at most {WAVE_UNITS} effort units a wave; weeks at {roadmap.capacity:g} effort units a week "
            "(<code>--capacity</code>)</p>" + _timeline(roadmap) + _table(wave_headers, waves, "nothing to wrap"),
        ),
        _section(
            "Roadmap: refactor to events",
            _table(
                ["tier:num", "interface", "carries", "entity", "publish from", "why"], events, "no event candidates"
            ),
        ),
        _section(
            "Roadmap: retire",
            _table(["interface", "kind", "entity", "evidence"], retire, "nothing shows signs of disuse"),
        ),
    ]


def _issues_section(catalog: Catalog, problems: dict[str, list[Issue]]) -> str:
    by_id = {interface.id: interface for interface in catalog.interfaces}
    listed = sorted(
        ((issue, by_id[key]) for key, found in problems.items() for issue in found),
        key=lambda pair: (SEVERITIES.index(pair[0].severity), pair[1].name),
    )
    counts = ", ".join(f"{sum(i.severity == s for i, _ in listed)} {s}" for s in SEVERITIES)
    rows = [
        f'<tr data-severity="{issue.severity}"><td><span class="severity {issue.severity}">{issue.severity}</span></td>'
        f"<td>{_link(interface)}</td><td>{_e(issue.message)}</td><td>{_evidence_link(issue.evidence)}</td></tr>"
        for issue, interface in listed
    ]
    return _section(
        f"Issues to look at ({counts})",
        _table(["severity", "interface", "issue", "evidence"], rows, "nothing found", table_id="issues"),
    )


def to_html(catalog: Catalog, wrapped: dict[str, list[Wrapper]] | None = None, capacity: float = CAPACITY) -> str:
    """The report; with `wrapped` (from routes and a store), each interface shows the routes in
    front of it and their rungs."""
    summary: Rollup = rollup(catalog)
    roadmap = plan(catalog, capacity=capacity)
    problems = issues(catalog)
    svg, left_out = to_svg(catalog)
    interfaces = sorted(catalog.interfaces, key=lambda i: (i.entity or "~", i.kind.value, i.name))
    incomplete = [s for s in catalog.sources if not s.complete]
    sources = [
        f"<tr><td>{_e(s.locator)}</td><td>{_e(s.kind)}</td><td>"
        + ("complete" if s.complete else f'<span class="incomplete">incomplete: {_e(s.reason)}</span>')
        + f"</td><td class='num'>{len(s.warnings) + s.warnings_dropped}</td></tr>"
        for s in catalog.sources
    ]
    legend = "".join(f'<span class="pill" style="background:{c}">{p}</span> ' for p, c in PATTERN_COLOURS.items() if p)
    note = "click a box for its details; hover it for its full name" + (
        f"; {left_out} least connected nodes left out" if left_out else ""
    )
    headline = (
        f"{len(catalog.interfaces)} interfaces · {len(catalog.edges)} dependencies · "
        f"{sum(units(i).score for i in catalog.interfaces)} effort units · "
        f"catalog of {catalog.generated_at:%Y-%m-%d %H:%M} UTC · report {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if incomplete:
        headline += f' · <span class="incomplete">{len(incomplete)} sources incomplete</span>'
    columns = [
        "~name",
        "~kind",
        "~entity",
        "~system",
        "~pattern",
        "~disposition",
        "formats",
        "~seen:num",
        "cadence",
        "~effort:num",
        "~tier:num",
    ] + ([] if wrapped is None else ["~route · rung"])
    body = [
        _group_table("By legal entity", summary.entities),
        _group_table("By system", summary.systems),
        *_roadmap_sections(roadmap),
        _issues_section(catalog, problems),
        _section(
            "Dependency graph",
            f'<p class="legend">{legend}<span class="muted">{note}</span></p>'
            '<div class="graph-tools" role="toolbar" aria-label="zoom the graph">'
            '<button type="button" data-zoom="fit">fit</button><button type="button" data-zoom="out" '
            'aria-label="zoom out">−</button><button type="button" data-zoom="in" aria-label="zoom in">+</button>'
            '<button type="button" data-zoom="actual">100 %</button> <span id="zoom-level" class="muted"></span>'
            '<span class="muted"> · drag to pan, Ctrl + wheel to zoom</span></div>'
            f'<div id="graph-box">{svg}</div>',
        ),
        _section(
            f'Interfaces (<span id="shown">{len(interfaces)}</span> of {len(interfaces)})',
            _filters(interfaces)
            + _table(
                columns,
                [_row(i, None if wrapped is None else wrapped.get(i.id, [])) for i in interfaces],
                table_id="interfaces",
            ),
        ),
        _section(
            "Details",
            "".join(_details(i, problems.get(i.id, []), (wrapped or {}).get(i.id, [])) for i in interfaces),
        ),
        _section("Sources", _table(["source", "kind", "state", "warnings:num"], sources)),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Banyan catalog report</title><style>{_CSS}</style></head>\n"
        f"<body><header><h1>Legacy integration catalog</h1><p>{headline}</p></header>\n"
        f"<main>{''.join(body)}</main><script>{_JS}</script></body></html>\n"
    )


def _md(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _roadmap_markdown(roadmap: Roadmap) -> list[str]:
    lines = [
        "## Roadmap: wrap, wave by wave",
        "",
        f"{roadmap.weeks} weeks at {roadmap.capacity:g} effort units a week.",
        "",
        "| wave | weeks | tier | interface | kind | entity | dependants | effort | why |",
        "|---:|---:|---:|---|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {wave.number} | {wave.first_week}–{wave.last_week} | {step.tier} | {_md(step.interface.name)} | "
        f"{step.interface.kind.value} | "
        f"{_md(step.interface.entity)} | {step.dependants} | {step.effort} | {_md('; '.join(step.why))} |"
        for wave in roadmap.waves
        for step in wave.steps
    ] or ["| — | | | | | | | | |"]
    lines += [
        "",
        "## Roadmap: refactor to events",
        "",
        "| tier | interface | carries | entity | publish from | why |",
        "|---:|---|---|---|---|---|",
    ]
    lines += [
        f"| {step.tier} | {_md(step.interface.name)} | {_md(step.interface.business_object)} | "
        f"{_md(step.interface.entity)} | {_md(', '.join(step.publish_from))} | {_md('; '.join(step.why))} |"
        for step in roadmap.events
    ] or ["| — | | | | | |"]
    lines += ["", "## Roadmap: retire", "", "| interface | kind | entity | evidence |", "|---|---|---|---|"]
    lines += [
        f"| {_md(step.interface.name)} | {step.interface.kind.value} | {_md(step.interface.entity)} | "
        f"{_md('; '.join(step.why))} |"
        for step in roadmap.retire
    ] or ["| — | | | |"]
    return lines


def to_markdown(catalog: Catalog, wrapped: dict[str, list[Wrapper]] | None = None, capacity: float = CAPACITY) -> str:
    summary = rollup(catalog)
    lines = [
        "# Legacy integration catalog",
        "",
        f"{len(catalog.interfaces)} interfaces, {len(catalog.edges)} dependencies, "
        f"{sum(units(i).score for i in catalog.interfaces)} effort units.",
        "",
    ]
    for title, groups in (("By legal entity", summary.entities), ("By system", summary.systems)):
        lines += [
            f"## {title}",
            "",
            "| name | interfaces | effort units | sync_api | event | batch | orchestration |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {_md(g.name)} | {g.interfaces} | {g.units} | "
            + " | ".join(str(g.by_pattern.get(p, 0)) for p in ("sync_api", "event", "batch", "orchestration"))
            + " |"
            for g in groups
        ]
        lines.append("")
    lines += _roadmap_markdown(plan(catalog, capacity=capacity))
    problems = issues(catalog)
    listed = [(i, issue) for i in catalog.interfaces for issue in problems.get(i.id, [])]
    listed.sort(key=lambda pair: (SEVERITIES.index(pair[1].severity), pair[0].name))
    lines += ["", "## Issues to look at", "", "| severity | interface | issue | evidence |", "|---|---|---|---|"]
    lines += [
        f"| {issue.severity} | {_md(i.name)} | {_md(issue.message)} | `{_md(issue.evidence)}` |" for i, issue in listed
    ] or ["| — | | | |"]
    route_column = wrapped is not None
    lines += [
        "",
        "## Interfaces",
        "",
        "| name | kind | entity | system | pattern | disposition | tier | effort | locator |"
        + (" route · rung |" if route_column else ""),
        "|---|---|---|---|---|---|---:|---:|---|" + ("---|" if route_column else ""),
    ]
    for i in sorted(catalog.interfaces, key=lambda i: (i.entity or "~", i.kind.value, i.name)):
        pattern = i.pattern.name if i.pattern else ""
        disposition = i.disposition.name if i.disposition else ""
        tier = str(i.criticality.tier) if i.criticality else ""
        cells = [_md(i.name), i.kind.value, _md(i.entity), _md(i.system), pattern, disposition, tier]
        cells.append(str(units(i).score))
        routes = "; ".join(map(str, (wrapped or {}).get(i.id, [])))
        lines.append(f"| {' | '.join(cells)} | `{_md(i.locator)}` |" + (f" {_md(routes)} |" if route_column else ""))
    return "\n".join(lines) + "\n"
