"""Scanned addresses are often templates: splitting them never raises."""

import pytest

from inventory_scan.uri import Parts, split

CASES = [
    ("sftp://u:p@Host:22/in", Parts("sftp", "host", "22", "/in", "")),
    ("http://[::1]:80/x?a=1", Parts("http", "::1", "80", "/x", "a=1")),
    (
        "http://${p['implementation.host']}:${p['implementation.port']}/svc",
        Parts("http", "${p['implementation.host']}", "${p['implementation.port']}", "/svc", ""),
    ),
    ("http://h:abc/x", Parts("http", "h", "abc", "/x", "")),
    ("http://[::1:80/x", Parts("http", "[::1:80", "", "/x", "")),
    ("jdbc:mysql://dbhost:3306/db", Parts("mysql", "dbhost", "3306", "/db", "")),
    ("vfs:sftp://h/in", Parts("sftp", "h", "", "/in", "")),
    ("file:relative/x", Parts("file", "", "", "relative/x", "")),
    ("jms:queue:x", Parts("jms", "", "", "queue:x", "")),
    ("${url}", Parts("", "", "", "${url}", "")),
    ("", Parts("", "", "", "", "")),
    ("\x00[{(", Parts("", "", "", "[{(", "")),  # urllib drops leading control characters
]


@pytest.mark.parametrize(("address", "parts"), CASES)
def test_split(address: str, parts: Parts) -> None:
    assert split(address) == parts
