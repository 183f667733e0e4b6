"""`banyan exceptions …`: everything that needs a person, in one inbox, each with its owner.

    banyan exceptions list --owner uk-edi --older-than 60      oldest first, a page at a time
    banyan exceptions show 17                                 the error, the evidence, the history
    banyan exceptions assign 17 --to bo      comment · snooze · resolve
    banyan exceptions replay 17 --reason "…"  discard · resend · delivered · acknowledge · repair

Each command first brings the inbox in line with the store (what failed since, what stopped
failing), with owners from the route files. Every action needs a reason or a note, is kept in the
exception's history with the actor, and is refused with who acted when someone else acted first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.cutover import Actor, Json, Key, Reason, Routes, Store, acting, console, errors, refuse_person
from cutover.store import Store as OpenStore
from cutover.store import StoreError, open_store
from inbox.collect import collect
from inbox.desk import ACTIONS, Desk
from inbox.store import Conflict, Inbox, InboxError, Item
from specs.files import RouteError, RouteFile, load_folder

exceptions_app = typer.Typer(
    help="Everything that needs a person, with its owner: list, act, resolve.", no_args_is_help=True
)
STATE_COLOURS = {"open": "red", "assigned": "yellow", "snoozed": "blue", "working": "magenta", "resolved": "green"}
Id = Annotated[int, typer.Argument(help="the exception's number (exceptions list)")]
Note = Annotated[str, typer.Option(help="what was done, or why: kept in the history")]


def _open(store: str, routes: Path | None) -> tuple[OpenStore, RouteFile]:
    """The store, and the route files (owners, flows, reconciliations) where there is a folder."""
    try:
        folder = load_folder(routes) if routes is not None and routes.is_dir() else RouteFile()
        return open_store(store, create=False), folder
    except (StoreError, RouteError) as exc:
        said = "; ".join(exc.problems) if isinstance(exc, RouteError) else str(exc)
        errors.print(f"[bold red]error:[/] {escape(said)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}" if minutes < 48 * 60 else f"{minutes // 1440} d"


@exceptions_app.command("list")
def exceptions_list(
    store: Store,
    owner: Annotated[str | None, typer.Option(help="only this owner's ('' for the unowned)")] = None,
    entity: Annotated[str | None, typer.Option(help="only this legal entity's")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. outbox_dead or file_refused")] = None,
    state: Annotated[str | None, typer.Option(help="only this state: open, assigned, snoozed, resolved")] = None,
    older_than: Annotated[int | None, typer.Option(help="only those open longer than this many minutes")] = None,
    after: Annotated[str | None, typer.Option(help="the next page: the cursor the last page printed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    sync: Annotated[bool, typer.Option(help="bring the inbox in line with the store first")] = True,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """The exceptions, oldest first.

    Example: banyan exceptions list --owner uk-edi --store cutover.db
    """
    opened, folder = _open(store, routes)
    try:
        if sync:
            collect(opened, folder)
        cursor = None
        if after:
            created, _, number = after.partition(":")
            try:
                cursor = (float(created), int(number))
            except ValueError:
                raise typer.BadParameter("a cursor is what the last page printed, e.g. 1765100000.5:42") from None
        items = Inbox(opened).page(
            owner, entity, kind, state, None if older_than is None else older_than * 60.0, cursor, limit
        )
    finally:
        opened.close()
    following = f"{items[-1].created}:{items[-1].id}" if len(items) == limit else None
    if as_json:
        print(json.dumps({"exceptions": [item.as_dict() for item in items], "next": following}))
        return
    now = time.time()
    table = Table(title="Exceptions, oldest first", title_justify="left")
    for column in ("#", "kind", "about", "key", "state", "owner", "×", "age", "what happened"):
        table.add_column(column, justify="right" if column in ("#", "×", "age") else "left", overflow="fold")
    for item in items:
        colour = STATE_COLOURS.get(item.state, "white")
        state = f"[{colour}]{item.state}[/]" + (f" → {escape(item.assignee)}" if item.assignee else "")
        table.add_row(
            str(item.id),
            item.kind,
            escape(f"{item.subject} · {item.entity}"),
            escape(item.key or ""),
            state,
            escape(item.owner or "—"),
            str(item.count),
            _age(item.age(now)),
            escape(item.error[:90]),
        )
    console.print(table)
    if following:
        console.print(f"more: --after {following}")


@exceptions_app.command("show")
def exceptions_show(item_id: Id, store: Store, routes: Routes = Path("routes"), as_json: Json = False) -> None:
    """One exception: what the system said, its evidence, what can be done, and its history.

    Example: banyan exceptions show 17 --store cutover.db
    """
    opened, folder = _open(store, routes)
    try:
        inbox = Inbox(opened)
        item, history = inbox.get(item_id), inbox.history(item_id)
    finally:
        opened.close()
    if item is None:
        raise _refused(f"no exception {item_id}", as_json)
    owner = folder.owner_of(item.subject, item.entity)
    if as_json:
        print(
            json.dumps(
                {
                    **item.as_dict(),
                    "actions": ACTIONS.get(item.kind, ()),
                    "owner_detail": owner.shown() if owner else None,
                    "history": [entry.as_dict() for entry in history],
                }
            )
        )
        return
    colour = STATE_COLOURS.get(item.state, "white")
    console.print(
        f"exception {item.id}: {item.kind} · {escape(item.subject)} · {escape(item.entity)}"
        f"{f' · {escape(item.key)}' if item.key else ''} — [{colour}]{item.state}[/]"
    )
    console.print(
        f"  since {item.since[:19]}, seen {item.count} time(s), last {item.last_seen[:19]}; stands for {item.source}"
    )
    console.print(
        f"  owner: {escape(owner.team) if owner else 'nobody'}"
        + (f" · {escape(owner.contact)}" if owner and owner.contact else "")
        + (f" · runbook {escape(owner.runbook)}" if owner and owner.runbook else "")
    )
    console.print(f"  what happened: {escape(item.error)}", highlight=False)
    actions = ", ".join(ACTIONS.get(item.kind, ())) or "none of its own"
    console.print(f"  can be: assigned, commented, snoozed, resolved; its own actions: {actions}")
    table = Table(title="History", title_justify="left")
    for column in ("at", "who", "did", "note"):
        table.add_column(column, overflow="fold")
    for entry in history:
        table.add_row(entry.at[:19], escape(entry.actor), entry.action, escape(entry.note))
    console.print(table)


def _refused(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        errors.print(f"[bold red]refused:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _done(
    store: str,
    routes: Path,
    as_json: bool,
    item_id: int,
    actor: str | None,
    key: str | None,
    act: Callable[[Desk, str], Item],
) -> None:
    """`act` on the exception as the person the key names (within their scope), or as `actor`."""
    opened, folder = _open(store, routes)
    who, person = acting(opened, actor, key)
    found = Inbox(opened).get(item_id) if person is not None else None
    if found is not None:
        refuse_person(person, found.subject, found.entity, folder.tags_of(found.subject), as_json)
    try:
        item = act(Desk(opened, folder), who)
    except (Conflict, InboxError, StoreError) as exc:
        raise _refused(str(exc), as_json) from None
    finally:
        opened.close()
    if as_json:
        print(json.dumps(item.as_dict()))
    else:
        colour = STATE_COLOURS.get(item.state, "white")
        console.print(f"[green]✓[/] exception {item.id} is [{colour}]{item.state}[/]")


@exceptions_app.command("assign")
def exceptions_assign(
    item_id: Id,
    store: Store,
    to: Annotated[str, typer.Option(help="a person or a team")],
    note: Note = "",
    actor: Actor = None,
    key: Key = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Give an exception to a person.

    Example: banyan exceptions assign 17 --to bo --store cutover.db
    """
    _done(store, routes, as_json, item_id, actor, key, lambda desk, who: desk.assign(item_id, to, who, note))


@exceptions_app.command("comment")
def exceptions_comment(
    item_id: Id,
    store: Store,
    note: Note,
    actor: Actor = None,
    key: Key = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Add a note to an exception's history.

    Example: banyan exceptions comment 17 --note "vendor ticket 4411" --store cutover.db
    """
    _done(store, routes, as_json, item_id, actor, key, lambda desk, who: desk.comment(item_id, note, who))


@exceptions_app.command("snooze")
def exceptions_snooze(
    item_id: Id,
    store: Store,
    minutes: Annotated[int, typer.Option(min=1)],
    note: Note = "",
    actor: Actor = None,
    key: Key = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Put an exception aside for a while; it comes back by itself.

    Example: banyan exceptions snooze 17 --minutes 120 --note "ERP vendor on it" --store cutover.db
    """
    _done(store, routes, as_json, item_id, actor, key, lambda desk, who: desk.snooze(item_id, minutes, who, note))


@exceptions_app.command("resolve")
def exceptions_resolve(
    item_id: Id,
    store: Store,
    note: Note,
    actor: Actor = None,
    key: Key = None,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Close an exception, saying what was done.

    Example: banyan exceptions resolve 17 --note "keyed in by hand" --store cutover.db
    """
    _done(store, routes, as_json, item_id, actor, key, lambda desk, who: desk.resolve(item_id, note, who))


class Side(StrEnum):
    """The side a repair sends the records to."""

    cloud = "cloud"
    legacy = "legacy"


def _action(name: str, summary: str, example: str) -> None:
    def command(
        item_id: Id,
        store: Store,
        reason: Reason = "",
        actor: Actor = None,
        key: Key = None,
        routes: Routes = Path("routes"),
        as_json: Json = False,
    ) -> None:
        _done(store, routes, as_json, item_id, actor, key, lambda desk, who: desk.act(item_id, name, who, reason))

    command.__doc__ = f"{summary}\n\n    Example: {example}\n    "
    exceptions_app.command(name)(command)


_action(
    "replay",
    "Deliver the outbox message or accepted write again, with its own idempotency key.",
    'banyan exceptions replay 17 --reason "the cloud ERP is back" --store cutover.db',
)
_action(
    "discard",
    "Close the message or file without delivering it.",
    'banyan exceptions discard 17 --reason "keyed in by hand" --store cutover.db',
)
_action(
    "resend",
    "Put a refused partner file back into its drop, as a new arrival.",
    'banyan exceptions resend 17 --reason "partner mapping fixed" --store cutover.db',
)
_action(
    "delivered",
    "Say the side did take a file in doubt (you checked its importer).",
    'banyan exceptions delivered 17 --reason "ERP log shows PO-12" --store cutover.db',
)
_action(
    "acknowledge",
    "Acknowledge a guardrail's step-down, so the pair may step up again.",
    'banyan exceptions acknowledge 17 --reason "cause fixed in CHG-88" --store cutover.db',
)


@exceptions_app.command("repair")
def exceptions_repair(
    item_id: Id,
    store: Store,
    reason: Reason = "",
    actor: Actor = None,
    key: Key = None,
    to: Annotated[Side, typer.Option(help="the side that gets the records")] = Side.cloud,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """Send what a drifted run found to one side, through the repair route's outbox.

    Example: banyan exceptions repair 17 --to cloud --reason "backfill" --store cutover.db
    """
    _done(
        store,
        routes,
        as_json,
        item_id,
        actor,
        key,
        lambda desk, who: desk.act(item_id, "repair", who, reason, to=to.value),
    )


@exceptions_app.command("prune")
def exceptions_prune(
    store: Store, days: Annotated[int, typer.Option(min=1, help="resolved longer ago")] = 90, as_json: Json = False
) -> None:
    """Forget resolved exceptions (and their history) after a while; open ones are never pruned.

    Example: banyan exceptions prune --days 90 --store cutover.db
    """
    opened, _ = _open(store, None)
    try:
        pruned = Inbox(opened).prune(days * 86400.0)
    finally:
        opened.close()
    if as_json:
        print(json.dumps({"pruned": pruned}))
    else:
        console.print(f"pruned {pruned} resolved exception(s)")
