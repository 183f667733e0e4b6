"""`banyan slo status`: each legal entity's business SLOs, their error budget and its burn."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from cli.cutover import Json, Routes, Store, console, errors
from cutover import slos
from cutover.store import StoreError, open_store
from specs.files import RouteError, load_folder
from specs.flows import ladder

slo_app = typer.Typer(help="Business SLOs per legal entity: objective, error budget, burn rates.", no_args_is_help=True)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


@slo_app.command("status")
def status(
    store: Store,
    routes: Routes = Path("routes"),
    entity: str | None = typer.Option(None, help="only this legal entity"),
    as_json: Json = False,
) -> None:
    """Every route's and flow's SLOs per entity, over their windows: SLI, error budget left, burn rate over
    5 min, 1 h and 6 h, and whether it burns fast (pages) or slowly (a ticket).

    Example: banyan slo status --store cutover.db --entity ACME-US
    """
    try:
        folder = load_folder(routes)
        infos, _ = ladder(folder.routes, folder.flows, folder.batches)
        declared = [objective for info in infos for objective in info.slos]
        opened = open_store(store, create=False)
    except (RouteError, StoreError) as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        every = slos.standings(opened, declared)
    finally:
        opened.close()
    found = [standing for standing in every if entity in (None, standing.entity)]
    if as_json:
        print(json.dumps([standing.as_dict() for standing in found], indent=2))
        return
    table = Table(title="Business SLOs (each over its window)", title_justify="left")
    for column in ("entity", "route", "slo", "objective", "SLI", "budget left", "burn 5m · 1h · 6h", "alert"):
        table.add_column(column, justify="right" if column in ("SLI", "budget left") else "left")
    for standing in sorted(found, key=lambda s: (s.entity, s.route, s.slo)):
        alert = {"fast": "[bold red]fast burn[/]", "slow": "[yellow]slow burn[/]"}.get(standing.alert, "[green]ok[/]")
        burns = " · ".join(_rate(standing.burn[window]) for window in ("5m", "1h", "6h"))
        table.add_row(
            standing.entity,
            standing.route,
            standing.slo,
            f"{standing.objective:g} % {standing.days}d",
            "—" if standing.sli is None else f"{standing.sli:.2f} % of {standing.total:,}",
            "—" if standing.budget_left is None else f"{standing.budget_left:.0%}",
            burns,
            alert,
        )
    console.print(table)
    if not found:
        console.print("no SLO has events yet: they count once the gateway answers the routes that declare them")
