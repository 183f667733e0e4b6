"""`banyan flows …`: where each flow's files went, side by side, and the files waiting for a person.

Every command takes `--json` for scripts. Closing an in-doubt file needs a reason and is audited
with the actor (`--actor`, else the login name).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.cutover import Actor, Json, Reason, Routes, Store, actor_name, console, errors, open_engine
from cutover.store import StoreError, open_store
from flows.journey import Journey

flows_app = typer.Typer(help="Files and batches on the ladder: where each file went, per side.", no_args_is_help=True)
STATE_COLOURS = {
    "delivered": "green",
    "delivering": "yellow",
    "new": "cyan",
    "refused": "red",
    "in_doubt": "magenta",
    "duplicate": "white",
    "discarded": "white",
}
DAY = 86400.0


def _journey(store: str) -> Journey:
    try:
        return Journey(open_store(store, create=False))
    except StoreError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@flows_app.command("status")
def flows_status(store: Store, routes: Routes = Path("routes"), as_json: Json = False) -> None:
    """Each flow × entity: its rung and its files of the last day, by state.

    Example: banyan flows status --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    counts = Journey(engine.store).counts(time.time() - DAY)
    pairs = sorted({(flow, entity) for flow, entity, _ in counts})
    rows: list[dict[str, Any]] = []
    for flow, entity in pairs:
        rule = engine.rule(flow, entity) if flow in engine.routes and entity != "?" else None
        states = {state: count for (f, e, state), count in counts.items() if (f, e) == (flow, entity)}
        rung = (
            "" if rule is None else (f"canary {rule.percent:g} %" if rule.mode.value == "canary" else rule.mode.value)
        )
        rows.append({"flow": flow, "entity": entity, "rung": rung, "files": states})
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="Flows (files of the last 24 h)", title_justify="left")
    for column in ("flow", "entity", "rung", "files"):
        table.add_column(column)
    for row in rows:
        files = ", ".join(f"[{STATE_COLOURS.get(s, 'white')}]{n} {s}[/]" for s, n in sorted(row["files"].items()))
        table.add_row(row["flow"], row["entity"], row["rung"], files)
    console.print(table if rows else "no files yet")


@flows_app.command("files")
def flows_files(
    flow: Annotated[str, typer.Argument(help="the flow")],
    store: Store,
    entity: Annotated[str | None, typer.Option(help="only this legal entity")] = None,
    state: Annotated[str | None, typer.Option(help="only this state, e.g. in_doubt or refused")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first", min=1)] = 50,
    as_json: Json = False,
) -> None:
    """A flow's recent files, with what each side got and answered.

    Example: banyan flows files uk-partner-orders --entity ACME-UK --store cutover.db
    """
    journey = _journey(store)
    found = journey.files(flow, entity, state, limit)
    described = [journey.described(row) for row in found]
    if as_json:
        print(json.dumps(described))
        return
    table = Table(title=f"Files of {flow}", title_justify="left")
    for column in ("id", "at", "name", "entity", "key", "rung", "state", "legacy", "cloud"):
        table.add_column(column)
    for item in described:
        sides = {side["side"]: side for side in item["sides"]}
        table.add_row(
            str(item["id"]),
            item["at"][:19],
            escape(item["name"]),
            item["entity"] or "",
            item["key"] or "",
            item["rung"] or "",
            f"[{STATE_COLOURS.get(item['state'], 'white')}]{item['state']}[/]"
            + (f"\n{escape(item['reason'])}" if item["reason"] else ""),
            _side(sides.get("legacy")),
            _side(sides.get("cloud")),
        )
    console.print(table if described else f"no files of {flow} yet")


def _side(side: dict[str, Any] | None) -> str:
    if side is None:
        return "—"
    answers = [  # e.g. "997 ✓ 855": an acknowledgement that accepted the file, and an order response
        f"{escape(reply['kind'])}{ {True: ' ✓', False: ' ✗ rejected'}.get(reply['accepted'], '') }"
        for reply in side["replies"]
    ]
    return str(side["state"]) + (f"\n{' '.join(answers)}" if answers else "")


@flows_app.command("resolve")
def flows_resolve(
    file_id: Annotated[int, typer.Argument(help="the in-doubt file's id (flows files --state in_doubt)")],
    store: Store,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="the side did take it (you checked its importer)")
    ] = False,
    discard: Annotated[
        bool, typer.Option("--discard", help="nobody is to get it; its source stays in the error folder")
    ] = False,
    reason: Reason = "",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Close a file in doubt, as delivered or discarded, with a reason (audited).

    Example: banyan flows resolve 42 --delivered --reason "ERP log shows PO-12 booked" --store cutover.db
    """
    journey = _journey(store)
    row = journey.get(file_id)
    problem = None
    if delivered == discard:
        problem = "say --delivered or --discard"
    elif not reason.strip():
        problem = "closing a file needs a reason (--reason): it is kept in the audit log"
    elif row is None:
        problem = f"no file {file_id}"
    elif row.state != "in_doubt":
        problem = f"file {file_id} is {row.state}, not in doubt"
    if problem is not None or row is None:
        if as_json:
            print(json.dumps({"error": problem}))
        else:
            errors.print(f"[bold red]refused:[/] {escape(problem or '')}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    state = "delivered" if delivered else "discarded"
    journey.finish(file_id, state, f"{reason} ({actor_name(actor)})")
    evidence = {"file": file_id, "name": row.name, "to": state}
    journey.store.record(
        actor_name(actor), row.flow, row.entity or "*", {"kind": "flow_file", "reason": reason, "evidence": evidence}
    )
    if as_json:
        print(json.dumps({"id": file_id, "state": state}))
    else:
        console.print(f"[green]✓[/] file {file_id} ({escape(row.name)}) is {state}")


@flows_app.command("runs")
def flows_runs(
    store: Store,
    batch: Annotated[str | None, typer.Argument(help="one scheduled batch; all when left out")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first", min=1)] = 20,
    as_json: Json = False,
) -> None:
    """The runs of the scheduled batches: what each side exported, what was delivered, how the
    records compared.

    Example: banyan flows runs us-nightly-stock --store cutover.db
    """
    from flows.batches import runs

    try:
        found = runs(open_store(store, create=False), batch, limit)
    except StoreError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(found))
        return
    table = Table(title=f"Runs of {batch}" if batch else "Scheduled batch runs", title_justify="left")
    columns = ("due", "state", "rung", "delivered", "records", "differ", "only L/C", "why")
    for column in columns if batch else ("batch", *columns):
        table.add_column(column, justify="right" if column in ("records", "differ") else "left")
    for run in found:
        colour = {"delivered": "green", "late": "yellow", "failed": "red", "missed": "red"}.get(run["state"], "white")
        cells = [
            run["due"][:16].replace("T", " "),
            f"[{colour}]{run['state']}[/]",
            run["rung"] or "",
            escape(run["delivered"] or "—"),
            f"{run['records']:,}",
            f"{run['mismatches']:,}",
            f"{run['only_legacy']}/{run['only_cloud']}",
            escape(run["reason"]),
        ]
        table.add_row(*cells if batch else (run["batch"], *cells))
    console.print(table if found else "no runs yet")
