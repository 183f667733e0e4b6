"""The `banyan` command: the composition root that mounts each package's sub-commands.

A command imports only its own group: `banyan outbox status` does not load the scanner, the brokers
or the gateway's app, so a command costs what it uses (the demo and the tests run hundreds of
them). `app`, every group mounted, is made when it is first asked for (the reference pages, the
tests, `banyan --help`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

GROUPS = {  # name → (module, its Typer app)
    "scan": ("inventory_scan.cli", "scan_app"),
    "catalog": ("inventory_scan.cli", "catalog_app"),
    "routes": ("cli.routes", "routes_app"),
    "keys": ("cli.routes", "keys_app"),
    "cutover": ("cli.changes", "cutover_app"),  # the cutover group with schedules and change requests added
    "outbox": ("cli.outbox", "outbox_app"),
    "flows": ("cli.flows", "flows_app"),
    "reconcile": ("cli.reconcile", "reconcile_app"),
    "processes": ("cli.processes", "processes_app"),
    "events": ("events.cli", "events_app"),
    "slo": ("cli.slo", "slo_app"),
    "exceptions": ("cli.exceptions", "exceptions_app"),
}
COMMANDS = {"serve": ("cli.routes", "serve_command"), "demo": ("cli.main", "demo_command")}


def build(only: str | None = None) -> typer.Typer:
    """The command with every group and command mounted, or only the one named."""
    made = typer.Typer(
        name="banyan",
        help="Find, wrap and shift legacy ERP integrations.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    made.callback()(_root)  # a group even when one command is mounted
    for name, (module, attribute) in GROUPS.items():
        if only in (None, name):
            made.add_typer(getattr(importlib.import_module(module), attribute), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if only in (None, name):
            made.command(name)(getattr(importlib.import_module(module), attribute))
    return made


def _root() -> None:
    """Find, wrap and shift legacy ERP integrations."""


def __getattr__(name: str) -> Any:
    if name == "app":
        made = globals()["app"] = build()
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


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
    words = [word for word in sys.argv[1:] if not word.startswith("-")]
    named = words[0] if words and (words[0] in GROUPS or words[0] in COMMANDS) else None
    build(named)()


if __name__ == "__main__":
    main()
