"""Split SQL scripts into statements the way each engine's own client does.

- T-SQL: `GO` batches; sqlcmd directives (`:setvar`, `:on error`) are dropped.
- MySQL/MariaDB: `;` or whatever `DELIMITER` says (`;;`, `//`, `$$`).
- PostgreSQL: `;` outside `$tag$ … $tag$` bodies.
- Oracle: `/` alone on a line ends a PL/SQL block; other statements end at `;`.
- SQLite: `;`, except inside a trigger's `BEGIN … END`.

Strings, quoted identifiers and comments never split anything. BOMs and CRLF are normalised.
A regex finds the next character that matters, so long bodies cost little.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIALECTS = ("tsql", "postgres", "mysql", "oracle", "sqlite")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line where the statement starts


# Things that can hide a delimiter: comments, strings, quoted identifiers, dollar quotes.
_SKIP = {
    "tsql": r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\[[^\]]*\]",
    "mysql": r"--[ \t][^\n]*|--\n|#[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`[^`]*`",
    "postgres": r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?P<dollar>\$[A-Za-z_0-9]*\$)",
    "oracle": r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"[^\"]*\"|[qQ]'\[.*?\]'",
    "sqlite": r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]",
}
_PLSQL_START = re.compile(
    r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:EDITIONABLE\s+|NONEDITIONABLE\s+)?"
    r"(?:TRIGGER|PROCEDURE|FUNCTION|PACKAGE|TYPE\s+BODY)\b|\s*(?:DECLARE|BEGIN)\b",
    re.IGNORECASE,
)
_SQLITE_TRIGGER = re.compile(r"\s*CREATE\s+(?:TEMP\w*\s+)?TRIGGER\b", re.IGNORECASE)
_END = re.compile(r"\bEND\s*\Z", re.IGNORECASE)


def normalise(text: str) -> str:
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _line_at(text: str, offset: int, cache: list[int]) -> int:
    # cache[0]: offset already counted up to; cache[1]: line number there
    if offset < cache[0]:
        cache[0], cache[1] = 0, 1
    cache[1] += text.count("\n", cache[0], offset)
    cache[0] = offset
    return cache[1]


def _emit(out: list[Statement], text: str, start: int, end: int, lines: list[int]) -> None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if stripped:
        leading = len(chunk) - len(chunk.lstrip())
        out.append(Statement(stripped, _line_at(text, start + leading, lines)))


def _tsql(text: str) -> list[Statement]:
    out: list[Statement] = []
    lines = [0, 1]
    start = 0
    skip = re.compile(
        _SKIP["tsql"] + r"|^[ \t]*GO(?:[ \t]+\d+)?[ \t]*(?:--[^\n]*)?$|^[ \t]*:[a-zA-Z]+[^\n]*$",
        re.DOTALL | re.MULTILINE | re.IGNORECASE,
    )
    for match in skip.finditer(text):
        token = match.group()
        stripped = token.strip()
        if stripped[:2].upper() == "GO" and not stripped.startswith(("--", "/*")):
            _emit(out, text, start, match.start(), lines)
            start = match.end()
        elif stripped.startswith(":") and not stripped.startswith("::"):
            _emit(out, text, start, match.start(), lines)
            start = match.end()  # a sqlcmd directive is not SQL
    _emit(out, text, start, len(text), lines)
    return out


_NOISE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)


def _delimited(text: str, dialect: str) -> list[Statement]:
    out: list[Statement] = []
    lines = [0, 1]
    delimiter = ";"
    start = 0
    parts = [_SKIP[dialect]]
    if dialect == "mysql":
        parts.append(r"^[ \t]*DELIMITER[ \t]+(?P<newdelim>\S+)[ \t]*$")
    if dialect == "oracle":
        parts.append(r"^[ \t]*(?P<slash>/)[ \t]*$")
    parts.append(r"(?P<delim>;|//|\$\$)")
    pattern = re.compile("|".join(parts), re.DOTALL | re.MULTILINE | re.IGNORECASE)
    position = 0
    while (match := pattern.search(text, position)) is not None:
        position = match.end()
        groups = match.groupdict()
        if groups.get("dollar"):  # postgres: jump over the whole $tag$ … $tag$ body
            close = text.find(groups["dollar"], match.end())
            position = len(text) if close < 0 else close + len(groups["dollar"])
        elif groups.get("newdelim"):
            _emit(out, text, start, match.start(), lines)
            delimiter, start = groups["newdelim"], match.end()
        elif groups.get("slash"):
            _emit(out, text, start, match.start(), lines)
            start = match.end()
        elif groups.get("delim") is not None:
            if not text.startswith(delimiter, match.start()):
                continue  # a ; inside a DELIMITER ;; body, or // and $$ when ; is the delimiter
            head = _NOISE.match(text, start)
            begins = head.end() if head else start
            if dialect == "oracle" and _PLSQL_START.match(text, begins):
                continue  # a PL/SQL block ends at its "/" line, not at its first ";"
            if (
                dialect == "sqlite"
                and _SQLITE_TRIGGER.match(text, begins)
                and not _END.search(text, begins, match.start())
            ):
                continue  # inside BEGIN … END of a trigger
            _emit(out, text, start, match.start(), lines)
            start = position = match.start() + len(delimiter)
    _emit(out, text, start, len(text), lines)
    return out


def split(text: str, dialect: str) -> list[Statement]:
    """The statements of a script in `dialect` (one of DIALECTS)."""
    text = normalise(text)
    if dialect == "tsql":
        return _tsql(text)
    return _delimited(text, dialect)


_GUESS = {
    "tsql": [
        r"^\s*GO\s*$",
        r"\[dbo\]",
        r"@@\w+",
        r"\bNVARCHAR\b",
        r"\bRAISERROR\b",
        r"\bINSTEAD\s+OF\b.*\bAS\b",
        r"\bSET\s+NOCOUNT\b",
    ],
    "mysql": [r"^\s*DELIMITER\s", r"`\w+`", r"\bENGINE\s*=", r"\bAUTO_INCREMENT\b", r"\bFOR\s+EACH\s+ROW\s+BEGIN\b"],
    "postgres": [
        r"\$\$",
        r"\$_\$",
        r"\bLANGUAGE\s+plpgsql\b",
        r"\bEXECUTE\s+(?:PROCEDURE|FUNCTION)\b",
        r"::\w+",
        r"\bSERIAL\b",
    ],
    "oracle": [
        r"^\s*/\s*$",
        r":NEW\.",
        r"\bVARCHAR2\b",
        r"\bNUMBER\s*\(",
        r"\bRAISE_APPLICATION_ERROR\b",
        r"\bDBMS_\w+",
    ],
    "sqlite": [r"\bAUTOINCREMENT\b", r"\bsqlite_", r"\bINTEGER\s+PRIMARY\s+KEY\b", r"\bBEGIN\b[^;]*;\s*END\s*;"],
}


def guess_dialect(text: str) -> tuple[str, dict[str, int]]:
    """The most likely dialect of a script, with the evidence counts behind the guess."""
    sample = normalise(text[:400_000])
    scores = {
        dialect: sum(len(re.findall(p, sample, re.IGNORECASE | re.MULTILINE)) for p in patterns)
        for dialect, patterns in _GUESS.items()
    }
    best = max(scores, key=lambda d: scores[d])
    return best, scores
