"""`banyan reconcile …`: do two systems hold the same records? Run, list, show and export runs.

Every command takes `--json` for scripts. A run streams both sides with a progress bar and is
kept in the store with its counts, the field paths that differ and the keys it found.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.cutover import Actor, Json, Reason, Routes, Store, actor_name, console, errors, fail, open_engine
from cutover.engine import CutoverError
from cutover.store import StoreError, open_store
from reconcile.repair import plan, repair
from reconcile.run import Reconciler
from reconcile.store import RunRow, Runs
from specs.files import RouteError, load_folder
from specs.reconciliations import Reconciliation
from specs.routes import Route

reconcile_app = typer.Typer(
    help="Reconciliation: both systems' records matched by key and compared.", no_args_is_help=True
)
STATE_COLOURS = {"done": "green", "running": "yellow", "failed": "red"}


def _spec(routes: Path, name: str) -> tuple[Reconciliation, list[Route]]:
    """The reconciliation named, and the folder's routes (a source may read through one)."""
    try:
        folder = load_folder(routes)
    except RouteError as exc:
        raise fail("; ".join(exc.problems)) from None
    declared = folder.reconciliations
    found = next((spec for spec in declared if spec.name == name), None)
    if found is None:
        known = ", ".join(spec.name for spec in declared) or "none"
        raise fail(f"no reconciliation {name!r} in {routes} (declared: {known})")
    return found, folder.routes


def _runs(store: str) -> Runs:
    try:
        return Runs(open_store(store, create=False))
    except StoreError as exc:
        raise fail(str(exc)) from None


@reconcile_app.command("run")
def reconcile_run(
    name: Annotated[str, typer.Argument(help="the reconciliation, as declared in the routes folder")],
    store: Store,
    entity: Annotated[str, typer.Option(help="the legal entity whose records are reconciled")],
    since: Annotated[str | None, typer.Option(help="only records changed since (bound as :since)")] = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Stream both sides, match by key, compare, and keep the run.

    Example: banyan reconcile run us-orders --entity ACME-US --store cutover.db
    """
    spec, declared = _spec(routes, name)
    if spec.entities and entity not in spec.entities:
        raise fail(f"{name} runs for {', '.join(spec.entities)}, not {entity}")
    try:
        opened = open_store(store)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        reconciler = Reconciler(spec, opened, routes=declared, base=routes)
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[read]:>12,} records"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=errors, transient=True, disable=as_json or not sys.stderr.isatty()) as bar:
            tasks = {side: bar.add_task(f"reading {spec.label(side)}", read=0) for side in ("legacy", "cloud")}
            run_id, _ = reconciler.run(entity, since, lambda side, read: bar.update(tasks[side], read=read))
        row = Runs(opened).get(run_id)
    finally:
        opened.close()
    assert row is not None
    if as_json:
        print(json.dumps(row.as_dict()))
    else:
        _summary(row, spec)
    if row.state == "failed":
        raise typer.Exit(1)


def _summary(row: RunRow, spec: Reconciliation | None = None) -> None:
    counts = row.counts
    names = counts.get("labels") or {}
    label = spec.label if spec is not None else (lambda side: str(names.get(side, side)))
    colour = STATE_COLOURS.get(row.state, "white")
    console.print(
        f"run {row.id}: {row.name} for {row.entity} — [{colour}]{row.state}[/]"
        + (f": {escape(row.reason)}" if row.reason else "")
    )
    if counts:
        read, only = counts.get("read", {}), counts.get("only", {})
        table = Table(title=f"{row.name} · {row.entity}", title_justify="left")
        for column in ("read", "matched", "differing", "only", "drift"):
            table.add_column(column, justify="right" if column != "only" else "left")
        table.add_row(
            f"{label('legacy')} {read.get('legacy', 0):,} · {label('cloud')} {read.get('cloud', 0):,}",
            f"{counts.get('matched', 0):,}",
            f"{counts.get('differing', 0):,}",
            f"{label('legacy')} {only.get('legacy', 0):,} · {label('cloud')} {only.get('cloud', 0):,}",
            f"{counts.get('drift_rate', 0):.3%}",
        )
        console.print(table)
        if counts.get("settled"):
            console.print(f"{counts['settled']:,} of the matched were found alike by the databases' hashes, never read")
        if counts.get("paths"):
            paths = Table(title="Where they differ", title_justify="left")
            for column in ("path", "kind", "records"):
                paths.add_column(column, justify="right" if column == "records" else "left")
            for place in counts["paths"]:
                paths.add_row(escape(place["path"]), place["kind"], f"{place['records']:,}")
            console.print(paths)
    for warning in row.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


@reconcile_app.command("status")
def reconcile_status(
    store: Store,
    name: Annotated[str | None, typer.Argument(help="only this reconciliation")] = None,
    entity: Annotated[str | None, typer.Option(help="only this legal entity")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Json = False,
) -> None:
    """The latest runs, newest first: their state, counts and drift.

    Example: banyan reconcile status us-orders --store cutover.db
    """
    found = _runs(store).recent(name, entity, limit)
    if as_json:
        print(json.dumps([row.as_dict() for row in found]))
        return
    table = Table(title="Reconciliation runs", title_justify="left")
    for column in ("run", "name", "entity", "started", "state", "matched", "differing", "only legacy · cloud", "drift"):
        table.add_column(column)
    for row in found:
        counts, only = row.counts, row.counts.get("only", {})
        table.add_row(
            str(row.id),
            row.name,
            row.entity,
            row.started[:19],
            f"[{STATE_COLOURS.get(row.state, 'white')}]{row.state}[/]",
            f"{counts.get('matched', 0):,}",
            f"{counts.get('differing', 0):,}",
            f"{only.get('legacy', 0):,} · {only.get('cloud', 0):,}",
            f"{counts.get('drift_rate', 0):.3%}" if counts else "",
        )
    console.print(table if found else "no runs yet")


@reconcile_app.command("show")
def reconcile_show(
    run: Annotated[int, typer.Argument(help="the run's number (reconcile status)")],
    store: Store,
    limit: Annotated[int, typer.Option(help="keys shown of each kind", min=0)] = 10,
    as_json: Json = False,
) -> None:
    """One run: its counts, the paths that differ, and the first keys of each kind.

    Example: banyan reconcile show 12 --store cutover.db
    """
    runs = _runs(store)
    row = runs.get(run)
    if row is None:
        raise fail(f"no run {run}")
    found = {kind: runs.found(run, kind, limit) for kind in ("differs", "only_legacy", "only_cloud")}
    if as_json:
        keys = {kind: [{"key": key, **detail} for _, key, detail in items] for kind, items in found.items()}
        print(json.dumps(row.as_dict() | {"keys": keys}, default=str))
        return
    _summary(row)
    names = row.counts.get("labels") or {}
    for kind, items in found.items():
        if not items:
            continue
        side = kind.removeprefix("only_")
        title = f"only in {names.get(side, side)}" if kind.startswith("only_") else "differing"
        table = Table(title=title, title_justify="left")
        table.add_column("key")
        table.add_column("what")
        for _, key, detail in items:
            if kind == "differs":
                said = "; ".join(f"{d['path']}: {d['legacy']!r} → {d['cloud']!r}" for d in detail["differences"][:4])
            else:
                said = json.dumps(detail.get("record"), default=str)[:120]
            table.add_row(escape(key.replace("\x1f", " / ")), escape(said))
        console.print(table)


@reconcile_app.command("export")
def reconcile_export(
    run: Annotated[int, typer.Argument(help="the run's number")],
    store: Store,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: kind, key, path, legacy, cloud")] = True,
    output: Annotated[Path | None, typer.Option(help="write here instead of the terminal")] = None,
) -> None:
    """Every key a run found, one line per differing field (or per one-sided record), as CSV.

    Example: banyan reconcile export 12 --store cutover.db --output drift.csv
    """
    runs = _runs(store)
    if runs.get(run) is None:
        raise fail(f"no run {run}")
    handle = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["kind", "key", "path", "legacy", "cloud"])
        for kind, key, detail in runs.found(run):
            shown = key.replace("\x1f", " / ")
            if kind == "differs":
                for difference in detail["differences"]:
                    writer.writerow(
                        [kind, shown, difference["path"], _cell(difference["legacy"]), _cell(difference["cloud"])]
                    )
            else:
                writer.writerow([kind, shown, "", json.dumps(detail.get("record"), default=str), ""])
    finally:
        if output:
            handle.close()


def _cell(value: object) -> str:
    """A value as a spreadsheet reads it, never as a formula."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@reconcile_app.command("repair")
def reconcile_repair(
    run: Annotated[int, typer.Argument(help="the run whose findings are repaired")],
    store: Store,
    reason: Reason,
    to: Annotated[str, typer.Option(help="the side that gets the records it lacks: cloud or legacy")] = "cloud",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be sent, send nothing")] = False,
    routes: Routes = Path("routes"),
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Send what a run found missing or different to one side, through the outbox of the route that
    owns the entity; each record once, however often this is run. Audited with the actor and reason.

    Example: banyan reconcile repair 12 --to cloud --reason "CHG-510 backfill" --store cutover.db
    """
    if to not in ("cloud", "legacy"):
        raise fail(f"--to is cloud or legacy, not {to!r}")
    runs = _runs(store)
    row = runs.get(run)
    if row is None:
        raise fail(f"no run {run}")
    if row.state != "done":
        raise fail(f"run {run} is {row.state}: repair from a finished run (run it again)")
    spec, _ = _spec(routes, row.name)
    if spec.repair is None:
        raise fail(f"{spec.name} names no repair route: add repair: {{route: …}} to it in {routes}")
    if dry_run:
        planned, unmappable = plan(spec, runs.store, run, row.entity, to)
        if as_json:
            print(json.dumps({"would_send": [p.key for p in planned], "unmappable": unmappable}))
            return
        console.print(
            f"would send {len(planned):,} records to {to} through {spec.repair.route} "
            f"(keys already repaired with the same content are skipped when sent)"
        )
        for item in planned[:20]:
            console.print(f"  {escape(item.key.replace(chr(31), ' / '))}", highlight=False)
        for key, why in unmappable[:20]:
            console.print(f"[yellow]cannot map[/] {escape(key)}: {escape(why)}", highlight=False)
        return
    engine = open_engine(store, routes, create=False)
    try:
        rung = engine.rule(spec.repair.route, row.entity).rung
    except CutoverError as exc:
        raise fail(str(exc)) from None
    done = repair(spec, runs.store, run, row.entity, to, rung, actor_name(actor), reason)
    if as_json:
        print(json.dumps({"sent": len(done.sent), "already": len(done.already), "unmappable": done.unmappable}))
        return
    console.print(
        f"✓ {len(done.sent):,} records put in the outbox for {to} through {spec.repair.route}; "
        f"{len(done.already):,} were repaired before; the gateway's deliverer makes them"
    )
    for key, why in done.unmappable[:20]:
        console.print(f"[yellow]cannot map[/] {escape(key)}: {escape(why)}", highlight=False)
