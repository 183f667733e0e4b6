"""SFTP scans against a real OpenSSH server: drops, host-key checks, credentials, lost connections."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from inventory_scan import Catalog, EntityRule, FileScan, FileSource
from inventory_scan.files.folders import FolderResult
from inventory_scan.files.scan import Progress
from tests.integration.conftest import Sshd

pytestmark = pytest.mark.integration
runner = CliRunner()
T0 = 1767225600
EDIFACT = "UNB+UNOC:3+5012345000011:14+5099999000001:14+260101:0200+1'UNH+1+ORDERS:D:96A:UN'UNT+2+1'UNZ+1+1'"


def put(path: Path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    root = tmp_path / "partner"
    for day in range(6):
        put(
            root / "orders" / "processed" / f"ORDERS_202601{day + 1:02d}_{day:05d}.edi",
            EDIFACT,
            T0 + day * 86400 + 7200,
        )
    put(root / "orders" / "in" / "ORDERS_20260107_00006.edi", EDIFACT, T0 + 6 * 86400 + 7200)
    for n in range(3):
        put(root / "invoices" / "out" / f"INV_{n:04d}.csv", "no;amount;currency\n1;10.5;EUR\n", T0 + n * 3600)
    return root


def source(sshd: Sshd, path: Path, **options: object) -> FileSource:
    settings: dict[str, object] = {"known_hosts": sshd.known_hosts, "key_file": sshd.user_key, "allow_agent": False}
    return FileSource(url=sshd.url(path), **(settings | options))  # type: ignore[arg-type]


def test_sftp_scan_finds_the_same_drops_as_a_local_scan(sshd: Sshd, remote: Path) -> None:
    rules = [EntityRule(entity="ACME-UK", host="127.0.0.1", system="partner_sftp")]
    over_sftp, errors = FileScan(rules=rules, timezone="UTC").run([source(sshd, remote)])
    assert errors == []
    locally, _ = FileScan(timezone="UTC").run([FileSource(path=remote)])

    def facts(catalog: Catalog) -> set[tuple[object, ...]]:
        return {
            (
                i.name,
                i.attributes["folder"],
                i.activity.count,
                i.activity.bytes,
                tuple(i.formats),
                i.activity.cadence.label if i.activity.cadence else None,
            )
            for i in catalog.interfaces
        }

    assert facts(over_sftp) == facts(locally)
    orders = next(i for i in over_sftp.interfaces if i.name == "ORDERS_{date}_{seq}.edi")
    assert orders.locator == f"sftp://127.0.0.1:{sshd.port}{remote}/orders/in/ORDERS_{{date}}_{{seq}}.edi"
    assert (orders.entity, orders.system, orders.protocol) == ("ACME-UK", "partner_sftp", "sftp")
    assert orders.formats == ["edifact:ORDERS"]
    assert orders.attributes["stages"]["processed"]["files"] == 6
    assert over_sftp.sources[0].locator == f"sftp://127.0.0.1:{sshd.port}{remote}"
    assert f"{sshd.user}@" not in over_sftp.model_dump_json()  # the login is not part of a locator


def _fingerprint(public_key: Path) -> str:
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def test_unknown_host_is_refused_with_how_to_trust_it(sshd: Sshd, remote: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    out = tmp_path / "catalog.json"
    result = runner.invoke(
        app,
        [
            "scan",
            "files",
            sshd.url(remote),
            "-o",
            str(out),
            "--known-hosts",
            str(empty),
            "--identity",
            str(sshd.user_key),
        ],
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert f"unknown SFTP host [127.0.0.1]:{sshd.port}" in text
    assert _fingerprint(sshd.host_key_pub) in text
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in text
    catalog = Catalog.load(out)
    assert not catalog.complete and catalog.interfaces == []


def test_accept_unknown_host_when_the_config_says_so(sshd: Sshd, remote: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    catalog, errors = FileScan().run([source(sshd, remote, known_hosts=empty, accept_unknown_host=True)])
    assert errors == [] and len(catalog.interfaces) == 2


def test_a_changed_host_key_is_always_refused(sshd: Sshd, remote: Path, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    catalog, errors = FileScan().run([source(sshd, remote, known_hosts=wrong, accept_unknown_host=True)])
    assert len(errors) == 1 and "has CHANGED" in errors[0]
    assert not catalog.complete


def test_failed_login_never_shows_the_password(sshd: Sshd, remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANYAN_TEST_SFTP_PASSWORD", "s3cr3t-Pa55")
    stranger = FileSource(
        url=sshd.url(remote), known_hosts=sshd.known_hosts, password_env="BANYAN_TEST_SFTP_PASSWORD", allow_agent=False
    )
    catalog, errors = FileScan().run([stranger])
    assert len(errors) == 1 and "authentication failed" in errors[0]
    assert "s3cr3t-Pa55" not in errors[0] and "s3cr3t-Pa55" not in catalog.model_dump_json()


def test_connection_lost_mid_scan_leaves_an_incomplete_catalog(sshd: Sshd, remote: Path) -> None:
    seen: list[str] = []

    def cut_after_first_folder(result: FolderResult) -> None:
        seen.append(result.path)
        if len(seen) == 1:
            sshd.drop_connections()

    scan = FileScan(progress=Progress(folder=cut_after_first_folder))
    catalog, errors = scan.run([source(sshd, remote)])
    assert len(errors) == 1
    assert f"connection to [127.0.0.1]:{sshd.port} lost" in errors[0]
    [record] = catalog.sources
    assert not record.complete and record.reason is not None and "lost" in record.reason
    assert record.stats["folders"] == 1


def test_unreachable_server_is_a_clear_error(remote: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    catalog, errors = FileScan().run([FileSource(url=f"sftp://edi@127.0.0.1:{port}/in", known_hosts=tmp_path / "kh")])
    assert len(errors) == 1 and f"cannot connect to edi@[127.0.0.1]:{port}" in errors[0]
    assert not catalog.complete
