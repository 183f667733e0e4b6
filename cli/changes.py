"""`banyan cutover propose / approve / reject / withdraw / changes`: four eyes on the big steps.

Mounted on `banyan cutover` when this module loads, beside the schedules (cli/schedules.py). A
step the route's gate names under `approval` is proposed by one person and applied when a second
person with the scope approves it (cutover/changes.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import cli.schedules  # noqa: F401  (mounts schedule, freeze and calendar on the same group)
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
    fail,
    in_scope,
    open_engine,
    refused,
    rung_label,
)
from cutover.changes import Changes
from cutover.engine import CutoverError
from cutover.store import Change, Conflict, StoreError

ChangeId = Annotated[int, typer.Argument(help="the change request's number (banyan cutover changes)")]
STATE_COLOURS = {"proposed": "yellow", "applied": "green", "scheduled": "cyan", "rejected": "red", "refused": "red"}


def _said(change: Change, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(change.as_dict()))
        return
    console.print(
        f"[green]✓[/] change {change.id} {what}: {change.route}/{change.entity} → "
        f"{rung_label(change.mode, change.percent)} ({change.state})"
    )
    if change.state == "proposed":
        console.print(f"  it needs a second person's approval: {escape(change.needs)}", highlight=False)


def propose(
    route: RouteName,
    entity: EntityName,
    mode: Annotated[str, typer.Argument(help="the rung to go to")],
    store: Store,
    reason: Reason = "",
    percent: Annotated[float, typer.Option(help="canary percent")] = 0.0,
    force: Annotated[bool, typer.Option(help="past a gate not saying Successful (the approver sees it)")] = False,
    at: Annotated[str | None, typer.Option(help="apply it at this time once approved (ISO 8601)")] = None,
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Propose a step up for a second person to approve, with the gate's evidence now.

    Example: banyan cutover propose order-create ACME-US cloud --reason "CAB-77: reconciled, 3 weeks clean"
    --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        change = Changes(engine).propose(route, entity, mode, reason, who, percent=percent, force=force, at=at)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    _said(change, as_json, "proposed")


def _decide(
    store: str,
    routes: Path,
    change_id: int,
    action: str,
    reason: str,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    changes = Changes(engine)
    found = engine.store.change(change_id)
    if found is None:
        raise fail(f"no change request {change_id}: banyan cutover changes lists them")
    in_scope(engine, person, found.route, found.entity, as_json)
    decide = {"approve": changes.approve, "reject": changes.reject, "withdraw": changes.withdraw}[action]
    try:
        decided = decide(change_id, reason, who)
    except (CutoverError, Conflict) as exc:
        raise refused(exc, as_json) from None
    _said(decided, as_json, {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn"}[action])


def _decision(action: str, summary: str, example: str) -> None:
    def command(
        change_id: ChangeId,
        store: Store,
        reason: Reason = "",
        routes: Routes = Path("routes"),
        actor: Actor = None,
        key: Key = None,
        as_json: Json = False,
    ) -> None:
        _decide(store, routes, change_id, action, reason, actor, key, as_json)

    command.__doc__ = f"{summary}\n\n    Example: {example}\n    "
    cutover_app.command(action)(command)


def changes(
    store: Store,
    state: Annotated[str | None, typer.Option(help="only these: proposed is the approvers' queue")] = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """The change requests, newest first: what waits for an approver, and what came of the others.

    Example: banyan cutover changes --state proposed --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    try:
        found = engine.store.changes(state)
    except StoreError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps([change.as_dict() for change in found], indent=2))
        return
    table = Table(title="Change requests", title_justify="left")
    for column in ("#", "route/entity", "to", "needs", "proposed by", "state", "reason", "decided"):
        table.add_column(column)
    now = time.time()
    for change in found:
        colour = STATE_COLOURS.get(change.state, "white")
        waiting = f" (expires in {max(change.expires - now, 0) / 3600:.0f} h)" if change.state == "proposed" else ""
        decided = f"{change.decided_by}: {change.note}" if change.decided_by else ""
        table.add_row(
            str(change.id),
            f"{change.route}/{change.entity}",
            rung_label(change.mode, change.percent) + (f" at {change.at[:16]}" if change.at else ""),
            escape(change.needs) + (" [red]forced[/]" if change.force else ""),
            escape(change.proposed_by),
            f"[{colour}]{change.state}[/]{waiting}",
            escape(change.reason),
            escape(decided),
        )
    console.print(table)


cutover_app.command("propose")(propose)
_decision(
    "approve",
    "Approve another person's proposal: it is applied now (or scheduled, if it names a time).",
    'banyan cutover approve 7 --reason "checked the reconciliation" --store cutover.db --key $MY_KEY',
)
_decision(
    "reject",
    "Refuse a proposal, saying why.",
    'banyan cutover reject 7 --reason "not during the stock count" --store cutover.db',
)
_decision(
    "withdraw",
    "Take back your own proposal.",
    'banyan cutover withdraw 7 --reason "wrong entity" --store cutover.db',
)
cutover_app.command("changes")(changes)
