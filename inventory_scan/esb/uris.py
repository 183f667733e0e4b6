"""Endpoint addresses as they appear in ESB configs → protocol and a locator without credentials.

`vfs:sftp://user:pass@host/in` → `sftp://host/in`; `jms://in` → `jms:queue:in`;
`activemq:topic:prices?x=1` → `jms:topic:prices`. Placeholders (`${port}`, `{{host}}`, `$(dir)`) stay
as written. Query strings are dropped: they hold options, and sometimes passwords.
"""

from __future__ import annotations

import re

from inventory_scan.redact import redact

# Scheme → protocol family; a table, so a new component is one line.
PROTOCOLS: dict[str, str] = {
    "file": "file",
    "vfs": "file",
    "ftp": "ftp",
    "ftps": "ftp",
    "sftp": "sftp",
    "scp": "sftp",
    "jms": "jms",
    "activemq": "jms",
    "sjms": "jms",
    "sjms2": "jms",
    "wmq": "mq",
    "mq": "mq",
    "amqp": "amqp",
    "rabbitmq": "amqp",
    "spring-rabbitmq": "amqp",
    "kafka": "kafka",
    "http": "http",
    "https": "http",
    "http4": "http",
    "https4": "http",
    "netty-http": "http",
    "undertow": "http",
    "jetty": "http",
    "rest": "http",
    "platform-http": "http",
    "servlet": "http",
    "cxf": "soap",
    "cxfrs": "http",
    "spring-ws": "soap",
    "soap": "soap",
    "jdbc": "db",
    "sql": "db",
    "jpa": "db",
    "mybatis": "db",
    "db": "db",
    "smtp": "mail",
    "smtps": "mail",
    "imap": "mail",
    "imaps": "mail",
    "pop3": "mail",
    "pop3s": "mail",
    "mail": "mail",
    "mllp": "tcp",
    "tcp": "tcp",
    "netty": "tcp",
    "mina": "tcp",
}
# Components that stay inside the ESB: links between flows, logging, beans, transforms, timers.
INTERNAL = {
    "direct",
    "direct-vm",
    "seda",
    "vm",
    "log",
    "bean",
    "class",
    "xquery",
    "xslt",
    "xslt-saxon",
    "validator",
    "dataset",
    "mock",
    "timer",
    "scheduler",
    "quartz",
    "language",
    "controlbus",
    "stub",
    "ref",
    "dataformat",
    "browse",
    "stream",
}
LINKS = {"direct", "direct-vm", "seda", "vm"}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_USERINFO = re.compile(r"^(//)?[^/@?#]*@")


def scheme(address: str) -> str:
    match = _SCHEME.match(address.strip())
    return match.group(1).lower() if match else ""


def protocol(address: str) -> str | None:
    """The protocol family of an external endpoint, None for an internal component, '' if unknown."""
    found = scheme(address)
    if found in INTERNAL:
        return None
    if found == "vfs":
        return protocol(address.strip()[4:]) or "file"
    return PROTOCOLS.get(found, "")


def strip_credentials(address: str) -> str:
    """Drop `user:password@` (in any scheme, `jdbc:mysql://` too) and the query string; keep placeholders."""
    text = address.strip()
    if text.lower().startswith("vfs:"):
        text = text[4:]
    head, sep, rest = text.partition(":")
    if not sep:
        return redact(text)
    rest = rest.split("?", 1)[0]
    rest = _USERINFO.sub(lambda m: m.group(1) or "", rest)
    return redact(f"{head}:{rest}")


def locator(address: str) -> str:
    """A catalog locator for an endpoint address."""
    text = strip_credentials(address)
    found = scheme(text)
    family = PROTOCOLS.get(found, "")
    body = text[len(found) + 1 :]
    if family in ("jms", "amqp", "mq") and not body.startswith("//"):
        body = body.lstrip("/")  # Synapse writes jms:/QueueName
        kind, _, name = body.partition(":")
        if kind not in ("queue", "topic"):
            kind, name = "queue", body
        return f"{family}:{kind}:{name}"
    if family == "jms" and body.startswith("//"):
        name = body[2:]
        kind, _, rest = name.partition(":")
        return f"jms:topic:{rest}" if kind == "topic" and rest else f"jms:queue:{name}"
    if found == "file" and not body.startswith("//"):
        return f"file:{body}"
    if found in ("http4", "https4"):
        return f"{found[:-1]}:{body}"
    return text


SQL_VERBS = ("select", "insert", "update", "delete", "merge", "call", "exec", "with", "upsert", "replace")


def sql_verb(sql: str) -> str | None:
    """The statement's verb (select, insert …) when the text looks like SQL, else None."""
    match = re.match(r"""\s*(?:#\[\s*["'])?\s*(\w+)""", sql)
    verb = match.group(1).lower() if match else ""
    return verb if verb in SQL_VERBS else None


def table_names(sql: str) -> list[str]:
    """Tables a SQL statement names; placeholders and parameters are tolerated."""
    import sqlglot
    from sqlglot import exp

    text = sql.strip()
    quoted = re.fullmatch(r"""#\[\s*(["'])(.*)\1\s*\]""", text, re.DOTALL)
    if quoted:  # a whole statement written as an expression string: #["DELETE … $(payload)"]
        text = quoted.group(2)
    cleaned = re.sub(r"#\[[^\]]*\]|\$\([^)]*\)|:\?\w+|\$\{[^}]*\}", "NULL", text)
    try:
        tree = sqlglot.parse_one(cleaned)
    except Exception:
        words = re.findall(r"(?i)\b(?:from|into|update|join)\s+([A-Za-z_][\w.]*)", cleaned)
        return sorted(set(words))
    return sorted({table.sql() for table in tree.find_all(exp.Table) if table.name})
