"""The `banyan` command: the composition root that mounts each package's sub-commands."""

from __future__ import annotations

import typer

from gateway.cutover_cli import cutover_app, outbox_app
from gateway.routes_cli import keys_app, routes_app, serve_command
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
app.add_typer(cutover_app, name="cutover")
app.add_typer(outbox_app, name="outbox")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
