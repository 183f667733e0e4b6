"""`banyan events …`: publish what legacy systems already write down, as CloudEvents."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutover.store import Store, StoreError, open_store
from events.brokers import BrokerError, JetStream
from events.drop import DropSource
from events.log import EventLog, EventLogError
from events.publish import drain, drain_drop
from events.table import SourceError, TableSource

events_app = typer.Typer(
    help="Business events as CloudEvents: from legacy tables (NATS JetStream), and the routes' (list, replay).",
    no_args_is_help=True,
)
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _store(location: str) -> Store:
    """The cutover store at `location`, or the command ends saying why it cannot be opened."""
    try:
        return open_store(location, create=False)
    except StoreError as exc:
        raise _fail(str(exc)) from None


async def until_done(
    target: JetStream, drain_once: Callable[[JetStream], Awaitable[int]], follow: bool, interval: float
) -> int:
    """Publish what a source holds once, or with `follow` again every `interval` until Ctrl-C or
    SIGTERM; how many were published."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await target.open()
    total = 0
    try:
        while True:
            total += await drain_once(target)
            if not follow or stopping.is_set():
                return total
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
    finally:
        await target.close()


@events_app.command("from-table")
def from_table(
    table: Annotated[str, typer.Argument(help="the export or outbox table a legacy trigger fills")],
    connection_env: Annotated[str, typer.Option(help="environment variable holding the ODBC connection string")],
    event_type: Annotated[str, typer.Option("--type", help="the CloudEvents type, e.g. com.acme.order.status")],
    source: Annotated[str, typer.Option(help="the CloudEvents source: the legacy system, e.g. /erp/us")],
    subject: Annotated[str, typer.Option(help="the NATS subject to publish on")],
    store: Annotated[str, typer.Option(envvar="BANYAN_STORE", help="cutover store keeping how far it got")],
    mark_column: Annotated[str, typer.Option(help="a column that only grows (an id; SQLite: rowid)")] = "rowid",
    subject_column: Annotated[
        str | None, typer.Option(help="the column the event is about (CloudEvents subject)")
    ] = None,
    entity: Annotated[str | None, typer.Option(help="legal entity, carried as the legalentity extension")] = None,
    broker: Annotated[str, typer.Option(help="NATS server")] = "nats://127.0.0.1:4222",
    stream: Annotated[str, typer.Option(help="JetStream stream (created if missing)")] = "BANYAN",
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="rows per published batch")] = 500,
    follow: Annotated[bool, typer.Option(help="keep polling for new rows until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls with --follow")] = 1.0,
) -> None:
    """Publish each row a legacy trigger wrote into TABLE as one CloudEvent, past the last one published.

    Example: banyan events from-table order_export --connection-env ERP_US_ODBC --type com.acme.order.status
    --source /erp/us --subject acme.us.orders --subject-column order_id --entity ACME-US --store cutover.db
    """
    connection = os.environ.get(connection_env)
    if not connection:
        raise _fail(f"environment variable {connection_env} (the ODBC connection string) is not set")
    try:
        reader = TableSource(connection, table, mark_column, event_type, source, subject_column, entity)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    opened = _store(store)

    try:
        target = JetStream(broker, stream, [subject])
        total = asyncio.run(
            until_done(target, lambda target: drain(reader, target, subject, opened, batch), follow, interval)
        )
        mark = opened.event_mark(reader.key)
    except (SourceError, BrokerError) as exc:
        raise _fail(f"{exc}; nothing past the last published row is lost: run it again") from None
    finally:
        opened.close()
    typer.echo(f"published {total} events from {table} to {subject} (stream {stream}); {reader.key} is at {mark}")


@events_app.command("from-drop")
def from_drop(
    folder: Annotated[Path, typer.Argument(help="the drop folder a legacy system writes files into")],
    event_type: Annotated[str, typer.Option("--type", help="the CloudEvents type, e.g. com.acme.shipment.advised")],
    source: Annotated[str, typer.Option(help="the CloudEvents source: the legacy system, e.g. /erp/uk")],
    subject: Annotated[str, typer.Option(help="the NATS subject to publish on")],
    store: Annotated[str, typer.Option(envvar="BANYAN_STORE", help="cutover store keeping what was published")],
    pattern: Annotated[str, typer.Option(help="only files whose name matches (fnmatch)")] = "*",
    entity: Annotated[str | None, typer.Option(help="legal entity, carried as the legalentity extension")] = None,
    settle: Annotated[float, typer.Option(min=0, help="seconds a file must stay unchanged")] = 2.0,
    broker: Annotated[str, typer.Option(help="NATS server")] = "nats://127.0.0.1:4222",
    stream: Annotated[str, typer.Option(help="JetStream stream (created if missing)")] = "BANYAN",
    follow: Annotated[bool, typer.Option(help="keep watching for new files until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between looks with --follow")] = 1.0,
) -> None:
    """Publish each file that lands in FOLDER as one CloudEvent (its facts and content), once.

    Example: banyan events from-drop .demo/drops/shipments/in --pattern 'ASN_*.json' --type com.acme.shipment.advised
    --source /warehouse --subject acme.shipments --store cutover.db
    """
    try:
        reader = DropSource(folder, pattern, event_type, source, entity, settle)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    opened = _store(store)

    try:
        target = JetStream(broker, stream, [subject])
        total = asyncio.run(
            until_done(target, lambda target: drain_drop(reader, target, subject, opened), follow, interval)
        )
    except BrokerError as exc:
        raise _fail(f"{exc}; nothing is lost: files not acknowledged are published on the next run") from None
    except OSError as exc:
        raise _fail(f"cannot read {folder}: {exc.strerror or exc}") from None
    finally:
        opened.close()
    typer.echo(f"published {total} files of {folder} to {subject} (stream {stream})")


@events_app.command("list")
def list_events(
    store: Annotated[str, typer.Option(envvar="BANYAN_STORE", help="the cutover store")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """How many events the routes recorded, per type: published, and waiting for the broker.

    Example: banyan events list --store cutover.db
    """
    opened = _store(store)
    try:
        counts = EventLog(opened).counts()
    finally:
        opened.close()
    by_type: dict[str, dict[str, int]] = {}
    for key, count in counts.items():
        kind, state = key.rsplit(" ", 1)
        by_type.setdefault(kind, {"pending": 0, "published": 0})[state] = count
    if as_json:
        typer.echo(json.dumps(by_type, indent=2, sort_keys=True))
        return
    table = Table(title="Events the routes recorded")
    for column in ("type", "published", "waiting for the broker"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for kind, states in sorted(by_type.items()):
        table.add_row(escape(kind), str(states["published"]), str(states["pending"]))
    Console().print(table)


@events_app.command("replay")
def replay(
    since: Annotated[str, typer.Option(help="from this time (ISO, UTC): 2026-12-01T09:00")],
    to: Annotated[str, typer.Option(help="up to this time (ISO, UTC), not included")],
    reason: Annotated[str, typer.Option(help="why: kept in the audit log")],
    store: Annotated[str, typer.Option(envvar="BANYAN_STORE", help="the cutover store")],
    event_type: Annotated[str | None, typer.Option("--type", help="only events of this type")] = None,
    actor: Annotated[str | None, typer.Option(help="who asks (default: your login name)")] = None,
) -> None:
    """Publish again the events recorded in a time range, for a consumer that was down; audited.
    Each keeps its id (consumers that saw it drop it); the gateways' relay publishes them in order.

    Example: banyan events replay --type com.acme.order.created --since 2026-12-01T09:00 --to 2026-12-01T12:00
    --reason "warehouse system was down" --store cutover.db
    """
    opened = _store(store)
    try:
        count = EventLog(opened).replay(event_type, since, to, actor or getpass.getuser(), reason)
    except EventLogError as exc:
        raise _fail(str(exc)) from None
    finally:
        opened.close()
    typer.echo(f"{count} events of {event_type or 'every type'} will be published again by the gateways' relay")
