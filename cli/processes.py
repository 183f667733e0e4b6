"""`banyan processes …`: the instances of process routes, and each one's timeline of calls.

Every command takes `--json` for scripts.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.cutover import Json, Store, console, fail
from cutover.store import StoreError, open_store
from processes.book import Book

processes_app = typer.Typer(help="Process instances: where each stands, and the calls it made.", no_args_is_help=True)
STATE_COLOURS = {
    "completed": "green",
    "running": "yellow",
    "compensating": "yellow",
    "refused": "magenta",
    "compensated": "magenta",
    "failed": "red",
    "in_doubt": "red",
    "done": "green",
    "skipped": "dim",
}


def _book(store: str) -> Book:
    try:
        return Book(open_store(store, create=False))
    except StoreError as exc:
        raise fail(str(exc)) from None


def _coloured(state: str) -> str:
    return f"[{STATE_COLOURS.get(state, 'white')}]{state}[/]"


@processes_app.command("list")
def processes_list(
    store: Store,
    process: Annotated[str | None, typer.Argument(help="only this process")] = None,
    state: Annotated[
        str | None, typer.Option(help="only this state: running, completed, refused, compensated, failed, in_doubt")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Json = False,
) -> None:
    """The newest instances, with their state and why they ended.

    Example: banyan processes list group-order --state in_doubt --store cutover.db
    """
    book = _book(store)
    try:
        found = book.page(process, state, limit)
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        book.store.close()
    if as_json:
        print(json.dumps([instance.as_dict() for instance in found]))
        return
    table = Table(title="Process instances", title_justify="left")
    for column in ("instance", "process", "entity", "started"):
        table.add_column(column, no_wrap=True)
    for column in ("state", "status", "reason"):
        table.add_column(column, overflow="fold")
    for instance in found:
        table.add_row(
            instance.id,
            instance.process,
            instance.entity,
            instance.at[:19].replace("T", " "),
            _coloured(instance.state),
            str(instance.status or ""),
            escape(instance.reason),
        )
    console.print(table if found else "no process instances")


@processes_app.command("show")
def processes_show(
    instance: Annotated[str, typer.Argument(help="the instance's id (processes list)")],
    store: Store,
    as_json: Json = False,
) -> None:
    """One instance: its request, its calls in the order they were made (with the side that served
    each, and how long it took), compensations and the end.

    Example: banyan processes show 3f9c… --store cutover.db
    """
    book = _book(store)
    try:
        found = book.get(instance)
        calls = book.calls(instance) if found is not None else []
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        book.store.close()
    if found is None:
        raise fail(f"no process instance {instance}")
    if as_json:
        print(json.dumps({**found.as_dict(), "request": found.request, "calls": [c.as_dict() for c in calls]}))
        return
    console.print(
        f"[bold]{escape(found.process)}[/] {found.id}  {_coloured(found.state)}"
        + (f"  {found.status}" if found.status else "")
        + f"\nstarted {found.at[:19]} by {escape(found.consumer or '(no key)')}, entity {escape(found.entity)}, "
        f"correlation id {escape(found.correlation_id)}" + (f", taken over {found.attempts}×" if found.attempts else "")
    )
    if found.reason:
        console.print(f"reason: {escape(found.reason)}")
    table = Table(title="Calls", title_justify="left")
    for column in ("call", "route", "entity", "state", "status", "served by", "seconds", "reason"):
        table.add_column(column, overflow="fold")
    for call in calls:
        told = call.as_dict()
        table.add_row(
            escape(call.call),
            call.route,
            call.entity,
            _coloured(call.state),
            str(call.status or ""),
            call.served_by or "",
            "" if told["seconds"] is None else f"{told['seconds']:.3f}",
            escape(call.reason),
        )
    console.print(table)
