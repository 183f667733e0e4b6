"""The `banyan` command: the composition root that mounts each package's sub-commands."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from events.cli import events_app
from gateway.calendar_cli import add_calendar_commands
from gateway.cutover_cli import cutover_app
from gateway.exceptions_cli import exceptions_app
from gateway.flows_cli import flows_app
from gateway.outbox_cli import outbox_app
from gateway.reconcile_cli import reconcile_app
from gateway.routes_cli import keys_app, routes_app, serve_command
from gateway.slo_cli import slo_app
from inventory_scan.cli import catalog_app, scan_app

app = typer.Typer(
    name="banyan",
    help="Find, wrap and shift legacy ERP integrations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(scan_app, name="scan")
app.add_typer(catalog_app, name="catalog")
app.add_typer(routes_app, name="routes")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve_command)
add_calendar_commands(cutover_app)
app.add_typer(cutover_app, name="cutover")
app.add_typer(outbox_app, name="outbox")
app.add_typer(flows_app, name="flows")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(events_app, name="events")
app.add_typer(slo_app, name="slo")
app.add_typer(exceptions_app, name="exceptions")

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


@app.command("demo")
def demo_command(
    folder: Annotated[Path, typer.Argument(help="working folder for the estate (replaced)")] = Path(".demo"),
    once: Annotated[bool, typer.Option("--once", help="exit at the end instead of serving the console")] = False,
    port: Annotated[int, typer.Option(help="the gateway's port (default: a free one)")] = 0,
) -> None:
    """Run the demo distributor: scan its estate, serve its routes, walk its entities up the cutover ladder.

    Example: banyan demo .demo --once
    """
    if not DEMO.is_file():
        typer.echo("the demo ships with Banyan's source tree (scripts/demo.py): clone it and run `make demo`", err=True)
        raise typer.Exit(2)
    if importlib.util.find_spec("spyne") is None:  # ACME-DE's SOAP order service runs on it
        typer.echo("the demo needs spyne for its legacy SOAP service: pip install 'banyan[demo]'", err=True)
        raise typer.Exit(2)
    arguments = [str(folder), "--port", str(port), *(["--once"] if once else [])]
    os.execv(sys.executable, [sys.executable, str(DEMO), *arguments])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
