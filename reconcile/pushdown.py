"""Both sides in one kind of SQL database: each database groups and hashes its own rows, and only
the groups whose hashes differ are read.

    each side's query ─► grouped by a hash of the key into 65,536 groups:
                         rows, distinct keys, odd keys, Σ a 64-bit hash of the row's mapped columns
    a group alike on both sides, no key odd or repeated ─► its rows matched, never read
    the other groups ─► each side's query narrowed to them ─► the run's usual path (reconcile/run.py)

The checksum pushed down to the database is reladiff's (and data-diff's before it); one round of
65,536 groups takes the place of its bisection: with 0.1 % of 1 M records drifted, about 1.5 % of
the rows are read. PostgreSQL hashes with hashtextextended (11 and later; its hash partitioning's
function, three times as fast as md5 there), MySQL/MariaDB with md5. Two servers that hash apart
(another architecture) only make every group differ: both sides are then read in full.

The shortcut only ever says "equal", and only where it cannot be wrong: two
rows hash alike when both databases wrote the same text for the same columns of the same types,
each value written with its length so that no two run together. A group that differs goes to
the comparator, which decides with the routes' rules (15.00 against 15 is equal there). An odd key
(null, empty, or a space or anything outside printable ASCII at an end, which the key rules may
trim) or a key seen twice sends its group the usual way too, so keys without a value and
duplicates are reported as they always are.

Used when both sides are ODBC queries on PostgreSQL, or both on MySQL/MariaDB; each map only
renames columns, into the same fields with the same types; the key is one field kept in its case;
and nothing is converted or ignored. MariaDB writes a double with 15 digits, so two doubles could
share a text: a float column there reads both sides in full. So does a database that refuses the
grouped query (a warning says so), or a drift so wide that more than an eighth of the groups
differ (nothing would be saved).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from legacy_adapters.mapping import Mapping
from reconcile.sources import bound, odbc_said
from specs.reconciliations import Reconciliation, Source

GROUPS = 65_536  # a group is 16 bits of the key's hash
MOST_READ = GROUPS // 8  # more groups differing than this: both sides read in full
SIDES = ("legacy", "cloud")


@dataclass(frozen=True)
class Dialect:
    """How one kind of database writes what the grouped query needs."""

    name: str
    quote: Callable[[str], str]
    text: str  # a value as text, of {}
    length: str  # characters in a text, of {}
    group: str  # 16 bits of a text's hash, of {}
    hashed: str  # about 64 bits of a text's hash as an integer, of {}
    exact_floats: bool  # a double written as text tells it apart from every other double
    prepare: tuple[str, ...] = ()  # said on the connection before the grouped query

    def written(self, column: str) -> str:
        """A value as text with its length first, so no two run together; `~` for null. (PostgreSQL's
        CONCAT would take three times as long as its ||.)"""
        text = self.text.format(column)
        if self.name == "PostgreSQL":
            return f"COALESCE({self.length.format(text)} || ':' || {text}, '~')"
        return f"COALESCE(CONCAT({self.length.format(text)}, ':', {text}), '~')"

    def joined(self, parts: list[str]) -> str:
        return " || ".join(parts) if self.name == "PostgreSQL" else f"CONCAT({', '.join(parts)})"


POSTGRESQL = Dialect(
    "PostgreSQL",
    lambda name: '"' + name.replace('"', '""') + '"',
    "CAST({} AS TEXT)",
    "LENGTH({})",
    "(hashtextextended({}, 0) & 65535)",
    "hashtextextended({}, 0)",
    exact_floats=True,
    prepare=("SET extra_float_digits = 3",),  # the shortest text that reads back as the same double
)
MYSQL = Dialect(
    "MySQL",
    lambda name: "`" + name.replace("`", "``") + "`",
    "CAST({} AS CHAR)",
    "CHAR_LENGTH({})",
    "SUBSTR(MD5({}), 1, 4)",
    "CAST(CONV(SUBSTRING(MD5({}), 1, 15), 16, 10) AS UNSIGNED)",
    exact_floats=False,
)


def dialect_of(dbms: str) -> Dialect | None:
    """The dialect of a database by the name its driver gives (SQL_DBMS_NAME)."""
    if dbms.lower().startswith("postgresql"):
        return POSTGRESQL
    if dbms.lower() in ("mysql", "mariadb"):
        return MYSQL
    return None


@dataclass
class Group:
    rows: int
    keys: int  # distinct
    odd: int  # keys null, empty, or with something the key rules might trim at an end
    hashed: int  # the sum of the rows' hashes


@dataclass
class Settled:
    """What the databases settled: the records matched there, never read, and each side's source
    narrowed to the rest."""

    matched: int = 0
    sources: dict[str, Source] = field(default_factory=dict)  # empty: read both sides in full
    warnings: list[str] = field(default_factory=list)


@dataclass
class Grouped:
    """One side grouped in its database."""

    dialect: Dialect
    kinds: list[Any]  # its columns' types, by field
    groups: dict[int | str | None, Group]  # by its name: 16 bits of the key's hash, as a number or hex


class Pushdown:
    """The grouped hashes of one reconciliation's two ODBC sides."""

    def __init__(self, spec: Reconciliation, columns: dict[str, dict[str, str]]) -> None:
        self.spec = spec
        self.columns = columns  # side → canonical field → the query's column
        self.fields = sorted(columns["legacy"])
        self.key = spec.key[0]

    @classmethod
    def of(cls, spec: Reconciliation) -> Pushdown | None:
        """When the two sides could be grouped in their databases at all (their kinds and types are
        known only once connected: `settle`)."""
        sources = {"legacy": spec.legacy, "cloud": spec.cloud}
        if any(source.odbc is None for source in sources.values()):
            return None
        renamed = {side: renames(source.map) for side, source in sources.items()}
        columns = {side: {target: column for column, target in found.items()} for side, found in renamed.items()}
        if not all(renamed.values()) or set(columns["legacy"]) != set(columns["cloud"]):
            return None
        if len(spec.key) != 1 or spec.key[0] not in columns["legacy"] or spec.keys.case != "keep":
            return None
        if spec.currency is not None or spec.compare.ignore:
            return None
        return cls(spec, columns)

    def settle(self, entity: str, since: str | None) -> Settled:
        """Both sides grouped at once (two connections, the databases doing the work)."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {side: pool.submit(self._groups, side, entity, since) for side in SIDES}
            found = {side: _outcome(self.spec.label(side), future) for side, future in futures.items()}
        legacy_side, cloud_side = found["legacy"], found["cloud"]
        if not isinstance(legacy_side, Grouped) or not isinstance(cloud_side, Grouped):
            return Settled(warnings=[said for said in (legacy_side, cloud_side) if isinstance(said, str)])
        if legacy_side.dialect != cloud_side.dialect or legacy_side.kinds != cloud_side.kinds:
            return Settled()  # two kinds of database, or columns of other types: their texts do not compare
        settled, differing = 0, list[int | str]()
        for name in set(legacy_side.groups) | set(cloud_side.groups):
            legacy, cloud = legacy_side.groups.get(name), cloud_side.groups.get(name)
            if (
                name is not None
                and legacy is not None
                and legacy == cloud
                and legacy.rows == legacy.keys
                and not legacy.odd
            ):
                settled += legacy.rows
            elif name is not None:
                differing.append(name)
        if len(differing) > MOST_READ:
            return Settled()
        dialect = legacy_side.dialect
        return Settled(settled, {side: self._narrowed(side, dialect, sorted(differing)) for side in SIDES})

    def _groups(self, side: str, entity: str, since: str | None) -> Grouped | str | None:
        """The side grouped in its database; None when it cannot be, a warning when its database
        refused."""
        import pyodbc

        source = self.spec.legacy if side == "legacy" else self.spec.cloud
        assert source.odbc is not None
        dsn = os.environ.get(source.odbc.connection_env)
        if dsn is None:
            return None  # the usual path says what is missing
        label = self.spec.label(side)
        try:
            connection = pyodbc.connect(dsn, timeout=30)
        except pyodbc.Error:
            return None  # so does it for a connection refused
        try:
            dialect = dialect_of(str(connection.getinfo(pyodbc.SQL_DBMS_NAME)))
            if dialect is None:
                return None
            cursor = connection.cursor()
            query = _inner(source.odbc.query)
            statement, values = bound(f"SELECT * FROM ({query}) AS q WHERE 1 = 0", entity, since)
            cursor.execute(statement, values)
            names = [column[0] for column in cursor.description or []]
            types = {column[0]: column[1] for column in cursor.description or []}
            wanted = self.columns[side]
            if any(wanted[target] not in names for target in self.fields):
                return None
            kinds = [types[wanted[target]] for target in self.fields]
            if float in kinds and not dialect.exact_floats:
                return None
            for said in dialect.prepare:
                cursor.execute(said)
            statement, values = bound(self._grouped(side, dialect, query), entity, since)
            cursor.execute(statement, values)
            groups = {
                name: Group(int(rows), int(keys), int(odd or 0), int(hashed or 0))
                for name, rows, keys, odd, hashed in cursor.fetchall()
            }
            return Grouped(dialect, kinds, groups)
        except pyodbc.Error as exc:
            return (
                f"{label}: the database could not group and hash the query, so both sides were read in full: "
                f"{odbc_said(exc)}"
            )
        finally:
            connection.close()

    def _grouped(self, side: str, dialect: Dialect, query: str) -> str:
        key, group, odd = self._key(side, dialect)
        parts = [dialect.written(f"q.{dialect.quote(self.columns[side][target])}") for target in self.fields]
        row = dialect.hashed.format(dialect.joined(parts))
        return (
            f"SELECT {group} AS g, COUNT(*), COUNT(DISTINCT {key}), SUM(CASE WHEN {odd} THEN 1 ELSE 0 END), "
            f"SUM({row}) FROM ({query}) AS q GROUP BY 1"
        )

    def _key(self, side: str, dialect: Dialect) -> tuple[str, str, str]:
        """The key column, its group, and when it is odd."""
        key = f"q.{dialect.quote(self.columns[side][self.key])}"
        text = dialect.text.format(key)
        group = dialect.group.format(text)
        odd = f"{key} IS NULL OR {text} = ''"
        if self.spec.keys.trim:
            odd += f" OR ASCII({text}) NOT BETWEEN 33 AND 126 OR ASCII(RIGHT({text}, 1)) NOT BETWEEN 33 AND 126"
        return key, group, odd

    def _narrowed(self, side: str, dialect: Dialect, groups: list[int | str]) -> Source:
        """The side's source with its query narrowed to the groups that differ, and null keys."""
        source = self.spec.legacy if side == "legacy" else self.spec.cloud
        assert source.odbc is not None
        key, group, _ = self._key(side, dialect)
        where = f"{key} IS NULL"
        if groups:
            where += f" OR {group} IN ({', '.join(_literal(name) for name in groups)})"
        query = f"SELECT * FROM ({_inner(source.odbc.query)}) AS q WHERE {where}"
        return source.model_copy(update={"odbc": source.odbc.model_copy(update={"query": query})})


def _outcome(label: str, future: Future[Grouped | str | None]) -> Grouped | str | None:
    """A side's grouping, or what stopped it as a warning: the run then reads both sides in full,
    and is never left unfinished by it."""
    try:
        return future.result()
    except Exception as exc:  # whatever went wrong inside the grouping is only a shortcut not taken
        said = f"{type(exc).__name__}: {str(exc)[:200]}"
        return f"{label}: the database's groups could not be read, so both sides were read in full: {said}"


def _inner(query: str) -> str:
    """A query as a subquery: without the semicolon that may end it, and a line ended after it, so
    a comment on its last line ends there."""
    return query.strip().rstrip(";").strip() + "\n"


def _literal(name: int | str) -> str:
    """A group's name in SQL: a number, or four hex digits (nothing else comes back from the query)."""
    if isinstance(name, int):
        return str(name)
    if len(name) == 4 and all(c in "0123456789abcdef" for c in name):
        return f"'{name}'"
    raise ValueError(f"not a group: {name!r}")


def renames(mapping: Mapping | None) -> dict[str, str]:
    """column → canonical field, when a map only renames top-level fields (the common case for a
    table): the reader then makes each row the canonical record itself. Empty otherwise."""
    if mapping is None or mapping.map is None or mapping.optional:
        return {}
    found = {}
    for to, origin in mapping.map.items():
        target, column = to.removeprefix("/"), origin.removeprefix("/")
        if not (to.startswith("/") and origin.startswith("/")) or any(
            "/" in n or "~" in n or not n for n in (target, column)
        ):
            return {}
        found[column] = target
    if len(found) != len(mapping.map):  # one column made into two fields: the map does it
        return {}
    return found
