"""Read triggers and routines from a live database through ODBC, one catalog query set per engine.

Each engine states its queries and turns their rows into `DbObject`s, reusing the DDL header
parsers where the engine hands back DDL (PostgreSQL's `pg_get_triggerdef`, SQLite's `sqlite_master`,
SQL Server's `sys.sql_modules`). SQL Server and Oracle have no server here; their row shapes are
pinned by tests with recorded rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inventory_scan.db.objects import DbObject, parse_statement
from inventory_scan.db.split import Statement

Rows = Sequence[Sequence[Any]]


def _ddl(definition: str, dialect: str, schema: str | None = None) -> DbObject | None:
    found = parse_statement(Statement(definition, 1), dialect)
    if found is not None:
        found.line = None
        if schema and "." not in found.name:
            found.name = f"{schema}.{found.name}"
        if schema and found.table and "." not in found.table:
            found.table = f"{schema}.{found.table}"
    return found


def _postgres_triggers(rows: Rows) -> list[DbObject]:
    objects = []
    for schema, _table, _name, enabled, definition, function_schema, function_name in rows:
        found = _ddl(definition, "postgres", schema)
        if found is None:
            continue
        found.enabled = enabled != "D"
        found.executes = f"{function_schema}.{function_name}" if function_schema != "pg_catalog" else function_name
        objects.append(found)
    return objects


def _postgres_routines(rows: Rows) -> list[DbObject]:
    objects = []
    for schema, _name, definition in rows:
        found = _ddl(definition, "postgres", schema)
        if found is not None:
            objects.append(found)
    return objects


def _mysql_triggers(rows: Rows) -> list[DbObject]:
    return [
        DbObject(
            "trigger",
            f"{schema}.{name}",
            "mysql",
            body=body,
            table=f"{schema}.{table}",
            timing=timing.upper(),
            events=[event.upper()],
            level=(orientation or "ROW").upper(),
        )
        for schema, table, name, timing, event, orientation, body in rows
    ]


def _mysql_routines(rows: Rows) -> list[DbObject]:
    return [
        DbObject(kind.lower(), f"{schema}.{name}", "mysql", body=body or "")
        for schema, name, kind, body in rows
        if kind.upper() in ("PROCEDURE", "FUNCTION")
    ]


def _sqlite_triggers(rows: Rows) -> list[DbObject]:
    return [found for (definition,) in rows if (found := _ddl(definition, "sqlite"))]


def _mssql_triggers(rows: Rows) -> list[DbObject]:
    objects = []
    for schema, _table, _name, disabled, definition in rows:
        found = _ddl(definition, "tsql", schema)
        if found is not None:
            found.enabled = not disabled
            objects.append(found)
    return objects


def _mssql_routines(rows: Rows) -> list[DbObject]:
    return [found for schema, _name, definition in rows if (found := _ddl(definition, "tsql", schema))]


def _oracle_triggers(rows: Rows) -> list[DbObject]:
    objects = []
    for owner, table, name, trigger_type, event, status, body in rows:
        timing, _, level = str(trigger_type).partition(" ")
        objects.append(
            DbObject(
                "trigger",
                f"{owner}.{name}",
                "oracle",
                body=body or "",
                table=f"{owner}.{table}",
                timing=timing.upper(),
                events=sorted(set(re.findall(r"INSERT|UPDATE|DELETE", event.upper()))),
                level="ROW" if "ROW" in level.upper() else "STATEMENT",
                enabled=status.upper() == "ENABLED",
            )
        )
    return objects


def _oracle_routines(rows: Rows) -> list[DbObject]:
    sources: dict[tuple[str, str, str], list[str]] = {}
    for owner, name, kind, _line, text in rows:
        sources.setdefault((owner, name, kind), []).append(text or "")
    objects = []
    for (owner, name, kind), lines in sources.items():
        found = _ddl("CREATE " + "".join(lines), "oracle", owner)
        label = "procedure" if kind.upper() in ("PROCEDURE", "PACKAGE BODY") else "function"
        objects.append(found or DbObject(label, f"{owner}.{name}", "oracle", body="".join(lines)))
    return objects


@dataclass(frozen=True)
class Engine:
    name: str
    dialect: str
    matches: Callable[[str], bool]
    triggers: str  # catalog query for triggers
    routines: str | None  # catalog query for procedures and functions
    read_triggers: Callable[[Rows], list[DbObject]]
    read_routines: Callable[[Rows], list[DbObject]]


ENGINES = [
    Engine(
        "PostgreSQL",
        "postgres",
        lambda dbms: "postgres" in dbms.lower(),
        """SELECT n.nspname, c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid), pn.nspname, p.proname
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
           WHERE NOT t.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           ORDER BY n.nspname, c.relname, t.tgname""",
        """SELECT n.nspname, p.proname, pg_get_functiondef(p.oid)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
             AND l.lanname NOT IN ('c', 'internal')
           ORDER BY n.nspname, p.proname""",
        _postgres_triggers,
        _postgres_routines,
    ),
    Engine(
        "MySQL/MariaDB",
        "mysql",
        lambda dbms: "mysql" in dbms.lower() or "mariadb" in dbms.lower(),
        """SELECT TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION,
                  ACTION_ORIENTATION, ACTION_STATEMENT
           FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME""",
        """SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION
           FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME""",
        _mysql_triggers,
        _mysql_routines,
    ),
    Engine(
        "SQLite",
        "sqlite",
        lambda dbms: "sqlite" in dbms.lower(),
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
        None,
        _sqlite_triggers,
        lambda rows: [],
    ),
    Engine(
        "SQL Server",
        "tsql",
        lambda dbms: "sql server" in dbms.lower(),
        """SELECT s.name, o.name, t.name, t.is_disabled, m.definition
           FROM sys.triggers t JOIN sys.sql_modules m ON m.object_id = t.object_id
           JOIN sys.objects o ON o.object_id = t.parent_id JOIN sys.schemas s ON s.schema_id = o.schema_id
           WHERE t.parent_class = 1 ORDER BY s.name, o.name, t.name""",
        """SELECT s.name, o.name, m.definition
           FROM sys.sql_modules m JOIN sys.objects o ON o.object_id = m.object_id
           JOIN sys.schemas s ON s.schema_id = o.schema_id
           WHERE o.type IN ('P', 'FN', 'IF', 'TF') AND o.is_ms_shipped = 0 ORDER BY s.name, o.name""",
        _mssql_triggers,
        _mssql_routines,
    ),
    Engine(
        "Oracle",
        "oracle",
        lambda dbms: "oracle" in dbms.lower(),
        """SELECT OWNER, TABLE_NAME, TRIGGER_NAME, TRIGGER_TYPE, TRIGGERING_EVENT, STATUS, TRIGGER_BODY
           FROM ALL_TRIGGERS WHERE OWNER = USER ORDER BY TRIGGER_NAME""",
        """SELECT OWNER, NAME, TYPE, LINE, TEXT FROM ALL_SOURCE
           WHERE OWNER = USER AND TYPE IN ('PROCEDURE', 'FUNCTION', 'PACKAGE BODY') ORDER BY OWNER, NAME, TYPE, LINE""",
        _oracle_triggers,
        _oracle_routines,
    ),
]


def engine_for(dbms_name: str) -> Engine | None:
    return next((engine for engine in ENGINES if engine.matches(dbms_name)), None)


def read_objects(engine: Engine, run: Callable[[str], Rows]) -> list[DbObject]:
    """Run the engine's catalog queries through `run` and return its objects, triggers first."""
    objects = engine.read_triggers(run(engine.triggers))
    if engine.routines:
        objects += engine.read_routines(run(engine.routines))
    return objects
