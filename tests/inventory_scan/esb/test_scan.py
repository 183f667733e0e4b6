"""ESB scans of files written here: hostile and broken XML, imports, links to file drops, the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, FileScan, FileSource, Kind
from inventory_scan.analysis.pipeline import save_merged
from inventory_scan.esb import EsbScan, EsbSource

runner = CliRunner()
SYNAPSE = "http://ws.apache.org/ns/synapse"
MULE = 'xmlns="http://www.mulesoft.org/schema/mule/core" xmlns:sftp="http://www.mulesoft.org/schema/mule/sftp"'


def scan(*targets: Path | str) -> tuple[Catalog, list[str]]:
    return EsbScan().run([EsbSource(str(target)) for target in targets])


def test_hostile_and_broken_files_are_skipped_and_the_scan_goes_on(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    (tmp_path / "xxe.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE definitions [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<definitions xmlns="{SYNAPSE}"><proxy name="P"><description>&x;</description></proxy></definitions>'
    )
    laughs = ['<!ENTITY a0 "ha">'] + [f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)]
    (tmp_path / "laughs.xml").write_text(
        f'<!DOCTYPE mule [{"".join(laughs)}]><mule xmlns="http://www.mulesoft.org/schema/mule/core">&a9;</mule>'
    )
    (tmp_path / "broken.xml").write_text(f'<definitions xmlns="{SYNAPSE}"><proxy name="P">')
    (tmp_path / "pom.xml").write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"/>')
    (tmp_path / "deep.xml").write_text("<a>" * 200 + "</a>" * 200)
    (tmp_path / "notes.txt").write_text("not xml at all")
    (tmp_path / "good.xml").write_text(
        f'<definitions xmlns="{SYNAPSE}"><proxy name="Good" transports="jms"><target><endpoint>'
        '<address uri="http://erp.example/orders"/></endpoint></target></proxy></definitions>'
    )
    catalog, errors = scan(tmp_path)
    # What was read is kept; the source says it is partial: four documents could not be read.
    assert errors == [f"{tmp_path}: 4 of 5 documents could not be read (see the warnings)"]
    assert not catalog.sources[0].complete
    reasons = {Path(w.path).name: w.message for w in catalog.sources[0].warnings}
    assert "declares XML entities" in reasons["xxe.xml"]
    assert "entit" in reasons["laughs.xml"]  # refused by our entity check or libxml2's amplification guard
    assert "not well-formed XML" in reasons["broken.xml"]
    assert "not an ESB or WSDL document (root element <project>)" in reasons["pom.xml"]
    assert "nests elements more than 128 deep" in reasons["deep.xml"]
    assert "notes.txt" not in reasons  # not XML: not even looked at
    assert "TOP-SECRET-VALUE" not in catalog.model_dump_json()
    assert [i.name for i in catalog.interfaces if i.kind is Kind.esb_flow] == ["Good"]


def test_wsdl_imports_stay_inside_the_documents_folder(tmp_path: Path) -> None:
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    (tmp_path / "outside.wsdl").write_text(f'<definitions xmlns="{wsdl}" name="x"/>')
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "types.wsdl").write_text(
        f'<definitions xmlns="{wsdl}" xmlns:tns="urn:t" targetNamespace="urn:t">'
        '<message name="Ping"><part name="p" element="tns:Ping"/></message>'
        '<portType name="PT"><operation name="Ping"><input message="tns:Ping"/></operation></portType>'
        '<binding name="B" type="tns:PT"><soap:binding xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" transport="http://schemas.xmlsoap.org/soap/http"/>'
        "</binding></definitions>"
    )
    (folder / "service.wsdl").write_text(
        f'<definitions xmlns="{wsdl}" xmlns:tns="urn:t" targetNamespace="urn:t">'
        '<import namespace="urn:t" location="types.wsdl"/><import namespace="urn:x" location="../outside.wsdl"/>'
        '<import namespace="urn:y" location="http://elsewhere.example/evil.wsdl"/>'
        '<service name="S"><port name="P" binding="tns:B"><soap:address xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" location="http://erp.example/ping"/></port></service>'
        "</definitions>"
    )
    catalog, errors = scan(folder / "service.wsdl")
    assert errors == []
    [operation] = [i for i in catalog.interfaces if i.kind is Kind.soap_operation]
    assert operation.name == "S.Ping"
    assert operation.attributes["addresses"] == ["http://erp.example/ping"]
    messages = [w.message for w in catalog.sources[0].warnings]
    assert "import '../outside.wsdl' refused: it points outside the document's folder" in messages
    assert "import 'http://elsewhere.example/evil.wsdl' refused: it points outside the document's folder" in messages


def test_esb_endpoints_link_to_the_file_drops_they_poll(tmp_path: Path) -> None:
    inbound, archive = tmp_path / "edi" / "in", tmp_path / "edi" / "archive"
    for folder in (inbound, archive):
        folder.mkdir(parents=True)
        (folder / "ORD_0001.xml").write_text("<Order/>")
    config = tmp_path / "synapse.xml"
    config.write_text(
        f'<definitions xmlns="{SYNAPSE}"><proxy name="OrderPoller" transports="vfs">'
        f'<parameter name="transport.vfs.FileURI">vfs:file://{inbound}</parameter>'
        f'<parameter name="transport.vfs.MoveAfterProcess">file://{archive}</parameter>'
        '<target><endpoint><address uri="jms:/orders"/></endpoint></target></proxy></definitions>'
    )
    out = tmp_path / "catalog.json"
    files, _ = FileScan().run([FileSource(path=tmp_path / "edi")])
    save_merged(files, out)
    esb, _ = scan(config)
    merged = save_merged(esb, out)
    drop = next(i for i in merged.interfaces if i.kind is Kind.file_drop)
    links = {(merged.interface(e.source).locator, e.relation) for e in merged.edges if e.target == drop.id}
    assert links == {(f"file://{inbound}", "link:polls"), (f"file://{archive}", "link:moves_to")}


def test_scan_esb_command_and_scan_run(corpora: Path, tmp_path: Path) -> None:
    out = tmp_path / "catalog.json"
    result = runner.invoke(app, ["scan", "esb", str(corpora / "esb" / "mule"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "esb_flow 12" in result.output
    (tmp_path / "scan.yaml").write_text(
        f"out: run.json\nesb:\n  - path: {corpora / 'esb' / 'camel'}\n    system: camel_hub\n"
    )
    result = runner.invoke(app, ["scan", "run", str(tmp_path / "scan.yaml")])
    assert result.exit_code == 0, result.output
    systems = {i.system for i in Catalog.load(tmp_path / "run.json").interfaces if i.kind is Kind.esb_flow}
    assert systems == {"camel_hub"}


def test_missing_source_is_an_error_and_the_others_complete(corpora: Path, tmp_path: Path) -> None:
    catalog, errors = scan(tmp_path / "nope", corpora / "esb" / "biztalk")
    assert len(errors) == 1 and "neither a file nor a folder" in errors[0]
    assert len([s for s in catalog.sources if s.complete]) == 1
    assert any(i.kind is Kind.esb_flow for i in catalog.interfaces)
