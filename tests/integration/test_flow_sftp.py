"""A partner's SFTP mailbox as a flow's source, against a real OpenSSH sshd: host keys verified,
whole files fetched, removed from the server only once they are safe here, a dropped connection
leaving no half file, and the public samples delivered by the rung of their partner."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.runtime import Cutover
from flows.journey import Journey
from flows.mailbox import Mailbox, MailboxError
from flows.runner import FlowRunner
from specs.flows import Flow, ladder
from tests.integration.conftest import Sshd

ORDER = "filedrop/x12/850_from-bots-plugins_850-004010-ascii1.x12"  # sent by 1234567890
EDIFACT = "filedrop/edifact/ORDERS_from-pydifact_order.edi"  # sent by 12345678


def _flow(root: Path, sshd: Sshd, **source: object) -> Flow:
    return Flow.model_validate(
        {
            "name": "partner-mailbox",
            "source": {
                "folder": sshd.url(root / "remote"),
                "staging": str(root / "staging"),
                "pattern": "*",
                "settle_seconds": 0,
                "known_hosts": str(sshd.known_hosts),
                "key_file": str(sshd.user_key),
                **source,
            },
            "entity": {"from": "partner", "partners": {"1234567890": "ACME-DE", "12345678": "ACME-UK"}},
            "legacy": {"intake": str(root / "legacy")},
            "cloud": {"intake": str(root / "cloud")},
        }
    )


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    for folder in ("remote", "staging", "legacy", "cloud"):
        (tmp_path / folder).mkdir()
    yield tmp_path


def test_files_are_fetched_whole_then_removed_and_delivered_by_rung(root: Path, sshd: Sshd, corpora: Path) -> None:
    flow = _flow(root, sshd)
    shutil.copy(corpora / ORDER, root / "remote" / "850.x12")
    shutil.copy(corpora / EDIFACT, root / "remote" / "orders.edi")
    (root / "remote" / "upload.edi.part").write_bytes(b"UNB+")  # still being written: left alone
    cutover = Cutover(str(root / "cutover.db"), *ladder([], [flow]))
    try:
        cutover.engine.set(flow.name, "ACME-UK", "dual_write", "EDIFACT partners first", "ana", force=True)
        cutover.reload()
        runner = FlowRunner([flow], cutover)
        runner.pass_once(flow)
        runner.pass_once(flow)
        assert sorted(p.name for p in (root / "remote").iterdir()) == ["upload.edi.part"]  # taken off the server
        assert sorted(p.name for p in (root / "legacy").iterdir()) == ["850.x12", "orders.edi"]
        assert [p.name for p in (root / "cloud").iterdir()] == ["orders.edi"]  # only ACME-UK is on dual_write
        assert (root / "cloud" / "orders.edi").read_bytes() == (corpora / EDIFACT).read_bytes()
        entities = {row.name: row.entity for row in Journey(cutover.store).files(flow.name)}
        assert entities == {"850.x12": "ACME-DE", "orders.edi": "ACME-UK"}
    finally:
        cutover.close()


def test_an_unknown_host_is_refused_and_nothing_is_taken(root: Path, sshd: Sshd, corpora: Path) -> None:
    (root / "empty_known_hosts").write_text("")
    flow = _flow(root, sshd, known_hosts=str(root / "empty_known_hosts"))
    shutil.copy(corpora / ORDER, root / "remote" / "850.x12")
    with pytest.raises(MailboxError, match=r"unknown SFTP host .* SHA256:"):
        Mailbox(flow.source).fetch()
    assert [p.name for p in (root / "remote").iterdir()] == ["850.x12"]
    assert list((root / "staging").iterdir()) == []


def test_a_connection_dropped_mid_transfer_leaves_no_half_file(
    root: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = _flow(root, sshd)
    big = b"ISA" + b"x" * (8 << 20)
    (root / "remote" / "big.x12").write_bytes(big)
    import flows.mailbox as mailbox_module

    real_fsync = mailbox_module.os.fsync

    def cut(descriptor: int) -> None:  # the wire goes down as the last bytes arrive
        sshd.drop_connections()
        raise OSError("Socket is closed")

    monkeypatch.setattr(mailbox_module.os, "fsync", cut)
    with pytest.raises(MailboxError, match="dropped"):
        Mailbox(flow.source).fetch()
    monkeypatch.setattr(mailbox_module.os, "fsync", real_fsync)
    assert list((root / "staging").iterdir()) == []  # no partial copy
    assert (root / "remote" / "big.x12").stat().st_size == len(big)  # still on the server, for the next pass
    assert Mailbox(flow.source).fetch() == ["big.x12"]
    assert (root / "staging" / "big.x12").read_bytes() == big


def _to_servers(root: Path, sshd: Sshd, **cloud: object) -> Flow:
    """A local drop; the cloud ERP's intake on the SFTP server, its importer moving files to done/."""
    return Flow.model_validate(
        {
            "name": "to-the-cloud",
            "source": {"folder": str(root / "staging"), "pattern": "*", "settle_seconds": 0},
            "entity": {"from": "partner", "partners": {"1234567890": "ACME-DE", "12345678": "ACME-UK"}},
            "legacy": {"intake": str(root / "legacy")},
            "cloud": {
                "intake": sshd.url(root / "remote"),
                "known_hosts": str(sshd.known_hosts),
                "key_file": str(sshd.user_key),
                "seen_in": [str(root / "remote" / "done")],
                **cloud,
            },
            "cutover": {"mode": "dual_write"},
        }
    )


def test_an_sftp_intake_gets_the_file_whole_under_its_own_name(root: Path, sshd: Sshd, corpora: Path) -> None:
    flow = _to_servers(root, sshd)
    shutil.copy(corpora / ORDER, root / "staging" / "850.x12")
    (root / "remote" / "850.x12").write_bytes(b"an earlier file of the same name, not yet imported")
    cutover = Cutover(str(root / "cutover.db"), *ladder([], [flow]))
    try:
        FlowRunner([flow], cutover).pass_once(flow)
        assert sorted(p.name for p in (root / "remote").iterdir()) == ["850.x12", "850_1.x12"]  # never over it
        assert (root / "remote" / "850_1.x12").read_bytes() == (corpora / ORDER).read_bytes()
        assert (root / "legacy" / "850.x12").read_bytes() == (corpora / ORDER).read_bytes()
        [row] = Journey(cutover.store).files(flow.name)
        assert row.state == "delivered"
        assert {d.side: d.target for d in Journey(cutover.store).deliveries(row.id)} == {
            "legacy": "850.x12",
            "cloud": "850_1.x12",
        }
    finally:
        cutover.close()


def test_an_sftp_intake_that_cannot_be_reached_delays_the_file_and_a_crash_is_resumed_on_the_server(
    root: Path, sshd: Sshd, corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused host key: nothing delivered, the file waits in the drop. Then a runner dies after
    naming the cloud's copy and before recording it; the importer moved it to done/ on the server:
    the next runner finds it there and delivers nothing twice."""
    (root / "empty_known_hosts").write_text("")
    refused = _to_servers(root, sshd, known_hosts=str(root / "empty_known_hosts"))
    shutil.copy(corpora / ORDER, root / "staging" / "850.x12")
    cutover = Cutover(str(root / "cutover.db"), *ladder([], [refused]))
    try:
        FlowRunner([refused], cutover).pass_once(refused)
        assert list((root / "remote").iterdir()) == [] and list((root / "legacy").iterdir()) == []
        assert (root / "staging" / "850.x12").exists()  # waits: tried again next pass
        [row] = Journey(cutover.store).files(refused.name)
        assert row.state == "delivering" and "unknown SFTP host" in row.reason

        flow = _to_servers(root, sshd)
        runner = FlowRunner([flow], cutover)

        def dies(self: Journey, file_id: int, sides: object, state: str = "", finished: bool = False) -> None:
            raise KeyboardInterrupt  # the process ends: nothing after it runs

        monkeypatch.setattr(Journey, "delivered", dies)
        with pytest.raises(KeyboardInterrupt):
            runner.pass_once(flow)
        monkeypatch.undo()
        runner.pass_once(flow)  # the dead runner's connection is gone with it
        (root / "remote" / "done").mkdir()
        (root / "remote" / "850.x12").rename(root / "remote" / "done" / "850.x12")  # the importer took it
        with cutover.store.transaction() as cursor:
            cutover.store.execute(cursor, "UPDATE flow_files SET lease_until = 0")
        FlowRunner([flow], cutover).pass_once(flow)
        [row] = Journey(cutover.store).files(flow.name)
        assert row.state == "delivered"
        assert [p.name for p in (root / "remote").iterdir()] == ["done"]  # not sent again
        assert [p.name for p in (root / "legacy").iterdir()] == ["850.x12"]
    finally:
        cutover.close()
