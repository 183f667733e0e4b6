"""`banyan scan …` and `banyan catalog …`: the architect's commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from inventory_scan.analysis.diff import diff
from inventory_scan.analysis.dispositions import RoadmapSettings
from inventory_scan.analysis.graph import to_dot, to_graphml, to_mermaid
from inventory_scan.analysis.patterns import PatternRule
from inventory_scan.analysis.pipeline import save_merged
from inventory_scan.analysis.report import to_html, to_markdown
from inventory_scan.analysis.roadmap import CAPACITY, WAVE_UNITS, plan
from inventory_scan.analysis.wrapped import Wrapper, wrappers
from inventory_scan.catalog import Catalog, json_schema
from inventory_scan.config import FileSource, ScanConfig
from inventory_scan.db.scan import DDL_SUFFIXES, DbScan, DbSource, connection_from_env
from inventory_scan.entities import EntityRule
from inventory_scan.errors import ScanError
from inventory_scan.esb import EsbScan, EsbSource
from inventory_scan.files.folders import FolderResult
from inventory_scan.files.scan import FileScan
from inventory_scan.files.scan import Progress as ScanProgress
from inventory_scan.redact import printable
from inventory_scan.summary import print_diff, print_roadmap, print_summary

scan_app = typer.Typer(help="Discover legacy integration points into a catalog.", no_args_is_help=True)
catalog_app = typer.Typer(help="Read, export and describe catalogs.", no_args_is_help=True)

console = Console(stderr=True)
# Tables keep their columns when the output goes to a file or a pipe instead of a terminal.
out_console = Console(width=None if Console().is_terminal else 150)


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _parse_entity(option: str) -> EntityRule:
    entity, sep, glob = option.partition("=")
    if not sep or not entity or not glob:
        raise _fail(f"--entity takes ENTITY=PATH_GLOB, e.g. --entity 'ACME-DE=*/acme_de/*' (got {option!r})")
    return EntityRule(entity=entity, path=glob)


Work = Callable[[ScanProgress], tuple[Catalog, list[str]]]
GraphFormat = Literal["dot", "mermaid", "graphml"]


def _run(
    work: Work, out: Path, pattern_rules: list[PatternRule] | None = None, roadmap: RoadmapSettings | None = None
) -> None:
    """Run a scan with a progress bar, merge it into `out`, print the summary; exit 1 if incomplete."""
    if out.exists():
        try:
            Catalog.load(out)  # fail before a long scan, not after it
        except ScanError as exc:
            raise _fail(f"{exc} (move it away or choose another --out)") from None
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.fields[folders]:,} folders · {task.fields[files]:,} files"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("scanning", total=None, folders=0, files=0)
        counts = {"folders": 0, "files": 0}

        def on_folder(result: FolderResult) -> None:
            counts["folders"] += 1
            counts["files"] += result.files
            bar.update(task, folders=counts["folders"], files=counts["files"])

        progress = ScanProgress(
            folder=on_folder,
            source_started=lambda locator: bar.update(task, description=f"scanning {escape(printable(locator))}"),
            watching=lambda seconds: bar.update(task, description=f"watching drops live for {seconds:g} s"),
        )
        try:
            catalog, errors = work(progress)
        except ScanError as exc:
            raise _fail(str(exc)) from None
    try:
        merged = save_merged(catalog, out, pattern_rules, roadmap)
    except ScanError as exc:
        raise _fail(str(exc)) from None
    shown = {interface.id for interface in catalog.interfaces}
    print_summary(
        out_console, merged.model_copy(update={"interfaces": [i for i in merged.interfaces if i.id in shown]})
    )
    out_console.print(
        f"\ncatalog: [bold]{escape(str(out))}[/] ({len(merged.interfaces)} interfaces in all, "
        f"{len(catalog.interfaces)} from this scan)",
        highlight=False,
    )
    if errors:
        for error in errors:
            console.print(f"[bold red]incomplete:[/] {escape(printable(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _files(scan: FileScan, sources: list[FileSource]) -> Work:
    def work(progress: ScanProgress) -> tuple[Catalog, list[str]]:
        scan.progress = progress
        return scan.run(sources)

    return work


def _esb(sources: list[EsbSource], rules: list[EntityRule] | None = None) -> Work:
    def work(progress: ScanProgress) -> tuple[Catalog, list[str]]:
        for source in sources:
            progress.source_started(source.target)
        return EsbScan(rules).run(sources)

    return work


def _db(sources: list[DbSource], rules: list[EntityRule] | None = None) -> Work:
    def work(progress: ScanProgress) -> tuple[Catalog, list[str]]:
        for source in sources:
            progress.source_started(str(source.ddl) if source.ddl else "database")
        return DbScan(rules).run(sources)

    return work


def _together(*works: Work) -> Work:
    def work(progress: ScanProgress) -> tuple[Catalog, list[str]]:
        catalog, errors = Catalog(), list[str]()
        for part in works:
            found, failed = part(progress)
            catalog, errors = catalog.merge(found), errors + failed
        return catalog, errors

    return work


@scan_app.command("files")
def scan_files(
    targets: Annotated[list[str], typer.Argument(help="local folders or sftp://user@host[:port]/path URLs")],
    out: Annotated[Path, typer.Option("--out", "-o", help="catalog file; merged into when it exists")] = Path(
        "catalog.json"
    ),
    entity: Annotated[
        list[str] | None, typer.Option(help="ENTITY=PATH_GLOB: drops under matching folders belong to ENTITY")
    ] = None,
    system: Annotated[str | None, typer.Option(help="system name for these drops (default: local or the host)")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA timezone cadences are read in (default: this machine's)")
    ] = None,
    watch: Annotated[
        float,
        typer.Option(help="after the walk, watch local drops live for this many seconds", metavar="SECONDS"),
    ] = 0,
    jobs: Annotated[int, typer.Option(help="worker processes for local walks (0: one per core)")] = 0,
    follow_symlinks: Annotated[
        bool, typer.Option(help="follow symbolic links to folders (loops are detected)")
    ] = False,
    known_hosts: Annotated[
        Path | None, typer.Option(help="known_hosts file for SFTP (default ~/.ssh/known_hosts)")
    ] = None,
    identity: Annotated[Path | None, typer.Option(help="SSH private key file for SFTP")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="name of the environment variable that holds the SFTP password")
    ] = None,
    accept_unknown_host: Annotated[
        bool, typer.Option(help="trust an SFTP host that is not in known_hosts (unsafe)")
    ] = False,
) -> None:
    """Catalog the file drops in folders and on SFTP servers.

    Example: banyan scan files /srv/edi sftp://edi@partner.example/outbound --entity 'ACME-DE=*/de/*' -o catalog.json
    """
    sources = []
    for target in targets:
        common = {"system": system, "follow_symlinks": follow_symlinks}
        if target.startswith("sftp://"):
            sources.append(
                FileSource(
                    url=target,
                    known_hosts=known_hosts,
                    key_file=identity,
                    password_env=password_env,
                    accept_unknown_host=accept_unknown_host,
                    **common,
                )
            )
        elif not Path(target).is_dir():
            raise _fail(f"{target}: no such folder (or it cannot be read); nothing was scanned or written")
        else:
            sources.append(FileSource(path=Path(target), **common))
    rules = [_parse_entity(option) for option in entity or []]
    _run(_files(FileScan(rules=rules, timezone=timezone, jobs=jobs, watch_seconds=watch), sources), out)


@scan_app.command("run")
def scan_run(
    config: Annotated[
        Path, typer.Argument(help="scan config (YAML): sources, credentials by env var name, entity rules")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="catalog file (default: out: in the config)")] = None,
) -> None:
    """Run every scan a scan.yaml lists, into one catalog.

    Example: banyan scan run scan.yaml
    """
    try:
        settings = ScanConfig.load(config)
    except ScanError as exc:
        raise _fail(str(exc)) from None
    scan = FileScan(settings.entities, settings.timezone, settings.jobs, settings.watch)
    esb = [EsbSource(str(source.path or source.url), source.system) for source in settings.esb]
    try:
        db = [
            DbSource(
                connection=connection_from_env(source.connection_env)
                if source.connection_env
                else (source.dsn or source.connection),
                ddl=source.ddl,
                dialect=source.dialect,
                system=source.system,
            )
            for source in settings.db
        ]
    except ScanError as exc:
        raise _fail(str(exc)) from None
    work = _together(_files(scan, settings.files), _esb(esb, settings.entities), _db(db, settings.entities))
    _run(work, out or settings.out, settings.patterns, settings.roadmap)


@scan_app.command("db")
def scan_db(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="DDL files or folders, ODBC connection strings or DSN names"),
    ] = None,
    connection_env: Annotated[
        list[str] | None,
        typer.Option(help="environment variable holding a connection string (keeps the password off the command line)"),
    ] = None,
    dialect: Annotated[
        str | None,
        typer.Option(help="dialect of DDL sources: tsql, postgres, mysql, oracle, sqlite (default: guessed)"),
    ] = None,
    system: Annotated[str | None, typer.Option(help="system name (default: the database or file name)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="catalog file; merged into when it exists")] = Path(
        "catalog.json"
    ),
) -> None:
    """Catalog database triggers, procedures and functions, live over ODBC or from DDL scripts.

    Example: banyan scan db schema/erp_de.sql --dialect tsql --connection-env ERP_UK_ODBC -o catalog.json
    """
    targets: list[DbSource] = []
    for source in sources or []:
        if Path(source).is_file() and Path(source).suffix.lower() not in DDL_SUFFIXES:
            raise _fail(f"{source}: not a DDL script (it names no {', '.join(sorted(DDL_SUFFIXES))} file)")
        if Path(source).exists():
            targets.append(DbSource(ddl=Path(source), dialect=dialect, system=system))
        elif "=" not in source and (Path(source).suffix.lower() in DDL_SUFFIXES or "/" in source):
            raise _fail(f"{source}: no such DDL file or folder")
        else:
            targets.append(DbSource(connection=source, system=system))
    try:
        targets += [DbSource(connection=connection_from_env(name), system=system) for name in connection_env or []]
    except ScanError as exc:
        raise _fail(str(exc)) from None
    if not targets:
        raise _fail("name at least one DDL file or folder, connection string, DSN or --connection-env")
    _run(_db(targets), out)


@scan_app.command("esb")
def scan_esb(
    sources: Annotated[
        list[str], typer.Argument(help="folders or files of ESB configs and WSDLs, or http(s)://…?wsdl URLs")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="catalog file; merged into when it exists")] = Path(
        "catalog.json"
    ),
    system: Annotated[str | None, typer.Option(help="system name for these flows (default: the product)")] = None,
) -> None:
    """Catalog ESB flows and endpoints (Mule 3/4, Camel, Synapse/WSO2, BizTalk, Spring Integration) and WSDL operations.

    Example: banyan scan esb ./mule-apps http://erp.example/OrderService?wsdl -o catalog.json
    """
    for source in sources:
        if not source.lower().startswith(("http://", "https://")) and not Path(source).exists():
            raise _fail(f"{source}: no such file or folder; nothing was scanned or written")
    _run(_esb([EsbSource(source, system) for source in sources]), out)


@catalog_app.command("schema")
def catalog_schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Print the catalog's JSON Schema.

    Example: banyan catalog schema -o catalog.schema.json
    """
    text = json.dumps(json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@catalog_app.command("show")
def catalog_show(
    catalog: Annotated[Path, typer.Argument(help="a catalog written by banyan scan")] = Path("catalog.json"),
) -> None:
    """Summarise a catalog: interfaces per entity, sources and their warnings.

    Example: banyan catalog show catalog.json
    """
    try:
        loaded = Catalog.load(catalog)
    except ScanError as exc:
        raise _fail(str(exc)) from None
    print_summary(out_console, loaded)


def _load(path: Path) -> Catalog:
    try:
        return Catalog.load(path)
    except ScanError as exc:
        raise _fail(str(exc)) from None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}", highlight=False)


@catalog_app.command("graph")
def catalog_graph(
    catalog: Annotated[Path, typer.Argument(help="a catalog written by banyan scan")] = Path("catalog.json"),
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="dot (Graphviz), mermaid or graphml")] = "dot",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Export the dependency graph: drops, endpoints, flows, operations, triggers and what links them.

    Example: banyan catalog graph catalog.json -f mermaid -o graph.mmd
    """
    loaded = _load(catalog)
    exporters = {"dot": to_dot, "mermaid": to_mermaid, "graphml": to_graphml}
    _write(exporters[format](loaded), out)


CAPACITY_HELP = "effort units the team wraps a week: the roadmap's timeline"


@catalog_app.command("report")
def catalog_report(
    catalog: Annotated[Path, typer.Argument(help="a catalog written by banyan scan")] = Path("catalog.json"),
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML report here")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="write a Markdown report here")] = None,
    routes: Annotated[
        Path | None, typer.Option(help="route specs: show the route that wraps each interface (their wraps:)")
    ] = None,
    store: Annotated[str | None, typer.Option(help="cutover store (with --routes): show each route's rung")] = None,
    capacity: Annotated[float, typer.Option(min=0.1, help=CAPACITY_HELP)] = CAPACITY,
) -> None:
    """Write the catalog as a report: summary per entity and system, roadmap, issues, graph, details.

    Example: banyan catalog report catalog.json --html report.html --routes routes --store cutover.db
    """
    if html is None and markdown is None:
        raise _fail("say where to write the report: --html FILE and/or --markdown FILE")
    if store is not None and routes is None:
        raise _fail("--store shows the rungs of the routes in --routes: give --routes too")
    loaded = _load(catalog)
    wrapped = None if routes is None else _wrapped(loaded, routes, store)
    if html is not None:
        _write(to_html(loaded, wrapped, capacity), html)
    if markdown is not None:
        _write(to_markdown(loaded, wrapped, capacity), markdown)


def _wrapped(catalog: Catalog, routes: Path, store: str | None) -> dict[str, list[Wrapper]]:
    """Which route wraps which interface, and with a store the rung of each route and entity."""
    from cutover.engine import Engine
    from cutover.store import StoreError, open_store
    from specs.files import RouteError, load_folder
    from specs.flows import ladder

    try:
        folder = load_folder(routes)
        wraps = [(route.name, route.wraps) for route in folder.routes] + [
            (flow.name, flow.wraps) for flow in folder.flows
        ]
        rungs = None
        if store is not None:
            engine = Engine(open_store(store, create=False), *ladder(folder.routes, folder.flows, folder.batches))
            rungs = {
                (row.route, row.entity): row.rule.mode.value
                + (f" {row.rule.percent:g} %" if row.rule.mode.value == "canary" else "")
                for row in engine.status(None, None)
            }
    except (RouteError, StoreError) as exc:
        raise _fail(str(exc)) from None
    return wrappers(catalog, wraps, rungs)


@catalog_app.command("roadmap")
def catalog_roadmap(
    catalog: Annotated[Path, typer.Argument(help="a catalog written by banyan scan")] = Path("catalog.json"),
    csv: Annotated[Path | None, typer.Option("--csv", help="write every interface's place as CSV here")] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="write the roadmap as JSON here ('-': stdout)")] = None,
    wave_units: Annotated[int, typer.Option(min=1, help="effort units one wave holds at most")] = WAVE_UNITS,
    capacity: Annotated[float, typer.Option(min=0.1, help=CAPACITY_HELP)] = CAPACITY,
) -> None:
    """What to wrap first, wave by wave; what to refactor into events and where from; what to retire.

    Dispositions and tiers come from the scan (rules and overrides under roadmap: in scan.yaml).

    Example: banyan catalog roadmap catalog.json --csv roadmap.csv --json roadmap.json
    """
    found = plan(_load(catalog), wave_units, capacity)
    if as_json is not None and str(as_json) == "-":
        typer.echo(json.dumps(found.as_json(), indent=2))
        return
    print_roadmap(out_console, found)
    if csv is not None:
        _write(found.to_csv(), csv)
    if as_json is not None:
        _write(json.dumps(found.as_json(), indent=2) + "\n", as_json)


@catalog_app.command("diff")
def catalog_diff(
    old: Annotated[Path, typer.Argument(help="the earlier catalog")],
    new: Annotated[Path, typer.Argument(help="the later catalog")],
    as_json: Annotated[bool, typer.Option("--json", help="print the differences as JSON")] = False,
) -> None:
    """Compare two scans: interfaces added, removed and changed, and activity that moved sharply.

    Exits 0 when nothing changed, 1 when something did (for nightly jobs), 2 on errors.

    Example: banyan catalog diff last-week.json catalog.json --json
    """
    found = diff(_load(old), _load(new))
    if as_json:
        typer.echo(json.dumps(found.as_json(), indent=2, default=str))
    else:
        print_diff(out_console, found)
    raise typer.Exit(0 if found.empty else 1)
