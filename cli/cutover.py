"""`banyan cutover …`: the migration lead's commands, on the same store the gateways read.

Every command takes `--json` for scripts. Changes need a reason and are audited with the actor
(`--actor`, else the login name).
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutover.decide import Rule, Side
from cutover.engine import BadRequest, CutoverError, Engine, Status
from cutover.scopes import Person, persons
from cutover.store import Conflict, StoreError, minute, open_store
from cutover.store import Store as StoreTables
from gateway.consumers import digest
from specs.files import RouteError, load_folder
from specs.flows import ladder

cutover_app = typer.Typer(
    help="Move routes from legacy to the cloud ERP, per legal entity, on evidence.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Say what went wrong on stderr (markup in it shown as is); the exit to raise, code 2."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


Store = Annotated[str, typer.Option(envvar="BANYAN_STORE", help="the cutover store: SQLite file or postgresql://…")]
Routes = Annotated[Path, typer.Option(help="folder of route specs (*.yaml)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
Reason = Annotated[str, typer.Option(help="why: kept in the audit log")]
Actor = Annotated[str | None, typer.Option(help="who makes the change (default: your login name)")]
Key = Annotated[
    str | None,
    typer.Option(
        envvar="BANYAN_KEY",
        help="your admin key: the change is yours, within your role and scope (needed once the store lists persons)",
    ),
]
RouteName = Annotated[str, typer.Argument(help="route name")]
EntityName = Annotated[str, typer.Argument(help="legal entity")]
Acknowledge = Annotated[
    bool, typer.Option(help="acknowledge the guardrail's step down too; say in --reason why it is safe now")
]
MODE_COLOURS = {
    "legacy": "white",
    "shadow": "cyan",
    "dual_write": "blue",
    "canary": "yellow",
    "cloud_primary": "magenta",
    "cloud": "green",
}
VERDICT_COLOURS = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow"}


def open_engine(store: str, routes: Path, create: bool = True) -> Engine:
    """The engine over the store; a read (`create=False`) never makes a new store for a mistyped path.

    It judges with the gates and guardrails the gateways recorded in the store; where the route files
    read here (in this shell's environment) disagree, a command that changes a rung says so, once."""
    try:
        loaded = load_folder(routes)
        engine = Engine(open_store(store, create=create), *ladder(loaded.routes, loaded.flows, loaded.batches))
        differences = engine.use_recorded_settings()
        if differences and create:
            more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
            errors.print(
                f"[yellow]note:[/] the gateway's gates and guardrails are used where these route files "
                f"differ: {escape(differences[0])}{more}",
                highlight=False,
                soft_wrap=True,
            )
        return engine
    except (RouteError, StoreError) as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def refused(exc: Exception, as_json: bool) -> typer.Exit:
    message = str(exc)
    if message.endswith("force the step with a reason"):  # the engine's words; here, the flag that does it
        message += " (--force --reason …)"
    if as_json:
        print(json.dumps({"error": message}))
    else:
        errors.print(f"[bold red]refused:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2 if isinstance(exc, BadRequest) else 1)  # a bad argument, or the ladder's refusal


def _done(rule: Rule, what: str, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "route": rule.route,
                    "entity": rule.entity,
                    "mode": rule.mode.value,
                    "percent": rule.percent,
                    "version": rule.version,
                }
            )
        )
        return
    percent = f" {rule.percent:g} %" if rule.mode.value == "canary" else ""
    console.print(
        f"[green]✓[/] {what} {rule.route}/{rule.entity} → [bold]{rule.mode.value}{percent}[/] (version {rule.version})"
    )


def actor_name(actor: str | None) -> str:
    return actor or getpass.getuser()


def acting(store: StoreTables, actor: str | None, key: str | None) -> tuple[str, Person | None]:
    """Who makes a change from the shell. A person's admin key (`--key`, BANYAN_KEY) makes it
    theirs: their name is the actor, their role and scope apply. Once the store lists persons
    (`banyan keys create NAME --role …`), a change needs one; before, the actor is `--actor` or the
    login name, as for one team's store."""
    rows = store.consumers()
    if key:
        hashed = digest(key)
        for name, key_sha256, spec, revoked_at in rows:
            person = Person.of(name, spec) if key_sha256 == hashed and revoked_at is None else None
            if person is not None:
                return person.name, person
        raise fail("that key is no person's admin key in this store (revoked, or a consumer's)")
    if persons(rows):
        raise fail("this store's changes are made by its persons: give your admin key (--key or BANYAN_KEY)")
    return actor_name(actor), None


def in_scope(engine: Engine, person: Person | None, route: str, entity: str, as_json: bool) -> None:
    """Refused, with the reason and nothing changed, unless the person may act on route × entity."""
    refusal = engine.refusal(person, route, entity)
    if refusal is not None:
        raise refused(CutoverError(f"{refusal}: nothing was changed"), as_json)


def refuse_person(person: Person | None, route: str, entity: str, tags: Iterable[str], as_json: bool) -> None:
    """`in_scope` where the tags come from elsewhere (the route files of the outbox's and the inbox's rows)."""
    refusal = person.refusal(route, entity, tags) if person is not None else None
    if refusal is not None:
        raise refused(CutoverError(f"{refusal}: nothing was changed"), as_json)


@cutover_app.command("status")
def status(
    store: Store,
    routes: Routes = Path("routes"),
    entity: Annotated[str | None, typer.Option(help="only this legal entity")] = None,
    route: Annotated[str | None, typer.Option(help="only this route")] = None,
    as_json: Json = False,
) -> None:
    """Where every route stands for every entity, with its evidence and the gate's verdict.

    Example: banyan cutover status --store cutover.db --entity ACME-US
    """
    engine = open_engine(store, routes, create=False)
    try:
        rows = engine.status(route, entity, attention=True)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    table = Table(title="Cutover", title_justify="left")
    for column in ("route", "entity", "mode", "%", "calls L/C", "errors C", "mismatch", "gate for the next rung"):
        table.add_column(column, justify="right" if column in ("%", "calls L/C", "errors C", "mismatch") else "left")
    for row in rows:
        mode = row.rule.mode.value
        window = row.window
        verdict = row.verdict.verdict.value if row.verdict else "—"
        reasons = "; ".join(row.verdict.reasons) if row.verdict else "on the cloud"
        table.add_row(
            row.route,
            row.entity,
            f"[{MODE_COLOURS[mode]}]{mode}[/]",
            f"{row.rule.percent:g}" if mode == "canary" else "",
            f"{window.calls_legacy}/{window.calls_cloud}",
            f"{window.cloud_error_rate:.1%}",
            f"{window.mismatch_rate:.1%} of {window.judged}",
            f"[{VERDICT_COLOURS.get(verdict, 'white')}]{verdict}[/] {reasons}"
            + (
                f"\n[bold red]⚠ the guardrail stepped it down at {row.step_down.at[:19]}[/]: "
                f"{escape(row.step_down.reason)} (acknowledge it before stepping up)"
                if row.step_down
                else ""
            )
            + _watching(row)
            + _owed(row.behind),
        )
    console.print(table)
    sources = sorted({row.settings_from for row in rows})
    if sources:
        console.print(f"gates and guardrails: {'; '.join(sources)}", highlight=False)


def _watching(row: Status) -> str:
    """The guardrail's open alert and held copies, as the status table says them."""
    said = ""
    if row.alert is not None:
        said += f"\n[yellow]⚠ guardrail alert since {row.alert.at[:19]}[/]: {escape(row.alert.reason)}"
    if row.copies_paused is not None:
        said += (
            f"\n[bold yellow]⏸ the cloud's copies are held since {row.copies_paused.at[:19]}[/]: "
            f"{escape(row.copies_paused.reason)} (banyan cutover resume, once the cloud is mended)"
        )
    return said


def _owed(behind: dict[str, tuple[int, float]]) -> str:
    """The writes each side is still owed, as the status table says them."""
    return "".join(
        f"\n[yellow]⏳ {side} owed {count} write{'s' if count > 1 else ''}[/] (the oldest "
        f"{max(time.time() - oldest, 0):.0f} s old): the keys they hold wait for them"
        for side, (count, oldest) in sorted(behind.items())
    )


def _pins(pins: list[str]) -> dict[str, Side]:
    parsed = {}
    for pin in pins:
        key, _, side = pin.rpartition("=")
        if not key or side not in ("legacy", "cloud"):
            errors.print(f"[bold red]error:[/] --pin takes KEY=legacy or KEY=cloud, not {pin!r}", highlight=False)
            raise typer.Exit(2)
        parsed[key] = Side(side)
    return parsed


@cutover_app.command("set")
def set_mode(
    route: RouteName,
    entity: Annotated[str, typer.Argument(help="legal entity, or * for the route's default")],
    mode: Annotated[str, typer.Argument(help="legacy, shadow, dual_write, canary, cloud_primary or cloud")],
    store: Store,
    reason: Reason = "",
    percent: Annotated[float, typer.Option(help="canary share of business keys, 0 < P ≤ 100")] = 0.0,
    pin: Annotated[list[str] | None, typer.Option(help="KEY=legacy|cloud: keep a key on a side (repeatable)")] = None,
    force: Annotated[bool, typer.Option(help="step up without a Successful verdict (audited)")] = False,
    expected_version: Annotated[int | None, typer.Option(help="refuse if the rule changed since this version")] = None,
    acknowledge: Acknowledge = False,
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Put one route × entity on a rung.

    Example: banyan cutover set order-status ACME-DE canary --percent 5 --reason "CAB-1234" --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        rule = engine.set(
            route,
            entity,
            mode,
            reason,
            who,
            percent=percent,
            pins=_pins(pin or []),
            force=force,
            expected_version=expected_version,
            acknowledge=acknowledge,
        )
    except (CutoverError, Conflict) as exc:
        raise refused(exc, as_json) from None
    _done(rule, "set", as_json)


@cutover_app.command("promote")
def promote(
    route: RouteName,
    entity: EntityName,
    store: Store,
    reason: Reason = "",
    force: Annotated[bool, typer.Option(help="step up without a Successful verdict (audited)")] = False,
    acknowledge: Acknowledge = False,
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """One rung up (canary goes 1 → 5 → 25 → 50 → 100 %), if the gate's verdict allows it.

    Example: banyan cutover promote order-status ACME-DE --reason "gate green for a day" --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        rule = engine.promote(route, entity, reason, who, force=force, acknowledge=acknowledge)
    except (CutoverError, Conflict) as exc:
        raise refused(exc, as_json) from None
    _done(rule, "promoted", as_json)


@cutover_app.command("acknowledge")
def acknowledge_step_down(
    route: RouteName,
    entity: EntityName,
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Say you have seen why the guardrail stepped a route × entity down; until then it cannot step up.

    Example: banyan cutover acknowledge inventory-availability ACME-US --reason "ATP fix in 2026.12" --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        down = engine.acknowledge(route, entity, reason, who)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps({"route": route, "entity": entity, "acknowledged": down.id, "at": down.at}))
        return
    console.print(
        f"[green]✓[/] acknowledged the step down of {route}/{entity} at {down.at[:19]} ({escape(down.reason)})"
    )


@cutover_app.command("resume")
def resume_copies(
    route: RouteName,
    entity: EntityName,
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Send the cloud's copies the guardrail holds (cloud write errors in dual_write) again.

    Example: banyan cutover resume order-create ACME-DE --reason "INC-9: cloud intake mended" --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        pause = engine.resume_copies(route, entity, reason, who)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        print(json.dumps({"route": route, "entity": entity, "resumed": pause.id, "paused_at": pause.at}))
        return
    console.print(f"[green]✓[/] the cloud's copies of {route}/{entity} go again (held since {pause.at[:19]})")


@cutover_app.command("rollback")
def rollback(
    route: RouteName,
    entity: EntityName,
    store: Store,
    reason: Reason = "",
    routes: Routes = Path("routes"),
    actor: Actor = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """One rung down; no gate, only a reason.

    Example: banyan cutover rollback order-status ACME-DE --reason "totals differ" --store cutover.db
    """
    engine = open_engine(store, routes)
    who, person = acting(engine.store, actor, key)
    in_scope(engine, person, route, entity, as_json)
    try:
        rule = engine.rollback(route, entity, reason, who)
    except (CutoverError, Conflict) as exc:
        raise refused(exc, as_json) from None
    _done(rule, "rolled back", as_json)


def rung_label(mode: str | None, percent: float | None) -> str:
    return f"{mode} {percent or 0:g}%" if mode == "canary" else str(mode)


@cutover_app.command("history")
def history(
    store: Store,
    routes: Routes = Path("routes"),
    entity: Annotated[str | None, typer.Option(help="only this legal entity")] = None,
    route: Annotated[str | None, typer.Option(help="only this route")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, oldest first, for export")] = False,
) -> None:
    """The audit log: who changed what, when, from what to what, why, and the evidence then.

    Example: banyan cutover history --store cutover.db --json > audit.jsonl
    """
    try:
        events = list(reversed(open_engine(store, routes, create=False).history(route, entity)))
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    if as_json:
        for event in events:
            sys.stdout.write(json.dumps(asdict(event), sort_keys=True) + "\n")
        return
    table = Table(title="Cutover audit", title_justify="left")
    for column in ("at", "actor", "kind", "route/entity", "from → to", "reason"):
        table.add_column(column)
    for event in events:
        change = ""
        if event.to_mode:
            change = (
                f"{rung_label(event.from_mode, event.from_percent)} → {rung_label(event.to_mode, event.to_percent)}"
            )
        kind = f"[red]{event.kind}[/]" if event.kind == "guardrail" else event.kind
        table.add_row(event.at[:19], event.actor, kind, f"{event.route}/{event.entity}", change, event.reason)
    console.print(table)


@cutover_app.command("mismatches")
def mismatches(
    route: RouteName,
    store: Store,
    entity: Annotated[str | None, typer.Option(help="only this legal entity")] = None,
    minutes: Annotated[int, typer.Option(help="look back this many minutes", min=1)] = 24 * 60,
    routes: Routes = Path("routes"),
    as_json: Json = False,
) -> None:
    """The fields where the two sides differ most, with masked samples.

    Example: banyan cutover mismatches order-status --entity ACME-DE --store cutover.db
    """
    engine = open_engine(store, routes, create=False)
    try:
        engine.check_names(route, entity)
    except CutoverError as exc:
        raise refused(exc, as_json) from None
    found = engine.store.differences(route, entity, minute() - minutes + 1)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(title=f"Where {route} differs (last {minutes} min)", title_justify="left")
    for column in ("path", "kind", "count", "of calls", "legacy vs itself", "verdict", "legacy", "cloud"):
        table.add_column(column, justify="right" if column in ("count", "of calls", "legacy vs itself") else "left")
    verdicts = {"difference": "[red]difference[/]", "noise": "[yellow]noise[/]", "unknown": "[dim]unknown[/]"}
    for row in found:
        sample = row["samples"][0] if row["samples"] else {"legacy": "", "cloud": ""}
        rate = f"{row['rate']:.2%}" if row["rate"] is not None else ""
        own = f"{row['legacy_own_rate']:.2%}" if row["legacy_own_rate"] is not None else "not sampled"
        table.add_row(
            escape(row["path"]),
            row["kind"],
            str(row["count"]),
            rate,
            own,
            verdicts[row["verdict"]],
            escape(json.dumps(sample["legacy"])),
            escape(json.dumps(sample["cloud"])),
        )
    console.print(table)
    noise = sorted({row["path"] for row in found if row["verdict"] == "noise"})
    if noise:
        console.print(
            f"legacy differs from itself as often on these: add to the route's compare block\n"
            f"  compare: {{ignore: [{', '.join(noise)}]}}",
            highlight=False,
            markup=False,
        )
