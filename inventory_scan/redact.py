"""Secrets never leave the scanner: the one redaction step every catalog string passes through.

Configurations carry credentials in many places — `user:password@` in any URI scheme
(`http`, `jdbc:mysql`, `sftp`, `amqp`, `vfs:ftp` …), query parameters and properties whose names
look like secrets (`?apikey=…`, `;PWD=…`, `password="…"`), and values of secret-named attributes.
`redact(text)` removes them from a string; `redact_tree(value)` walks dicts and lists and also masks
the value of every secret-named key. The catalog's models call both on every string they hold,
so a locator, a source name, an attribute, an evidence detail or a warning cannot carry a secret
into a catalog, a report, a graph or the terminal. Placeholders (`${db.password}`) are not secrets
and stay readable: they say where the value comes from.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Names of parameters, properties and attributes whose values are secrets, matched as whole words
# in any case, with `-`, `_` and `.` as separators (`db.password`, `client_secret`, `X-Api-Key`).
_SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "key",
    "accesskey",
    "access_key",
    "secretkey",
    "secret_key",
    "privatekey",
    "private_key",
    "signature",
    "sig",
    "sas",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "sharedaccesskey",
    "client_secret",
    "clientsecret",
    "connectionstring",
    "sessionid",
    "jsessionid",
)
_SECRET_NAME = re.compile(r"(?i)^(?:.*[._-])?(?:" + "|".join(re.escape(w) for w in _SECRET_WORDS) + r")s?$")
_NAME = r"[A-Za-z_][\w.-]*"
# `user:password@` or `user@` right after `scheme://` (and `jdbc:mysql://`, `vfs:sftp://` …).
# A scheme starts where no scheme character precedes it, which keeps the search linear on long values.
_USERINFO = re.compile(r"(?i)(?<![a-z0-9+.-])((?:[a-z][a-z0-9+.-]{0,40}:){1,4}//)[^/\s?#'\"<>]*@")
# Oracle's `jdbc:oracle:thin:scott/tiger@host:1521/db`: a user/password pair before `@`.
_ORACLE_THIN = re.compile(r"(?i)(jdbc:oracle:(?:thin|oci):)[^@\s/'\"]+/[^@\s'\"]+@")
# `name=value` in query strings, DSNs and property lists: `?apikey=K`, `;PWD=x;`, `password = "x"`.
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?P<name>" + _NAME + r")(?P<op>\s*=\s*|\s*:\s+)"
    r"""(?P<value>\$\{[^}]*\}|\$\([^)]*\)|#\[[^\]]*\]|"[^"]*"|'[^']*'|\{[^}]*\}|[^\s&;,'"<>)]+)"""
)
_PLACEHOLDER = re.compile(r"^(?:\$\{[^}]*\}|\{\{[^}]*\}\}|\$\([^)]*\)|#\[[^\]]*\]|%\w+%)$")
_HINTS = ("@", "=", ":")


def is_secret_name(name: str) -> bool:
    """Does a parameter, property or attribute with this name hold a secret?"""
    return bool(_SECRET_NAME.match(name.strip().strip("\"'")))


def _is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip().strip("\"'")))


def _mask_assignment(match: re.Match[str]) -> str:
    name, op, value = match.group("name"), match.group("op"), match.group("value")
    if not is_secret_name(name) or _is_placeholder(value):
        return match.group(0)
    return f"{name}{op}{MASK}"


def redact(text: str) -> str:
    """`text` without userinfo in URIs and without the values of secret-named parameters."""
    if not text or not any(hint in text for hint in _HINTS):
        return text
    text = _ORACLE_THIN.sub(r"\1", text)
    text = _USERINFO.sub(r"\1", text)
    return _ASSIGNMENT.sub(_mask_assignment, text)


def redact_tree(value: Any, name: str = "") -> Any:
    """A copy of a JSON-like value with every string redacted and secret-named keys masked."""
    if isinstance(value, str):
        if name and is_secret_name(name) and value and not _is_placeholder(value):
            return MASK
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_tree(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_tree(item, name) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_tree(item, name) for item in value)
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """A scanned name made safe to print: redacted, control characters (escape codes) shown as `?`."""
    return _CONTROL.sub("?", redact(text))
