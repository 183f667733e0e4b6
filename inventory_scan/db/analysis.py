"""What a trigger or routine body does: tables read and written, calls, side effects, validations.

sqlglot returns most procedural bodies as unparsed text, so the body is split into statements
here (on `;` and, for T-SQL, at lines that start a statement) and each DML statement is parsed with
sqlglot. A statement sqlglot cannot parse falls back to a pattern match, recorded as low-confidence
with its text. Side effects and constructs come from a table of patterns, not from code.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from inventory_scan.db.objects import DbObject, unquote
from inventory_scan.db.split import DIALECTS


class _UnparsedIsRecorded(logging.Filter):
    """sqlglot warns when it falls back to an unparsed Command; the scan records those itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_UnparsedIsRecorded())

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/|(?<![\w$])#[^\n]*", re.DOTALL)
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_STATEMENT_START = re.compile(
    r"^[ \t]*(?=(?:SELECT|INSERT|UPDATE|DELETE|MERGE|IF|ELSE|ELSIF|BEGIN|END|DECLARE|SET|EXEC|EXECUTE|CALL|RETURN"
    r"|RAISERROR|THROW|ROLLBACK|COMMIT|WHILE|FETCH|OPEN|CLOSE|DEALLOCATE|PRINT|PERFORM|RAISE|SIGNAL|WITH)\b)",
    re.IGNORECASE | re.MULTILINE,
)
_DML = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|SELECT|WITH)\b", re.IGNORECASE)
_TRAILING_CONTROL = re.compile(r"(?:\b(?:END\s+IF|END\s+LOOP|END|ELSE|THEN)\b[\s;]*)+$", re.IGNORECASE)
_PSEUDO_TABLES = {"inserted", "deleted", "new", "old", "dual", "excluded"}
_FALLBACK_TABLES = {
    "writes": re.compile(
        r"\b(?:INSERT\s+(?:INTO\s+)?|UPDATE\s+|DELETE\s+(?:FROM\s+)?|MERGE\s+(?:INTO\s+)?)([\w.\[\]`\"#@]+)",
        re.IGNORECASE,
    ),
    "reads": re.compile(r"\b(?:FROM|JOIN|USING)\s+([\w.\[\]`\"#@]+)", re.IGNORECASE),
}
_SQLGLOT_DIALECT = {"tsql": "tsql", "postgres": "postgres", "mysql": "mysql", "oracle": "oracle", "sqlite": "sqlite"}

# pattern → side effect; group 1, when present, names the thing (server, package, channel).
# pattern → side effect; group 1, when present, names the thing (server, package, channel). The
# hints are lower-case words the pattern cannot match without: a body lacking all of them skips
# the regex, which keeps analysis cheap next to sqlglot's parse.
SIDE_EFFECTS: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = [
    ("shell", ("xp_cmdshell", "sys_e"), re.compile(r"\b(xp_cmdshell|sys_exec|sys_eval)\b", re.IGNORECASE)),
    (
        "mail",
        ("mail", "utl_smtp"),
        re.compile(r"\b(sp_send_dbmail|xp_sendmail|UTL_SMTP|UTL_MAIL|APEX_MAIL)\b", re.IGNORECASE),
    ),
    ("com", ("sp_oa",), re.compile(r"\b(sp_OACreate|sp_OAMethod)\b", re.IGNORECASE)),
    ("http", ("http", "pg_net"), re.compile(r"\b(UTL_HTTP|HTTPURITYPE|http_get|http_post|pg_net)\b", re.IGNORECASE)),
    (
        "file",
        ("utl_file", "bulk", "outfile", "dumpfile", "load", "pg_write_file", "copy"),
        re.compile(
            r"\b(UTL_FILE|BULK\s+INSERT|INTO\s+OUTFILE|INTO\s+DUMPFILE|LOAD\s+DATA|pg_write_file|COPY\s+\w+\s+TO)\b",
            re.IGNORECASE,
        ),
    ),
    ("tcp", ("utl_tcp",), re.compile(r"\b(UTL_TCP)\b", re.IGNORECASE)),
    (
        "queue",
        ("dbms_aq", "dbms_pipe", "sp_send_message", "conversation"),
        re.compile(
            r"\b(DBMS_AQ\.ENQUEUE|DBMS_PIPE\.SEND_MESSAGE|sp_send_message|SEND\s+ON\s+CONVERSATION)\b", re.IGNORECASE
        ),
    ),
    (
        "job",
        ("sp_start_job", "dbms_scheduler", "dbms_job"),
        re.compile(r"\b(sp_start_job|DBMS_SCHEDULER|DBMS_JOB)\b", re.IGNORECASE),
    ),
    # Oracle's console output: someone reads it (a job log, a client spooling it), so it is an effect.
    ("output", ("dbms_output",), re.compile(r"\b(DBMS_OUTPUT)\b", re.IGNORECASE)),
    ("dbms", ("dbms_",), re.compile(r"\b(DBMS_(?!OUTPUT\b)\w+)", re.IGNORECASE)),
    ("notify", ("notify",), re.compile(r"\b(?:pg_notify\s*\(\s*'?|NOTIFY\s+)(\w+)?", re.IGNORECASE)),
    ("dblink", ("dblink", "@"), re.compile(r"\b(dblink(?:_exec)?)\s*\(|\b\w+@(\w+)\b", re.IGNORECASE)),
    (
        "linked_server",
        ("openquery", "openrowset", "opendatasource"),
        re.compile(r"\b(?:OPENQUERY|OPENROWSET|OPENDATASOURCE)\s*\(\s*(?:\[?(\w+))?", re.IGNORECASE),
    ),
    ("linked_server", (".",), re.compile(r"(?<![\w.@#])([\w\[\]]+)\.[\w\[\]]+\.[\w\[\]]+\.[\w\[\]]+(?![\w.])")),
]
# Patterns that mean something in some dialects only: `table@link` is Oracle's dblink (in T-SQL `@` is a
# variable), and four-part names are SQL Server's linked servers.
EFFECT_DIALECTS = {
    ("dblink", ("dblink", "@")): ("oracle", "postgres"),
    ("linked_server", (".",)): ("tsql",),
}
# written table name → what kind of hand-off it looks like
HANDOFF_TABLES: list[tuple[str, re.Pattern[str]]] = [
    ("outbox", re.compile(r"outbox", re.IGNORECASE)),
    ("queue_table", re.compile(r"queue|(?:^|_)q(?:$|_)", re.IGNORECASE)),
    ("staging_table", re.compile(r"staging|(?:^|_)stg(?:$|_)", re.IGNORECASE)),
    ("export_table", re.compile(r"export|outbound|(?:^|_)(?:exp|out)(?:$|_)", re.IGNORECASE)),
    ("interface_table", re.compile(r"interface|(?:^|_)intf(?:$|_)", re.IGNORECASE)),
    ("event_table", re.compile(r"event|message|(?:^|_)msg(?:$|_)", re.IGNORECASE)),
]
CONSTRUCTS: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = [
    (
        "cursor",
        ("cursor", "fetch", " in "),
        re.compile(r"\bCURSOR\b|\bFETCH\b|\bFOR\s+\w+\s+IN\s*\(?\s*SELECT\b", re.IGNORECASE),
    ),
    (
        "dynamic_sql",
        ("sp_executesql", "exec", "prepare"),
        re.compile(
            r"\bsp_executesql\b|\bEXEC(?:UTE)?\s*\(\s*@|\bEXECUTE\s+IMMEDIATE\b|\bEXECUTE\s+(?!FUNCTION|PROCEDURE)[a-z_]\w*\s*"
            r"(?:;|USING|INTO)|\bEXECUTE\s+format\s*\(|\bPREPARE\s+\w+\s+FROM\b|\bEXECUTE\s+'",
            re.IGNORECASE,
        ),
    ),
    ("temp_table", ("#", "temp"), re.compile(r"#\w+|\bCREATE\s+(?:GLOBAL\s+)?TEMP(?:ORARY)?\s+TABLE\b", re.IGNORECASE)),
    (
        "transaction_control",
        ("commit", "rollback", "savepoint"),
        re.compile(r"\bCOMMIT\b|\bROLLBACK\b|\bSAVEPOINT\b", re.IGNORECASE),
    ),
    ("loop", ("while", "loop", "repeat"), re.compile(r"\bWHILE\b|\bLOOP\b|\bREPEAT\b", re.IGNORECASE)),
]
_RAISE_HINTS = ("raise", "throw", "signal")
_RAISE = re.compile(
    r"\b(RAISERROR|THROW|SIGNAL\s+SQLSTATE|RAISE\s+EXCEPTION|RAISE_APPLICATION_ERROR|RAISE\s+\w+"
    r"|RAISE\s*\(\s*(?:ABORT|FAIL|ROLLBACK))",
    re.IGNORECASE,
)
# How each dialect calls a procedure; PostgreSQL's and MySQL's EXECUTE run dynamic SQL instead.
_CALLS = {
    "tsql": [re.compile(r"\bEXEC(?:UTE)?\s+(?:@\w+\s*=\s*)?([\w.\[\]\"]+)", re.IGNORECASE)],
    "mysql": [re.compile(r"\bCALL\s+([\w.`\"]+)", re.IGNORECASE)],
    "postgres": [
        re.compile(r"\bCALL\s+([\w.\"]+)", re.IGNORECASE),
        re.compile(r"\bPERFORM\s+([\w.\"]+)\s*\(", re.IGNORECASE),
    ],
    "oracle": [
        re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*){0,2})\s*(?:\(|;)", re.MULTILINE),
        re.compile(r"\bCALL\s+([\w.\"]+)", re.IGNORECASE),
    ],
    "sqlite": [],
}
_ORACLE_KEYWORDS = {
    "begin",
    "end",
    "null",
    "commit",
    "rollback",
    "return",
    "raise",
    "exit",
    "loop",
    "else",
    "elsif",
    "if",
    "then",
    "declare",
    "open",
    "close",
    "fetch",
    "goto",
    "savepoint",
    "continue",
}
_NOT_CALLS = re.compile(
    r"^(?:sp_executesql|xp_cmdshell|sp_send_dbmail|sp_OA\w+|dbms_\w+\.\w+|utl_\w+\.\w+|sys\.\w+)$", re.IGNORECASE
)


@dataclass
class Analysis:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    side_effects: set[str] = field(default_factory=set)
    validations: list[str] = field(default_factory=list)
    constructs: set[str] = field(default_factory=set)
    statements: int = 0
    parsed: int = 0
    low_confidence: list[str] = field(default_factory=list)
    lines: int = 0


def _blank_strings(text: str) -> str:
    return _STRINGS.sub("''", text)


def _pieces(body: str, dialect: str) -> list[str]:
    """Statements of a procedural body: split on ';' and, without semicolons, at statement keywords."""
    pieces: list[str] = []
    for chunk in body.split(";"):
        starts = [m.start() for m in _STATEMENT_START.finditer(chunk)] or [0]
        starts = sorted({0, *starts})
        bounds = list(zip(starts, [*starts[1:], len(chunk)], strict=True))
        merged: list[str] = []
        for begin, end in bounds:
            text = chunk[begin:end].strip()
            # INSERT … SELECT and UPDATE … (SELECT …) continue over lines that start with SELECT
            if merged and re.match(r"(?i)(SELECT|WITH)\b", text) and re.match(r"(?i)\s*(INSERT|MERGE)\b", merged[-1]):
                merged[-1] += "\n" + text
            elif text:
                merged.append(text)
        pieces.extend(merged)
    return pieces


def _name(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts if part.name) or table.name


def _tables(tree: exp.Expr) -> tuple[set[str], set[str]]:
    """(tables read, tables written) by one parsed statement; a single walk over the tree."""
    target = tree.this if isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Merge)) else None
    if isinstance(target, exp.Schema):
        target = target.this
    ctes: set[str] = set()
    reads: set[str] = set()
    writes: set[str] = set()
    for node in tree.find_all(exp.Table, exp.CTE):
        if isinstance(node, exp.CTE):
            ctes.add(node.alias_or_name.lower())
        elif isinstance(node, exp.Table) and node is target:
            writes.add(_name(node))
        elif isinstance(node, exp.Table) and node.name:
            reads.add(_name(node))

    def keep(name: str) -> bool:
        return name.lower() not in ctes and name.rsplit(".", 1)[-1].lower() not in _PSEUDO_TABLES

    return {r for r in reads if keep(r)} - writes, {w for w in writes if keep(w)}


def _variables_free(text: str, dialect: str) -> str:
    """Replace procedural variables sqlglot would choke on with literals (they never name tables)."""
    if dialect == "oracle":
        text = re.sub(r":(?:NEW|OLD)\.(\w+)", r"\1", text, flags=re.IGNORECASE)
    if dialect in ("mysql", "postgres", "oracle") and re.match(r"(?i)\s*(SELECT|WITH)\b", text):
        # SELECT … INTO variables: the variables are not tables (T-SQL's SELECT INTO #t is, so it stays)
        text = re.sub(
            r"\bINTO\s+(?:STRICT\s+)?[@\w]+(?:\s*,\s*[@\w]+)*\s*(?=FROM\b|WHERE\b|$)", " ", text, flags=re.IGNORECASE
        )
    return text


def analyse(obj: DbObject) -> Analysis:
    result = Analysis(lines=obj.body.count("\n") + 1)
    clean = _COMMENTS.sub(" ", obj.body)
    no_strings = _blank_strings(clean)
    dialect = _SQLGLOT_DIALECT[obj.dialect]
    for piece in _pieces(no_strings, obj.dialect):
        found = _DML.search(piece)
        if not found:
            continue
        statement = _TRAILING_CONTROL.sub("", piece[found.start() :]).strip()
        if not statement:
            continue
        result.statements += 1
        try:
            tree = sqlglot.parse_one(_variables_free(statement, obj.dialect), read=dialect)
            if tree is None or isinstance(tree, exp.Command):
                raise ValueError("not parsed")
            reads, writes = _tables(tree)
            result.parsed += 1
        except (SqlglotError, ValueError, RecursionError):
            reads = {unquote(t) for t in _FALLBACK_TABLES["reads"].findall(statement)}
            writes = {unquote(t) for t in _FALLBACK_TABLES["writes"].findall(statement)}
            reads -= writes
            result.low_confidence.append(" ".join(statement.split())[:160])
        for table in reads | writes:
            if table.startswith("#") or table.startswith("@"):
                result.constructs.add("temp_table")
        result.reads |= {
            t for t in reads if not t.startswith(("#", "@")) and t.rsplit(".", 1)[-1].lower() not in _PSEUDO_TABLES
        }
        result.writes |= {
            t for t in writes if not t.startswith(("#", "@")) and t.rsplit(".", 1)[-1].lower() not in _PSEUDO_TABLES
        }
    lowered = clean.lower()
    for kind, hints, pattern in SIDE_EFFECTS:
        if not any(hint in lowered for hint in hints) or obj.dialect not in EFFECT_DIALECTS.get(
            (kind, hints), DIALECTS
        ):
            continue
        for match in pattern.finditer(no_strings if kind != "notify" else clean):
            named = next((g for g in match.groups() if g), None)
            result.side_effects.add(f"{kind}:{named.strip('[]')}" if named else kind)
    for table in result.writes:
        short = table.rsplit(".", 1)[-1]
        for kind, pattern in HANDOFF_TABLES:
            if pattern.search(short):
                result.side_effects.add(f"{kind}:{table}")
                break
    for kind, hints, pattern in CONSTRUCTS:
        if any(hint in lowered for hint in hints) and pattern.search(no_strings):
            result.constructs.add(kind)
    raises = (
        [m.group(1).upper() for m in _RAISE.finditer(no_strings)] if any(h in lowered for h in _RAISE_HINTS) else []
    )
    if raises:
        aborts = "ROLLBACK" in no_strings.upper() or obj.timing in ("BEFORE", "INSTEAD OF")
        kinds = sorted({"".join(r.split()) + ")" if "(" in r else " ".join(r.split()) for r in raises})
        result.validations.append(
            ("aborts the change: " if aborts else "reports an error: ")
            + " + ".join(kinds + (["ROLLBACK"] if "ROLLBACK" in no_strings.upper() else []))
        )
    for pattern in _CALLS[obj.dialect]:
        for match in pattern.finditer(no_strings):
            name = unquote(match.group(1))
            last = name.rsplit(".", 1)[-1]
            if (
                not name
                or _NOT_CALLS.match(name)
                or _NOT_CALLS.match(last)
                or name.startswith("@")
                or name.lower() in _ORACLE_KEYWORDS
            ):
                continue
            result.calls.add(name)
    if obj.executes:
        result.calls.add(obj.executes)
    return result


# Effort units per object, in the spirit of ora2pg's migration assessment: a table of costs.
BASE_COST = {"trigger": 4, "procedure": 3, "function": 3}
CONSTRUCT_COST = {"cursor": 2, "dynamic_sql": 3, "temp_table": 1, "transaction_control": 1, "loop": 1}
EFFECT_COST = {
    "shell": 4,
    "com": 4,
    "http": 3,
    "tcp": 3,
    "dblink": 3,
    "linked_server": 3,
    "mail": 2,
    "file": 2,
    "job": 2,
    "dbms": 2,
    "queue": 2,
    "notify": 1,
    "output": 1,
    "outbox": 1,
    "queue_table": 1,
    "staging_table": 1,
    "export_table": 1,
    "interface_table": 1,
    "event_table": 1,
}
LINES_PER_UNIT = 20


def complexity(obj: DbObject, analysis: Analysis) -> tuple[int, list[str]]:
    score = BASE_COST[obj.kind]
    reasons = [f"{obj.kind} base {score}"]
    if analysis.lines >= LINES_PER_UNIT:
        extra = analysis.lines // LINES_PER_UNIT
        score += extra
        reasons.append(f"{analysis.lines} lines +{extra}")
    for construct in sorted(analysis.constructs):
        score += CONSTRUCT_COST[construct]
        reasons.append(f"{construct.replace('_', ' ')} +{CONSTRUCT_COST[construct]}")
    for kind in sorted({effect.split(":", 1)[0] for effect in analysis.side_effects}):
        cost = EFFECT_COST.get(kind, 1)
        score += cost
        reasons.append(f"{kind.replace('_', ' ')} +{cost}")
    if analysis.low_confidence:
        extra = min(len(analysis.low_confidence), 5)
        score += extra
        reasons.append(f"{len(analysis.low_confidence)} statements sqlglot could not parse +{extra}")
    return score, reasons
