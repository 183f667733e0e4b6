"""URI splitting that never raises: scanned addresses are often templates, not URIs.

`http://${p['implementation.host']}:${p['port']}/x` makes `urllib.parse` raise (a bracket in the
host is read as an IPv6 literal, a placeholder port is not a number). A scanner wants what can be
read — scheme, host, path — and the rest kept as written.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit


class Parts(NamedTuple):
    scheme: str
    host: str  # lower case; '' when there is none or it cannot be read
    port: str  # as written: a number, a placeholder, or ''
    path: str
    query: str


_LOOSE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):)?(?://(?P<netloc>[^/?#]*))?(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?"
)


_WRAPPER = re.compile(r"^(?i:jdbc|vfs):(?=[A-Za-z][A-Za-z0-9+.-]*:)")


def _last_colon(netloc: str) -> int:
    """Where the port starts: the last colon outside brackets and placeholders, or -1."""
    depth, found = 0, -1
    for index, char in enumerate(netloc):
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        elif char == ":" and depth == 0:
            found = index
    return found


def split(address: str) -> Parts:
    """Scheme, host, port, path and query of `address`, whatever it holds.

    A wrapped address (`jdbc:mysql://h/db`, `vfs:sftp://h/in`) is split as the address it wraps."""
    text = _WRAPPER.sub("", address.strip())
    try:
        parts = urlsplit(text)
        port = str(parts.port or "")
        return Parts(parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path, parts.query)
    except ValueError:
        pass  # a placeholder in the host or port: read it loosely below
    match = _LOOSE.match(text)
    assert match is not None  # every group is optional, so the pattern matches any string
    netloc = (match.group("netloc") or "").rpartition("@")[2]
    host, port = netloc, ""
    colon = _last_colon(netloc)
    if colon >= 0:
        host, port = netloc[:colon], netloc[colon + 1 :]
    scheme = (match.group("scheme") or "").lower()
    return Parts(scheme, host.lower(), port, match.group("path") or "", match.group("query") or "")
