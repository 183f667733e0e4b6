"""No scanner ends in a traceback on input: every corpus file, with its values mutated.

Each file of shared/corpora is copied with every value replaced — XML attributes and texts, SQL
string literals, words of EDI, CSV and fixed-width files — by one kind of odd value at a time
(placeholders of each product, brackets, unicode, empty, 10 kB), then by a seeded mix of all of
them. Each copy is scanned through the real CLI, then reported, graphed and scaffolded: the exit
code is 0 or 1 with a message, never an uncaught exception.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog

ODD_VALUES = {
    "mule": "${p['implementation.host']}",
    "mule_expression": "#[vars.x ++ '/in']",
    "camel": "{{host}}:{{port}}",
    "biztalk": "$(DropRoot)\\in\\*.xml",
    "wso2": "${sys:carbon.home}/${env:DIR}",
    "brackets": "http://[::1:${x}]]/[{(",
    "unicode": "Grüße €𝄞 \u202eevil\u202c ﷽",
    "empty": "",
    "long": "x" * 10_240,
    "uri_odd": "sftp://u:p@[bad/host:99999999/../../etc?password=x#",
}
MIXED = "mixed"


def _pick(kind: str, rng: random.Random) -> str:
    return rng.choice(list(ODD_VALUES.values())) if kind == MIXED else ODD_VALUES[kind]


def _mutate_xml(data: bytes, kind: str, rng: random.Random) -> bytes | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name in element.attrib:
            element.set(name, _pick(kind, rng))
        if element.text and element.text.strip():
            element.text = _pick(kind, rng)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _mutate_sql(data: bytes, kind: str, rng: random.Random) -> bytes:
    text = data.decode("utf-8", errors="replace")
    text = re.sub(r"'[^'\n]*'", lambda _: "'" + _pick(kind, rng).replace("'", "''") + "'", text)
    return text.encode()


def _mutate_words(data: bytes, kind: str, rng: random.Random) -> bytes:
    """Replace words of a flat file, keeping its separators and envelope tags."""
    text = data.decode("latin-1")

    def word(match: re.Match[str]) -> str:
        if match.group(0) in ("ISA", "GS", "ST", "SE", "GE", "IEA", "UNA", "UNB", "UNH", "UNT", "UNZ", "STX", "MHD"):
            return match.group(0)
        return _pick(kind, rng) if rng.random() < 0.5 else match.group(0)

    return re.sub(r"[A-Za-z0-9]{2,}", word, text).encode("utf-8", errors="replace")


Mutator = Callable[[bytes, str, random.Random], bytes | None]


def _mutator(path: Path) -> Mutator:
    head = path.read_bytes()[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return _mutate_xml
    if path.suffix == ".sql":
        return _mutate_sql
    return _mutate_words


def _estate(corpora: Path, kind: str, root: Path) -> Path:
    """A mutated copy of every corpus file, under esb/, sql/ and drops/."""
    rng = random.Random(f"banyan-{kind}")
    for path in sorted(corpora.rglob("*")):
        if not path.is_file() or path.name in ("SOURCES.tsv", "README.md"):
            continue
        relative = path.relative_to(corpora)
        family = {"esb": "esb", "sql": "sql"}.get(relative.parts[0], "drops")
        mutated = _mutator(path)(path.read_bytes(), kind, rng)
        target = root / family / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes() if mutated is None else mutated)
    # And one broken file of each kind: cut in the middle.
    for name, text in {
        "broken.xml": '<mule xmlns="http://www.mulesoft.org/schema/mule/core"><flow name="x"><file:listener',
        "broken.wsdl": '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"><portType name="P"><operation',
    }.items():
        (root / "esb" / name).write_text(text)
    (root / "sql" / "broken.sql").write_text("CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW BEGIN INSERT INTO (")
    (root / "drops" / "IN9999.dat").write_bytes(b"ISA*00*\x1d\x1c" + b"\xff" * 40)
    return root


def _ok(result: object, what: str) -> None:
    exit_code = result.exit_code
    exception = result.exception
    output = result.output
    assert exit_code in (0, 1), f"{what}: exit {exit_code}\n{output[-2000:]}"
    assert exception is None or isinstance(exception, SystemExit), f"{what}: {exception!r}"
    assert "Traceback" not in output, f"{what}:\n{output[-2000:]}"
    if exit_code == 1:
        assert "incomplete" in output.lower(), f"{what}: exit 1 without saying why"


@pytest.mark.parametrize("kind", [*ODD_VALUES, MIXED])
def test_every_scanner_survives_mutated_corpora(kind: str, corpora: Path, tmp_path: Path) -> None:
    estate = _estate(corpora, kind, tmp_path / "estate")
    catalog = tmp_path / "catalog.json"
    runner = CliRunner()
    esb = runner.invoke(app, ["scan", "esb", str(estate / "esb"), "-o", str(catalog)])
    _ok(esb, "scan esb")
    assert esb.exit_code == 1  # the broken files make the source partial; the rest is catalogued
    skipped = {
        Path(w.path).name for s in Catalog.load(catalog).sources for w in s.warnings if w.message.startswith("skipped")
    }
    assert {"broken.xml", "broken.wsdl"} <= skipped
    for command in (
        ["scan", "db", str(estate / "sql"), "-o", str(catalog)],
        ["scan", "files", str(estate / "drops"), "-o", str(catalog)],
    ):
        _ok(runner.invoke(app, command), " ".join(command[:2]))
    for command in (
        ["catalog", "report", str(catalog), "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")],
        ["catalog", "graph", str(catalog), "-f", "mermaid", "-o", str(tmp_path / "g.mmd")],
        ["catalog", "graph", str(catalog), "-f", "graphml", "-o", str(tmp_path / "g.graphml")],
        ["routes", "scaffold", str(catalog), "--out", str(tmp_path / "routes")],
    ):
        result = runner.invoke(app, command)
        _ok(result, " ".join(command[:2]))
