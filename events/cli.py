"""`banyan events …`: publish what legacy systems already write down, as CloudEvents."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cutover.store import StoreError, open_store
from events.publish import BrokerError, JetStream, drain
from events.table import SourceError, TableSource

events_app = typer.Typer(help="Publish legacy changes as CloudEvents (NATS JetStream).", no_args_is_help=True)
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


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
        opened = open_store(store, create=False)
    except (SourceError, StoreError) as exc:
        raise _fail(str(exc)) from None

    async def run() -> int:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        target = JetStream(broker, stream, subject)
        await target.open()
        total = 0
        try:
            while True:
                total += await drain(reader, target, opened, batch)
                if not follow or stopping.is_set():
                    return total
                try:
                    await asyncio.wait_for(stopping.wait(), interval)
                except TimeoutError:
                    continue
                return total
        finally:
            await target.close()

    try:
        total = asyncio.run(run())
        mark = opened.event_mark(reader.key)
    except (SourceError, BrokerError) as exc:
        raise _fail(f"{exc}; nothing past the last published row is lost: run it again") from None
    finally:
        opened.close()
    typer.echo(f"published {total} events from {table} to {subject} (stream {stream}); {reader.key} is at {mark}")
