"""`banyan cutover schedule / freeze / calendar`: changes at a time, and windows with none.

Mounted on `banyan cutover` when this module loads (the command's root asks for the cutover group
here); the same store, options and audit as the rest of the migration lead's commands.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.cutover import (
    Actor,
    EntityName,
    Json,
    Key,
    Reason,
    RouteName,
    Routes,
    Store,
    acting,
    console,
    cutover_app,
    in_scope,
    open_engine,
    refused,
    rung_label,
)
from cutover.engine import CutoverError


def schedule(
    route: RouteName,
    entity: EntityName,
    mode: Annotated[str, typer.Argument(help="the rung to go to")],
    at: Annotated[str, typer.Option(help="when, ISO 8601 (e.g. 2026-12-01T02:00:00+00:00)")],
    store: Store,
    reason: Reason = "",
    percent: Annotated[float, typer.Option(help="canary percent")] = 0.0,
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Apply a change at a time (a running gateway applies it; a freeze postpones it).

    Example: banyan cutover schedule order-status ACME-DE cloud_primary --at 2026-12-01T02:00Z
    --reason "night switch" --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        number = engine.schedule(route, entity, mode, at, reason, who, percent=percent)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps({"schedule": number}))
    else:
        console.print(f"[green]✓[/] scheduled #{number}: {route}/{entity} → {mode} at {at}")


def freeze(
    entity: Annotated[str, typer.Argument(help="legal entity, or * for all")],
    starts: Annotated[str, typer.Option(help="ISO 8601 start")],
    ends: Annotated[str, typer.Option(help="ISO 8601 end")],
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """No changes for an entity in a window (month-end close); guardrails still step down.

    Example: banyan cutover freeze ACME-US --starts 2026-11-28T00:00Z --ends 2026-12-02T00:00Z
    --reason "month-end close" --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, "*", entity, as_json)
    try:
        engine.freeze(entity, starts, ends, reason, who)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    result: dict[str, Any] = {"entity": entity, "starts": starts, "ends": ends}
    if as_json:
        print(json.dumps(result))
    else:
        console.print(f"[green]✓[/] {entity} frozen from {starts} to {ends}")


def calendar(
    store: Store,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Scheduled changes (pending, applied, refused) and freeze windows.

    Example: banyan cutover calendar --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    schedules, freezes = engine.store.schedules(), engine.store.freezes()
    if as_json:
        print(
            json.dumps({"schedules": [asdict(s) for s in schedules], "freezes": [asdict(f) for f in freezes]}, indent=2)
        )
        return
    table = Table(title="Scheduled changes", title_justify="left")
    for column in ("#", "at", "route/entity", "to", "state", "reason", "note"):
        table.add_column(column)
    for item in schedules:
        colour = {"pending": "yellow", "applied": "green", "refused": "red"}.get(item.state, "white")
        table.add_row(
            str(item.id),
            item.at[:16],
            f"{item.route}/{item.entity}",
            rung_label(item.mode, item.percent),
            f"[{colour}]{item.state}[/]",
            item.reason,
            item.note,
        )
    console.print(table)
    table = Table(title="Freeze windows", title_justify="left")
    for column in ("entity", "from", "until", "reason", "by"):
        table.add_column(column)
    for freeze_window in freezes:
        table.add_row(
            freeze_window.entity,
            freeze_window.starts[:16],
            freeze_window.ends[:16],
            freeze_window.reason,
            freeze_window.actor,
        )
    console.print(table)


cutover_app.command("schedule")(schedule)
cutover_app.command("freeze")(freeze)
cutover_app.command("calendar")(calendar)
