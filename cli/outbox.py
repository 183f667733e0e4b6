"""`banyan outbox …`: the writes owed to the side that is not serving — watch, replay, discard.

Every command takes `--json` for scripts. Replays and discards need a reason and are audited with
the actor (`--actor`, else the login name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.cutover import Actor, Json, Key, Reason, Routes, Store, acting, console, errors, refuse_person, refused
from cutover.outbox import Outbox, OutboxError
from cutover.store import StoreError, open_store
from specs.files import RouteError, RouteFile, load_folder

outbox_app = typer.Typer(
    help="Writes owed to the side that is not serving: watch, replay, discard.", no_args_is_help=True
)
STATE_COLOURS = {
    "pending": "yellow",
    "delivered": "green",
    "in_doubt": "magenta",
    "dead": "red",
    "cancelled": "white",
    "discarded": "white",
    "intent": "cyan",
}


def _outbox(store: str) -> Outbox:
    try:
        return Outbox(open_store(store, create=False))  # a new store has no messages: a typo, then
    except StoreError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@outbox_app.command("status")
def outbox_status(store: Store, as_json: Json = False) -> None:
    """How many messages are in each state.

    Example: banyan outbox status --store cutover.db
    """
    counts = _outbox(store).counts()
    if as_json:
        print(json.dumps(counts))
        return
    table = Table(title="Outbox", title_justify="left")
    for state in counts:
        table.add_column(state, justify="right")
    table.add_row(*(f"[{STATE_COLOURS[state]}]{count}[/]" for state, count in counts.items()))
    console.print(table)


@outbox_app.command("list")
def outbox_list(
    store: Store,
    state: Annotated[str | None, typer.Option(help="only this state, e.g. in_doubt or dead")] = None,
    route: Annotated[str | None, typer.Option(help="only this route")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: Json = False,
) -> None:
    """The messages, oldest first.

    Example: banyan outbox list --state in_doubt --store cutover.db
    """
    try:
        messages = _outbox(store).list(state, route, limit)
    except OutboxError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps([message.as_dict() for message in messages], indent=2))
        return
    table = Table(title="Outbox messages", title_justify="left")
    for column in ("#", "at", "route/entity", "key", "to", "state", "attempts", "last error"):
        table.add_column(column)
    for message in messages:
        colour = STATE_COLOURS.get(message.state, "white")
        where = f"{message.route}/{message.entity}"
        state = f"[{colour}]{message.state}[/]"
        table.add_row(
            str(message.id),
            message.at[:19],
            where,
            message.business_key or "",
            message.side,
            state,
            str(message.attempts),
            message.last_error,
        )
    console.print(table)


def _outbox_action(
    store: str,
    routes: Path,
    message_id: int,
    reason: str,
    actor: str | None,
    key: str | None,
    as_json: bool,
    replay: bool,
) -> None:
    outbox = _outbox(store)
    who, person = acting(outbox.store, actor, key)
    try:
        if person is not None:  # a person acts on the messages of their own routes and entities
            found = outbox.get(message_id)
            folder = load_folder(routes) if routes.is_dir() else RouteFile()
            refuse_person(person, found.route, found.entity, folder.tags_of(found.route), as_json)
        action = outbox.replay if replay else outbox.discard
        message = action(message_id, reason, who)
    except (OutboxError, StoreError, RouteError) as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps(message.as_dict()))
    else:
        console.print(f"[green]✓[/] message {message.id} is {message.state}")


@outbox_app.command("replay")
def outbox_replay(
    message_id: Annotated[int, typer.Argument(help="message number")],
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Deliver an in-doubt or dead message again, with its original idempotency key.

    Example: banyan outbox replay 42 --reason "the cloud has no PO-1234: checked" --store cutover.db
    """
    _outbox_action(store, routes, message_id, reason, actor, key, as_json, replay=True)


@outbox_app.command("discard")
def outbox_discard(
    message_id: Annotated[int, typer.Argument(help="message number")],
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Close an in-doubt or dead message without delivering it.

    Example: banyan outbox discard 42 --reason "keyed in by hand in the cloud ERP" --store cutover.db
    """
    _outbox_action(store, routes, message_id, reason, actor, key, as_json, replay=False)
