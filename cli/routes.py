"""`banyan serve`, `banyan routes …` and `banyan keys …`: the gateway's commands."""

from __future__ import annotations

import getpass
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutover.store import StoreError
from events.brokers import open_broker
from gateway.app import DEFAULT_MAX_BODY, Settings
from gateway.consumers import Consumers, digest, new_key
from gateway.guessing import trusted_networks
from specs.files import RouteError, json_schema, load_folder
from specs.policy import PolicyError, load_policy, policy_problems

routes_app = typer.Typer(help="Check, export and scaffold route specs.", no_args_is_help=True)
keys_app = typer.Typer(help="Create API keys for consumers.", no_args_is_help=True)
console = Console(stderr=True)


class Deliveries(StrEnum):
    apart = "apart"
    inline = "inline"


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def serve_command(
    routes: Annotated[Path, typer.Option(help="folder of route specs (*.yaml)")] = Path("routes"),
    consumers: Annotated[Path | None, typer.Option(help="consumers file with hashed keys and scopes")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="processes sharing the port", min=1)] = 1,
    deliveries: Annotated[
        Deliveries,
        typer.Option(
            help="with a store: apart, one more process delivers the outbox's copies and accepted writes, off "
            "the workers' event loops; inline, each worker delivers those it settles"
        ),
    ] = Deliveries.apart,
    max_body: Annotated[int, typer.Option(help="largest request body in bytes", min=1)] = DEFAULT_MAX_BODY,
    insecure_no_auth: Annotated[bool, typer.Option(help="serve without API keys (local experiments only)")] = False,
    access_log: Annotated[bool, typer.Option(help="write a JSON access log line per request")] = True,
    store: Annotated[
        str | None,
        typer.Option(
            envvar="BANYAN_STORE", help="cutover store: a SQLite file, or postgresql://… for several gateways"
        ),
    ] = None,
    admin_key: Annotated[
        str | None, typer.Option(envvar="BANYAN_ADMIN_KEY", help="key for the admin API (needs --store); best via env")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="URL called when a guardrail steps a route down")] = None,
    in_doubt_after: Annotated[
        float, typer.Option(help="seconds after which an outbox write with no outcome is listed as in doubt")
    ] = 60.0,
    rate_store: Annotated[
        str | None,
        typer.Option(envvar="BANYAN_RATE_STORE", help="redis://… to share rate limits across workers and instances"),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="an address or network (10.0.0.0/8) of a proxy in front of the gateway, such as nginx: its "
            "X-Forwarded-For names the client whose wrong keys are counted (repeat for several)"
        ),
    ] = None,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
            help="an OTLP/HTTP collector (http://host:4318): "
            "export a span per call, side call, outbox delivery and event publish (off by default)",
        ),
    ] = None,
    events_broker: Annotated[
        str | None,
        typer.Option(
            envvar="BANYAN_EVENTS_BROKER",
            help="nats://… or amqp://…: where the routes' events are "
            "published (needs --store; best via env when it holds a password)",
        ),
    ] = None,
) -> None:
    """Serve the managed APIs in front of the legacy backends.

    Example: banyan serve --routes routes --consumers consumers.yaml --port 8080 --workers 2
    """
    from gateway.serve import serve

    if consumers is None and store is None and not insecure_no_auth:
        raise _fail(
            "name a --consumers file or a --store that holds the keys (create them with `banyan keys create`), "
            "or pass --insecure-no-auth"
        )
    try:
        loaded = Consumers.load(consumers) if consumers else (None if insecure_no_auth else Consumers([]))
        if admin_key and not store:
            raise _fail("the admin API changes the cutover store: name it with --store")
        if rate_store and not rate_store.startswith(("redis://", "rediss://", "unix://")):
            raise _fail(f"--rate-store takes redis://host:port[/db], not {rate_store!r}")
        trusted_networks(trusted_proxy or [])  # a ValueError names the value that is no address
        if otlp_endpoint and not otlp_endpoint.startswith(("http://", "https://")):
            raise _fail(f"--otlp-endpoint takes http://host:port (OTLP over HTTP), not {otlp_endpoint!r}")
        if events_broker:
            if not store:
                raise _fail("the events wait in the cutover store until the broker has them: name it with --store")
            open_broker(events_broker)  # a ValueError names the schemes it takes
        settings = Settings(
            routes,
            loaded,
            max_body,
            store=store,
            admin_key=admin_key,
            webhook=webhook,
            in_doubt_after=in_doubt_after,
            rate_store=rate_store,
            events_broker=events_broker,
            otlp_endpoint=otlp_endpoint,
            deliveries="apart" if deliveries is Deliveries.apart else "here",
            trusted_proxies=tuple(trusted_proxy or ()),
        )
        serve(settings, host, port, workers, access_log)
    except (RouteError, ValueError, StoreError) as exc:
        raise _fail(str(exc)) from None


@routes_app.command("check")
def routes_check(
    folder: Annotated[Path, typer.Argument(help="folder of route specs")] = Path("routes"),
    policy: Annotated[
        Path | None, typer.Option(help="the organisation's standards (a policy file): what breaks them is refused")
    ] = None,
) -> None:
    """Validate every route and flow file; errors name the file and the line.

    Example: banyan routes check routes/ --policy standards.yaml
    """
    try:
        loaded = load_folder(folder)
        routes = loaded.routes
        standards = load_policy(policy).standards if policy is not None else None
    except (RouteError, PolicyError) as exc:
        for line in exc.problems if isinstance(exc, RouteError) else [str(exc)]:
            console.print(f"[red]✗[/] {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    broken = policy_problems(loaded, standards) if standards is not None else []
    if broken:
        for line in broken:
            console.print(f"[red]✗[/] {escape(line)}", highlight=False, soft_wrap=True)
        raise _fail(f"{len(broken)} problem{'s' if len(broken) > 1 else ''} against the standards of {policy}", 1)
    for route in routes:
        if route.operation is not None:
            where = f"{route.operation.method} {route.operation.path}"
        else:
            where = f"SOAP {route.passthrough.path if route.passthrough else '?'}"
        deprecated = route.operation.deprecated if route.operation else None
        if deprecated is not None:
            successor = f", successor {deprecated.successor}" if deprecated.successor else ""
            where += f" (deprecated since {deprecated.since}, sunset {deprecated.sunset}{successor})"
        typer.echo(f"✓ {route.name}: {where}")
    for flow in loaded.flows:
        sides = "legacy" + (" and cloud" if flow.cloud is not None else "")
        typer.echo(f"✓ {flow.name}: flow of {flow.source.folder}/{flow.source.pattern} to {sides}")
    for batch in loaded.batches:
        when = f"{batch.schedule.cron} ({batch.schedule.timezone})"
        typer.echo(f"✓ {batch.name}: batch of {batch.entity}'s exports at {when}, delivered to {batch.deliver}")
    for spec in loaded.reconciliations:
        sides = f"{spec.label('legacy')} ({spec.legacy.kind}) against {spec.label('cloud')} ({spec.cloud.kind})"
        when = f", at {spec.schedule.cron} ({spec.schedule.timezone})" if spec.schedule else ""
        typer.echo(f"✓ {spec.name}: reconciliation of {spec.entity} by {', '.join(spec.key)}: {sides}{when}")
    for name, item in loaded.owned().items():
        if item.tier == 1 and item.owner is None and not loaded.owners:
            console.print(
                f"[yellow]warning:[/] {name} is tier 1 and has no owner: nobody is told when it "
                "fails (owner: {team: …} on it, on its file, or per entity with owners:)",
                highlight=False,
            )


@routes_app.command("schema")
def routes_schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of route files, for editors.

    Example: banyan routes schema -o routes.schema.json
    """
    text = json.dumps(json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@routes_app.command("scaffold")
def routes_scaffold(
    catalog: Annotated[Path, typer.Argument(help="a catalog written by banyan scan")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write route skeletons into")] = Path("routes"),
    everything: Annotated[
        bool, typer.Option("--all", help="also scaffold interfaces the roadmap does not wrap (keep, retire …)")
    ] = False,
) -> None:
    """Write route skeletons for the SOAP operations, HTTP endpoints and file drops the roadmap wraps, and
    a flow in front of each drop of partner documents.

    Example: banyan routes scaffold catalog.json --out routes/scaffolded
    """
    from inventory_scan.catalog import Catalog
    from inventory_scan.errors import ScanError
    from inventory_scan.scaffold import scaffold

    try:
        loaded = Catalog.load(catalog)
    except ScanError as exc:
        raise _fail(str(exc)) from None
    routes = scaffold(loaded, everything)
    left_out = 0 if everything else sum(map(len, scaffold(loaded, True).values())) - sum(map(len, routes.values()))
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for kind, items in routes.items():
        if items:
            document = {"flows" if kind == "flows" else "routes": items}
            (out / f"{kind}.yaml").write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
            written += len(items)
    flows = len(routes.get("flows", []))
    typer.echo(
        f"wrote {written - flows} route and {flows} flow skeletons to {out}; fill in the TODOs, then "
        f"`banyan routes check {out}`"
    )
    if left_out:
        typer.echo(f"left out {left_out} for interfaces the roadmap does not wrap (--all writes them too)")


KeyStore = Annotated[
    str | None,
    typer.Option(envvar="BANYAN_STORE", help="keep the key in this cutover store: every gateway on it takes it up"),
]


def _spec(
    route: list[str] | None, entity: list[str] | None, rate: float, admin: bool, role: str | None = None
) -> dict[str, object]:
    found: dict[str, object] = {
        "routes": route or ["*"],
        "entities": entity or ["*"],
        "rate": rate,
        "burst": int(rate * 2),
        "admin": admin,
    }
    return found | ({"role": role} if role else {})


def _key_store(store: str) -> Any:
    from cutover.store import StoreError, open_store

    try:
        return open_store(store, create=False)
    except StoreError as exc:
        raise _fail(str(exc)) from None


def _positive(value: float) -> float:
    """A rate is more than 0 (and a number): said before any file is written."""
    if not value > 0 or value != value or value == float("inf"):
        raise typer.BadParameter(f"{value:g} is not a rate: give requests per second, more than 0")
    return value


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="the consumer's name")],
    consumers: Annotated[Path, typer.Option(help="consumers file to add the key to")] = Path("consumers.yaml"),
    route: Annotated[list[str] | None, typer.Option(help="route the key may call (repeat; default all)")] = None,
    entity: Annotated[
        list[str] | None, typer.Option(help="legal entity the key may serve (repeat; default all)")
    ] = None,
    rate: Annotated[float, typer.Option(help="requests per second per route", callback=_positive)] = 100.0,
    admin: Annotated[bool, typer.Option(help="an admin key")] = False,
    role: Annotated[
        str | None, typer.Option(help="a person's admin key: viewer, operator (changes the ladder) or admin")
    ] = None,
    store: KeyStore = None,
) -> None:
    """Create a key, keep its hash (in the store, or else the consumers file), and print the key once.

    Example: banyan keys create webshop --route order-create --entity ACME-DE --store cutover.db
    """
    if role is not None and role not in ("viewer", "operator", "admin"):
        raise _fail(f"--role is viewer, operator or admin, not {role!r}")
    key = new_key()
    if store is not None:
        from cutover.store import Conflict

        opened = _key_store(store)
        try:
            opened.put_consumer(name, digest(key), _spec(route, entity, rate, admin, role), getpass.getuser(), "create")
        except Conflict as exc:
            raise _fail(str(exc)) from None
        finally:
            opened.close()
        typer.echo(key)
        console.print(
            f"key for {name} kept hashed in the store; every gateway on it takes it within a second; "
            "it is shown only this once",
            highlight=False,
        )
        return
    if not consumers.parent.is_dir():
        raise _fail(f"{consumers.parent} is not a folder: create it, or point --consumers at an existing one")
    try:
        raw = yaml.safe_load(consumers.read_text(encoding="utf-8")) if consumers.exists() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(f"{consumers} cannot be read as a consumers file: {str(exc).splitlines()[0]}") from None
    data = raw or {"consumers": []}
    if not isinstance(data, dict) or not isinstance(data.get("consumers"), list):
        raise _fail(f"{consumers} is not a consumers file (it needs a top-level 'consumers:' list)")
    if any(isinstance(c, dict) and c.get("name") == name for c in data["consumers"]):
        raise _fail(f"{consumers} already has a consumer named {name}")
    data["consumers"].append({"name": name, "key_sha256": digest(key), **_spec(route, entity, rate, admin, role)})
    try:
        consumers.write_text(yaml.safe_dump(data, sort_keys=False))
    except OSError as exc:
        raise _fail(f"cannot write {consumers}: {exc.strerror or exc}") from None
    Consumers.load(consumers)  # refuse to leave a file the gateway cannot read
    typer.echo(key)
    console.print(f"key for {name} stored hashed in {consumers}; it is shown only this once", highlight=False)


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="the consumer whose key stops working")],
    store: KeyStore = None,
) -> None:
    """Stop a key: every gateway on the store refuses it within a second, no restart.

    Example: banyan keys revoke webshop --store cutover.db
    """
    from cutover.store import Conflict

    if store is None:
        raise _fail("keys are revoked in the store: name it with --store (or BANYAN_STORE)")
    opened = _key_store(store)
    try:
        opened.revoke_consumer(name, getpass.getuser())
    except Conflict as exc:
        raise _fail(str(exc)) from None
    finally:
        opened.close()
    console.print(f"key of {name} revoked: refused by every gateway on the store within a second", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    name: Annotated[str, typer.Argument(help="the consumer that gets a new key")],
    store: KeyStore = None,
) -> None:
    """Give a consumer a new key (its scopes stay) and print it once; the old key stops at once.

    Example: banyan keys rotate webshop --store cutover.db
    """
    from cutover.store import Conflict

    if store is None:
        raise _fail("keys are rotated in the store: name it with --store (or BANYAN_STORE)")
    opened = _key_store(store)
    try:
        spec = next((spec for found, _, spec, revoked in opened.consumers() if found == name and revoked is None), None)
        if spec is None:
            raise _fail(f"no consumer named {name} with a key to rotate: see banyan keys list")
        key = new_key()
        opened.put_consumer(name, digest(key), spec, getpass.getuser(), "rotate")
    except Conflict as exc:
        raise _fail(str(exc)) from None
    finally:
        opened.close()
    typer.echo(key)
    console.print(f"new key for {name}; the old one is refused within a second; shown only this once", highlight=False)


@keys_app.command("list")
def keys_list(store: KeyStore = None) -> None:
    """The consumers the store holds, with their scopes; never a key.

    Example: banyan keys list --store cutover.db
    """
    if store is None:
        raise _fail("name the store with --store (or BANYAN_STORE)")
    opened = _key_store(store)
    try:
        rows = opened.consumers()
    finally:
        opened.close()
    table = Table(title="API consumers in the store", title_justify="left")
    for column in ("name", "routes", "entities", "rate/s", "admin", "state"):
        table.add_column(column)
    for name, _, spec, revoked in rows:
        table.add_row(
            name,
            ", ".join(spec.get("routes", ["*"])),
            ", ".join(spec.get("entities", ["*"])),
            f"{spec.get('rate', '')}",
            "yes" if spec.get("admin") else "",
            f"revoked {revoked[:19]}" if revoked else "active",
        )
    Console().print(table)
