"""Triggers, procedures and functions out of DDL statements, per dialect.

The same header parsers read a live database's definitions (`pg_get_triggerdef`, `sqlite_master`,
`sys.sql_modules`), so a live scan and an offline scan of the same schema agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inventory_scan.db.split import Statement, split

_NOISE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
_IDENT = r"(?:`[^`]+`|\"[^\"]+\"|\[[^\]]+\]|[\w$#@]+)"
NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"
_CREATE = re.compile(
    r"CREATE\s+(?:OR\s+(?:REPLACE|ALTER)\s+)?(?:EDITIONABLE\s+|NONEDITIONABLE\s+)?"
    r"(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?(?:CONSTRAINT\s+)?(?:TEMP(?:ORARY)?\s+)?"
    r"(?P<kind>TRIGGER|PROCEDURE|PROC|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>" + NAME + ")",
    re.IGNORECASE,
)
_EVENTS = r"(?:INSERT|UPDATE(?:\s+OF\s+[\w\s,\"`\[\]]+?)?|DELETE|TRUNCATE)"
# Trigger headers after the name, per dialect: a table, so one dialect's change is one line.
TRIGGER_HEADERS = {
    "tsql": re.compile(
        rf"\s+ON\s+(?P<table>{NAME})\s+(?:WITH\s+[\w\s,]+?\s+)?(?P<timing>FOR|AFTER|INSTEAD\s+OF)\s+"
        r"(?P<events>(?:INSERT|UPDATE|DELETE)(?:\s*,\s*(?:INSERT|UPDATE|DELETE))*)"
        r"(?:\s+NOT\s+FOR\s+REPLICATION)?\s+AS\b(?P<body>.*)",
        re.IGNORECASE | re.DOTALL,
    ),
    "mysql": re.compile(
        rf"\s+(?P<timing>BEFORE|AFTER)\s+(?P<events>INSERT|UPDATE|DELETE)\s+ON\s+(?P<table>{NAME})\s+"
        rf"FOR\s+EACH\s+(?P<level>ROW)(?:\s+(?:FOLLOWS|PRECEDES)\s+{NAME})?(?P<body>.*)",
        re.IGNORECASE | re.DOTALL,
    ),
    "postgres": re.compile(
        rf"\s+(?P<timing>BEFORE|AFTER|INSTEAD\s+OF)\s+(?P<events>{_EVENTS}(?:\s+OR\s+{_EVENTS})*)\s+ON\s+"
        rf"(?:ONLY\s+)?(?P<table>{NAME})(?:\s+FROM\s+{NAME})?(?P<options>(?:\s+(?:NOT\s+)?DEFERRABLE|\s+INITIALLY\s+\w+"
        r"|\s+REFERENCING\s+.*?(?=\s+FOR\b))*)"
        r"(?:\s+FOR(?:\s+EACH)?\s+(?P<level>ROW|STATEMENT))?(?:\s+WHEN\s*\((?P<when>.*?)\))?"
        rf"\s+EXECUTE\s+(?:FUNCTION|PROCEDURE)\s+(?P<executes>{NAME})\s*\((?P<body>.*)\)\s*;?\s*$",
        re.IGNORECASE | re.DOTALL,
    ),
    "oracle": re.compile(
        rf"\s+(?P<timing>BEFORE|AFTER|INSTEAD\s+OF|FOR)\s+(?P<events>{_EVENTS}(?:\s+OR\s+{_EVENTS})*)\s+ON\s+"
        rf"(?P<table>{NAME})(?:\s+REFERENCING\s+(?:(?:NEW|OLD|PARENT)\s+AS\s+\w+\s*)+)?"
        r"(?:\s+FOR\s+EACH\s+(?P<level>ROW))?(?:\s+(?P<enabled>ENABLE|DISABLE))?(?:\s+WHEN\s*\((?P<when>.*?)\))?(?P<body>\s.*)",
        re.IGNORECASE | re.DOTALL,
    ),
    "sqlite": re.compile(
        rf"\s+(?P<timing>BEFORE|AFTER|INSTEAD\s+OF)?\s*(?P<events>DELETE|INSERT|UPDATE(?:\s+OF\s+[\w\s,\"`\[\]]+?)?)\s+ON\s+"
        rf"(?P<table>{NAME})(?:\s+FOR\s+EACH\s+(?P<level>ROW))?(?:\s+WHEN\s+(?P<when>.*?))?\s+(?P<body>BEGIN\b.*)",
        re.IGNORECASE | re.DOTALL,
    ),
}
_DISABLES = [
    re.compile(rf"^\s*ALTER\s+TRIGGER\s+(?P<name>{NAME})\s+(?P<state>DISABLE|ENABLE)\b", re.IGNORECASE),
    re.compile(rf"^\s*(?P<state>DISABLE|ENABLE)\s+TRIGGER\s+(?P<name>{NAME})\s+ON\s+(?P<table>{NAME})", re.IGNORECASE),
    re.compile(
        rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<table>{NAME})\s+(?P<state>DISABLE|ENABLE)\s+TRIGGER\s+(?P<name>{NAME})",
        re.IGNORECASE,
    ),
]
_PG_BODY = re.compile(r"\bAS\s+(?P<tag>\$[A-Za-z_0-9]*\$)(?P<body>.*?)(?P=tag)", re.DOTALL | re.IGNORECASE)
_PG_LANGUAGE = re.compile(r"\bLANGUAGE\s+'?(\w+)'?", re.IGNORECASE)
# Where a routine's body starts, once its parameter list is behind us.
_ROUTINE_BODIES = {
    "tsql": re.compile(r".*?\bAS\b(?P<body>.*)", re.IGNORECASE | re.DOTALL),
    "oracle": re.compile(r".*?\b(?:IS|AS)\b(?P<body>.*)", re.IGNORECASE | re.DOTALL),
    "mysql": re.compile(
        r"(?:\s*RETURNS\s+\w+(?:\s*\([^)]*\))?(?:\s+UNSIGNED)?(?:\s+CHARSET\s+\w+)?)?"
        r"(?:\s+(?:NOT\s+)?DETERMINISTIC|\s+(?:CONTAINS\s+SQL|NO\s+SQL|READS\s+SQL\s+DATA|MODIFIES\s+SQL\s+DATA)"
        r"|\s+SQL\s+SECURITY\s+\w+|\s+COMMENT\s+'(?:[^']|'')*'|\s+LANGUAGE\s+SQL)*(?P<body>.*)",
        re.IGNORECASE | re.DOTALL,
    ),
}


def _after_parameters(text: str) -> str:
    """The text after a parenthesised parameter list, if the routine has one."""
    stripped = text.lstrip()
    if not stripped.startswith("("):
        return text
    depth = 0
    for index, char in enumerate(stripped):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return stripped[index + 1 :]
    return text


def unquote(name: str) -> str:
    """`[dbo].[Orders]` / `"public"."film"` / `` `film` `` → `dbo.Orders` / `public.film` / `film`."""
    parts = re.findall(_IDENT, name)
    return ".".join(p.strip('`"[]') for p in parts)


@dataclass
class DbObject:
    kind: str  # trigger | procedure | function
    name: str  # with its schema when the source gives one
    dialect: str
    body: str
    line: int | None = None
    table: str | None = None
    timing: str | None = None
    events: list[str] = field(default_factory=list)
    level: str | None = None
    enabled: bool = True
    executes: str | None = None  # postgres: the trigger's function
    language: str | None = None
    when: str | None = None
    definition: str = ""

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _events(text: str) -> list[str]:
    found = re.findall(r"INSERT|UPDATE|DELETE|TRUNCATE", text, re.IGNORECASE)
    return sorted({event.upper() for event in found}, key=["INSERT", "UPDATE", "DELETE", "TRUNCATE"].index)


def parse_statement(statement: Statement, dialect: str) -> DbObject | None:
    """The trigger, procedure or function a statement creates, or None."""
    noise = _NOISE.match(statement.text)
    offset = noise.end() if noise else 0
    match = _CREATE.match(statement.text, offset)
    if match is None:
        return None
    line = statement.line + statement.text.count("\n", 0, offset)
    kind = match.group("kind").upper()
    name = unquote(match.group("name"))
    rest = statement.text[match.end() :]
    if kind == "TRIGGER":
        header = TRIGGER_HEADERS[dialect].match(rest)
        if header is None:
            return DbObject("trigger", name, dialect, rest, line, definition=statement.text)  # unparsed header
        groups = header.groupdict()
        timing = re.sub(r"\s+", " ", groups["timing"] or "BEFORE").upper()
        return DbObject(
            "trigger",
            name,
            dialect,
            body=(groups.get("body") or "").strip(),
            line=line,
            table=unquote(groups["table"]),
            timing="AFTER" if timing == "FOR" and dialect == "tsql" else timing,
            events=_events(groups["events"]),
            level=(
                groups.get("level") or ("STATEMENT" if dialect in ("tsql", "postgres", "oracle") else "ROW")
            ).upper(),
            enabled=(groups.get("enabled") or "ENABLE").upper() != "DISABLE",
            executes=unquote(groups["executes"]) if groups.get("executes") else None,
            when=groups.get("when"),
            definition=statement.text,
        )
    kind = "procedure" if kind in ("PROCEDURE", "PROC") else "function"
    language = None
    body_match = _PG_BODY.search(rest) if dialect == "postgres" else None
    if body_match:
        body = body_match.group("body")
        lang = _PG_LANGUAGE.search(rest)
        language = lang.group(1).lower() if lang else None
    else:
        pattern = _ROUTINE_BODIES.get(dialect)
        remainder = _after_parameters(rest)
        routine = pattern.match(remainder) if pattern else None
        body = routine.group("body") if routine else remainder
    return DbObject(kind, name, dialect, body.strip(), line, language=language, definition=statement.text)


def disabled_triggers(statements: list[Statement]) -> dict[str, bool]:
    """Trigger names (short, lower case) whose last ALTER/DISABLE/ENABLE statement sets their state."""
    states: dict[str, bool] = {}
    for statement in statements:
        noise = _NOISE.match(statement.text)
        text = statement.text[noise.end() if noise else 0 :]
        for pattern in _DISABLES:
            found = pattern.match(text)
            if found:
                states[unquote(found.group("name")).rsplit(".", 1)[-1].lower()] = (
                    found.group("state").upper() == "ENABLE"
                )
                break
    return states


def parse_script(text: str, dialect: str) -> list[DbObject]:
    """Every trigger, procedure and function a script creates, with later DISABLEs applied."""
    statements = split(text, dialect)
    objects = [found for statement in statements if (found := parse_statement(statement, dialect))]
    states = disabled_triggers(statements)
    for found in objects:
        if found.kind == "trigger" and found.short_name.lower() in states:
            found.enabled = states[found.short_name.lower()]
    return objects
