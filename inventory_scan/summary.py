"""A catalog, told in the terminal: drops per entity, then the sources and what went wrong; its diff and roadmap."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from inventory_scan.analysis.diff import Diff
from inventory_scan.analysis.roadmap import Roadmap
from inventory_scan.catalog import Catalog, Interface, Kind
from inventory_scan.redact import printable

_DIRECTION = {"into": "→ in", "out_of": "out →", "both": "↔", "unknown": "?"}
WARNINGS_SHOWN = 10


def _t(value: object) -> str:
    """A scanned value as plain text in rich markup: `[blink]` in a file name is not applied, and
    escape characters do not reach the terminal."""
    return escape(printable(str(value)))


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def _drop_table(entity: str, drops: list[Interface]) -> Table:
    folders = [str(drop.attributes.get("folder", "")) for drop in drops]
    # Folders are shown below their common parent, which the title names once.
    base = posixpath.commonpath(folders) if all(f.startswith("/") for f in folders) else ""
    if base in folders:
        base = posixpath.dirname(base)
    title = f"[bold]{_t(entity)}[/] — {len(drops)} drops" + (f" under {_t(base)}" if base else "")
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("drop", no_wrap=True)
    table.add_column("dir", no_wrap=True)
    table.add_column("formats", style="magenta", overflow="fold")
    table.add_column("files", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("last", no_wrap=True)
    table.add_column("cadence", style="green", no_wrap=True)
    table.add_column("stages")
    for drop, folder in sorted(zip(drops, folders, strict=True), key=lambda pair: pair[0].locator):
        stages = drop.attributes.get("stages", {})
        stage_text = " ".join(f"{_t(name)}:{info['files']}" for name, info in stages.items())
        errors = stages.get("error", {}).get("files", 0)
        shown = posixpath.relpath(folder, base) if base else folder
        table.add_row(
            f"{_t(shown)}/[cyan]{_t(drop.name)}[/]",
            _DIRECTION[drop.direction],
            _t(", ".join(drop.formats)) or "—",
            f"{drop.activity.count:,}",
            _size(drop.activity.bytes),
            _when(drop.activity.last_seen),
            drop.activity.cadence.label if drop.activity.cadence else "—",
            f"[red]{stage_text}[/]" if errors else stage_text,
        )
    return table


def _flow_table(flows: list[Interface], catalog: Catalog) -> Table:
    table = Table(title=f"[bold]ESB flows[/] — {len(flows)}", title_justify="left")
    table.add_column("product")
    table.add_column("flow", style="cyan", no_wrap=True)
    table.add_column("entity")
    table.add_column("from", overflow="fold")
    table.add_column("to", overflow="fold")
    table.add_column("calls")
    names = {i.id: i.name for i in catalog.interfaces}
    calls: dict[str, list[str]] = defaultdict(list)
    for edge in catalog.edges:
        if edge.relation == "calls":
            calls[edge.source].append(names.get(edge.target, edge.target))
    for flow in sorted(flows, key=lambda i: (str(i.attributes.get("product")), i.name)):
        table.add_row(
            _t(f"{flow.attributes.get('product')} {flow.attributes.get('flow_kind')}"),
            _t(flow.name),
            _t(flow.entity or ""),
            _t("\n".join(flow.reads)) or "—",
            _t("\n".join(flow.writes)) or "—",
            _t(", ".join(sorted(calls[flow.id]))),
        )
    return table


DATABASE_ROWS = 40


def _database_table(objects: list[Interface]) -> Table:
    """Triggers and routines, the ones with outside effects and most effort first."""
    ranked = sorted(objects, key=lambda i: (-len(i.side_effects), -(i.complexity.score if i.complexity else 0), i.name))
    title = f"[bold]Database objects[/] — {len(objects)}"
    if len(objects) > DATABASE_ROWS:
        title += f" (the {DATABASE_ROWS} with most side effects and effort shown)"
    table = Table(title=title, title_justify="left")
    table.add_column("object", style="cyan", no_wrap=True)
    table.add_column("on")
    table.add_column("writes", overflow="fold")
    table.add_column("side effects", style="magenta", overflow="fold")
    table.add_column("effort", justify="right")
    for item in ranked[:DATABASE_ROWS]:
        details = item.attributes
        if item.kind is Kind.db_trigger:
            state = "" if details.get("enabled", True) else " [red](disabled)[/]"
            on = _t(f"{details.get('timing', '')} {'/'.join(details.get('events', []))} {details.get('table', '')}")
            on += state
        else:
            on = _t(details.get("object", "routine"))
        low = " [yellow]?[/]" if details.get("confidence") == "low" else ""
        table.add_row(
            _t(item.name),
            on,
            _t(", ".join(item.writes)) or "—",
            _t(", ".join(item.side_effects)) or "—",
            f"{item.complexity.score if item.complexity else ''}{low}",
        )
    return table


def _operation_table(operations: list[Interface]) -> Table:
    table = Table(title=f"[bold]SOAP operations[/] — {len(operations)}", title_justify="left")
    table.add_column("operation", style="cyan", no_wrap=True)
    table.add_column("bindings")
    table.add_column("addresses", overflow="fold")
    for operation in sorted(operations, key=lambda i: i.name):
        bindings = sorted({b["protocol"] for b in operation.attributes.get("bindings", [])})
        addresses = "\n".join(operation.attributes.get("addresses", []))
        table.add_row(_t(operation.name), _t(", ".join(bindings)), _t(addresses))
    return table


def print_summary(console: Console, catalog: Catalog) -> None:
    drops: dict[str, list[Interface]] = defaultdict(list)
    for interface in catalog.interfaces:
        if interface.kind is Kind.file_drop:
            drops[interface.entity or "(no entity)"].append(interface)
    for entity in sorted(drops, key=lambda name: (name == "(no entity)", name)):
        console.print(_drop_table(entity, drops[entity]))
    flows = [i for i in catalog.interfaces if i.kind is Kind.esb_flow]
    if flows:
        console.print(_flow_table(flows, catalog))
    database = [i for i in catalog.interfaces if i.kind in (Kind.db_trigger, Kind.db_procedure)]
    if database:
        console.print(_database_table(database))
    operations = [i for i in catalog.interfaces if i.kind is Kind.soap_operation]
    if operations:
        console.print(_operation_table(operations))
    counts: dict[str, int] = defaultdict(int)
    for interface in catalog.interfaces:
        counts[interface.kind] += 1
    links = sum(edge.relation.startswith("link:") for edge in catalog.edges)
    if counts:
        listed = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        console.print(f"interfaces: {listed}; links between scans: {links}", highlight=False)
    for source in catalog.sources:
        stats = ", ".join(f"{value:,} {key}" for key, value in source.stats.items())
        state = "[green]complete[/]" if source.complete else f"[bold red]INCOMPLETE[/]: {_t(source.reason)}"
        console.print(f"source {_t(source.locator)}: {state} ({stats})", highlight=False)
        warned = len(source.warnings) + source.warnings_dropped
        if warned:
            kept = "kept in the catalog" if not source.warnings_dropped else f"the first {len(source.warnings)} kept"
            console.print(f"  [yellow]{warned} warnings[/] ({kept}):", highlight=False)
            for warning in source.warnings[:WARNINGS_SHOWN]:
                console.print(f"  [yellow]![/] {_t(warning.path)}: {_t(warning.message)}", highlight=False)
            if warned > WARNINGS_SHOWN:
                console.print(f"  … and {warned - WARNINGS_SHOWN} more", highlight=False)


def _show(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return "—" if value is None else str(value)


def print_diff(console: Console, found: Diff) -> None:
    if found.empty:
        console.print("[green]no changes[/]")
        return
    table = Table(title="[bold]Changes between the two scans[/]", title_justify="left")
    table.add_column("change")
    table.add_column("kind")
    table.add_column("interface", style="cyan", overflow="fold")
    table.add_column("what", overflow="fold")
    for interface in found.added:
        table.add_row("[green]added[/]", interface.kind.value, _t(interface.name), _t(interface.locator))
    for interface in found.removed:
        table.add_row("[red]removed[/]", interface.kind.value, _t(interface.name), _t(interface.locator))
    for change in found.changed:
        what = "; ".join(f"{k}: {_show(old)} → {_show(new)}" for k, (old, new) in change.fields.items())
        table.add_row("[yellow]changed[/]", change.kind, _t(change.name), _t(what))
    for change in found.activity:
        what = "; ".join(f"{k}: {_show(old)} → {_show(new)}" for k, (old, new) in change.fields.items())
        table.add_row("[magenta]activity[/]", change.kind, _t(change.name), _t(what))
    console.print(table)
    console.print(
        f"{len(found.added)} added, {len(found.removed)} removed, {len(found.changed)} changed, "
        f"{len(found.activity)} with activity moving sharply",
        highlight=False,
    )


def _tier(tier: int) -> str:
    return {1: "[bold red]1[/]", 2: "[yellow]2[/]"}.get(tier, str(tier))


def print_roadmap(console: Console, roadmap: Roadmap) -> None:
    """Waves to wrap, event candidates, and what to retire, each with why."""
    title = (
        f"[bold]Wrap, wave by wave[/] — tier 1 first, most depended on, cheapest; {roadmap.weeks} weeks at "
        f"{roadmap.capacity:g} effort units a week"
    )
    waves = Table(title=title, title_justify="left")
    waves.add_column("wave", justify="right")
    waves.add_column("weeks", justify="right")
    waves.add_column("tier", justify="right")
    for column in ("interface", "kind", "entity"):
        waves.add_column(column, overflow="fold")
    waves.add_column("deps", justify="right")
    waves.add_column("effort", justify="right")
    waves.add_column("why", overflow="fold")
    for wave in roadmap.waves:
        for n, step in enumerate(wave.steps):
            waves.add_row(
                str(wave.number) if n == 0 else "",
                (f"{wave.first_week}–{wave.last_week}" if wave.weeks > 1 else str(wave.first_week)) if n == 0 else "",
                _tier(step.tier),
                f"[cyan]{_t(step.interface.name)}[/]",
                step.interface.kind.value,
                _t(step.interface.entity or "—"),
                str(step.dependants),
                str(step.effort),
                _t(step.why[0] if step.why else ""),
            )
        waves.add_section()
    console.print(waves)
    events = Table(title="[bold]Refactor to events[/] — publish from", title_justify="left")
    events.add_column("tier", justify="right")
    for column in ("interface", "carries", "entity", "publish from", "why"):
        events.add_column(column, overflow="fold")
    for step in roadmap.events:
        events.add_row(
            _tier(step.tier),
            f"[cyan]{_t(step.interface.name)}[/]",
            _t(step.interface.business_object or "—"),
            _t(step.interface.entity or "—"),
            _t("\n".join(step.publish_from)),
            _t(step.why[0] if step.why else ""),
        )
    console.print(events)
    retire = Table(title="[bold]Retire[/] — with the evidence", title_justify="left")
    for column in ("interface", "kind", "entity", "evidence"):
        retire.add_column(column, overflow="fold")
    for step in roadmap.retire:
        retire.add_row(
            f"[cyan]{_t(step.interface.name)}[/]",
            step.interface.kind.value,
            _t(step.interface.entity or "—"),
            _t("; ".join(step.why)),
        )
    console.print(retire if roadmap.retire else "[bold]Retire[/]: nothing shows signs of disuse")
    effort = sum(step.effort for wave in roadmap.waves for step in wave.steps)
    console.print(
        f"{sum(len(w.steps) for w in roadmap.waves)} to wrap in {len(roadmap.waves)} "
        f"wave{'' if len(roadmap.waves) == 1 else 's'} ({effort} effort units), "
        f"{len(roadmap.events)} to refactor to events, {len(roadmap.retire)} to retire, {len(roadmap.keep)} to keep",
        highlight=False,
    )
