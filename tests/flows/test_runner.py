"""A flow's files on each rung, per entity and per partner, on both stores: where each file goes,
what the partner gets back, what is compared, and nothing lost or delivered twice after a crash."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cutover.decide import Side
from cutover.runtime import Cutover
from flows import intakes
from flows import runner as runner_module
from flows.intakes import FolderIntake
from flows.journey import Journey
from flows.runner import FlowRunner
from specs.flows import Flow, ladder
from tests.cutover.conftest import postgres_url, store_location  # noqa: F401 - the fixtures

PARTNER_A, PARTNER_B = "1234567890", "5012345000017"


def x12_order(sender: str, po: str, control: str) -> bytes:
    """An 850 from `sender`, in the shape of the public samples."""
    return (
        f"ISA*00*          *00*          *12*{sender:<15}*08*ACMEUK         *261207*0900*U*00401*"
        f"{control}*0*P*>~GS*PO*{sender}*ACMEUK*20261207*0900*{int(control)}*X*004010~ST*850*0001~"
        f"BEG*00*NE*{po}**20261207~PO1**3*CA*23.52**UP*123456789012~CTT*1~SE*5*0001~"
        f"GE*1*{int(control)}~IEA*1*{control}~"
    ).encode()


def x12_ack(group: int, verdict: str, control: str = "000000900") -> bytes:
    return (
        f"ISA*00*          *00*          *08*ACMEUK         *12*PARTNER        *261207*0905*U*00401*"
        f"{control}*0*P*>~GS*FA*ACMEUK*PARTNER*20261207*0905*9*X*004010~ST*997*0001~AK1*PO*{group}~"
        f"AK9*{verdict}*1*1*1~SE*4*0001~GE*1*9~IEA*1*{control}~"
    ).encode()


@dataclass
class Estate:
    root: Path
    cutover: Cutover
    runner: FlowRunner
    flow: Flow

    def path(self, name: str) -> Path:
        return self.root / name

    def drop(self, name: str, data: bytes) -> Path:
        target = self.path("drop") / name
        target.write_bytes(data)
        return target

    def run(self, passes: int = 2) -> runner_module.Evidence:
        """Passes as the gateway makes them; the first sees a file, the next takes it once settled."""
        seen = runner_module.Evidence()
        for _ in range(passes):
            evidence = self.runner.pass_once(self.flow)
            seen.calls += evidence.calls
            seen.comparisons += evidence.comparisons
        return seen

    def intake(self, side: str) -> list[str]:
        return sorted(p.name for p in self.path(f"{side}/in").iterdir() if not p.name.startswith("."))

    def set(
        self, mode: str, percent: float = 0.0, pins: dict[str, Side] | None = None, entity: str = "ACME-UK"
    ) -> None:
        self.cutover.engine.set(self.flow.name, entity, mode, "test", "ana", percent=percent, pins=pins, force=True)
        self.cutover.reload()


def make_flow(root: Path, **overrides: Any) -> Flow:
    spec: dict[str, Any] = {
        "name": "uk-partner-orders",
        "source": {"folder": str(root / "drop"), "pattern": "*.x12", "settle_seconds": 0},
        "document": "x12",
        "entity": {"from": "partner", "partners": {PARTNER_A: "ACME-UK", PARTNER_B: "ACME-UK"}},
        "key": {"from": "partner"},
        "legacy": {
            "intake": str(root / "legacy/in"),
            "seen_in": [str(root / "legacy/done")],
            "replies": str(root / "legacy/ack"),
        },
        "cloud": {"intake": str(root / "cloud/in"), "replies": str(root / "cloud/ack")},
        "outbound": str(root / "partner/out"),
    }
    spec.update(overrides)
    return Flow.model_validate(spec)


@contextmanager
def _estate(root: Path, location: str) -> Iterator[Estate]:
    for folder in ("drop", "legacy/in", "legacy/done", "legacy/ack", "cloud/in", "cloud/ack", "partner/out"):
        (root / folder).mkdir(parents=True)
    flow = make_flow(root)
    cutover = Cutover(location, *ladder([], [flow]))
    try:
        yield Estate(root, cutover, FlowRunner([flow], cutover), flow)
    finally:
        cutover.close()


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[Estate]:
    """On a SQLite store: what a file becomes does not depend on the store."""
    with _estate(tmp_path, str(tmp_path / "cutover.db")) as made:
        yield made


@pytest.fixture
def on_both(tmp_path: Path, store_location: str) -> Iterator[Estate]:  # noqa: F811
    """On SQLite and on PostgreSQL: where the store's claims, leases and replies decide."""
    with _estate(tmp_path, store_location) as made:
        yield made


def test_on_legacy_a_file_goes_to_legacy_only_and_leaves_the_drop(estate: Estate) -> None:
    estate.drop("po-1.x12", x12_order(PARTNER_A, "PO-1", "000000101"))
    evidence = estate.run()
    assert estate.intake("legacy") == ["po-1.x12"] and estate.intake("cloud") == []
    assert estate.path("legacy/in/po-1.x12").read_bytes() == x12_order(PARTNER_A, "PO-1", "000000101")
    assert list(estate.path("drop").glob("*.x12")) == []  # archived
    [row] = Journey(estate.cutover.store).files("uk-partner-orders")
    assert (row.state, row.entity, row.business_key, row.control) == ("delivered", "ACME-UK", PARTNER_A, "000000101")
    assert [(side, failed) for _, _, _, side, failed in evidence.calls] == [(Side.legacy, False)]


def test_in_dual_write_both_get_it_the_partner_gets_legacys_ack_and_the_acks_are_compared(on_both: Estate) -> None:
    on_both.set("dual_write")
    on_both.drop("po-2.x12", x12_order(PARTNER_A, "PO-2", "000000102"))
    on_both.run()
    assert on_both.intake("legacy") == ["po-2.x12"] and on_both.intake("cloud") == ["po-2.x12"]
    # each ERP acknowledges group 102; the cloud's with its own control numbers, the same verdict
    on_both.path("legacy/ack/ack-1.x12").write_bytes(x12_ack(102, "A", "000000501"))
    on_both.path("cloud/ack/997-xyz.x12").write_bytes(x12_ack(102, "A", "000000777"))
    os.utime(on_both.path("legacy/ack/ack-1.x12"), (time.time() - 5, time.time() - 5))
    os.utime(on_both.path("cloud/ack/997-xyz.x12"), (time.time() - 5, time.time() - 5))
    evidence = on_both.run()
    assert sorted(p.name for p in on_both.path("partner/out").iterdir()) == ["ack-1.x12"]  # legacy serves: one ack
    [(flow, entity, rung, differences)] = evidence.comparisons
    assert (flow, entity, rung, differences) == ("uk-partner-orders", "ACME-UK", "ACME-UK@1", [])
    assert on_both.run().comparisons == []  # compared once


def test_a_rejection_by_one_side_is_a_difference(estate: Estate) -> None:
    estate.set("dual_write")
    estate.drop("po-3.x12", x12_order(PARTNER_A, "PO-3", "000000103"))
    estate.run()
    for side, verdict in (("legacy", "A"), ("cloud", "R")):
        path = estate.path(f"{side}/ack/{side}.x12")
        path.write_bytes(x12_ack(103, verdict))
        os.utime(path, (time.time() - 5, time.time() - 5))
    [(_, _, _, [difference])] = estate.run().comparisons
    assert (difference.path, difference.legacy, difference.cloud) == ("/ST/*/AK9/01", "A", "R")


def test_canary_moves_one_partner_and_the_partner_hears_from_its_serving_side(on_both: Estate) -> None:
    on_both.set("canary", percent=1, pins={PARTNER_B: Side.cloud, PARTNER_A: Side.legacy})
    on_both.drop("from-a.x12", x12_order(PARTNER_A, "PO-A", "000000201"))
    on_both.drop("from-b.x12", x12_order(PARTNER_B, "PO-B", "000000202"))
    on_both.run()
    assert on_both.intake("legacy") == ["from-a.x12", "from-b.x12"] == on_both.intake("cloud")
    for side in ("legacy", "cloud"):  # both ERPs acknowledge both partners' files
        for group in (201, 202):
            path = on_both.path(f"{side}/ack/{side}-{group}.x12")
            path.write_bytes(x12_ack(group, "A"))
            os.utime(path, (time.time() - 5, time.time() - 5))
    on_both.run()
    # partner A hears from legacy, partner B from the cloud: one ack each
    assert sorted(p.name for p in on_both.path("partner/out").iterdir()) == ["cloud-202.x12", "legacy-201.x12"]
    rows = {row.business_key: row for row in Journey(on_both.cutover.store).files("uk-partner-orders")}
    assert '"serve": "legacy"' in (rows[PARTNER_A].serving or "") and '"serve": "cloud"' in (
        rows[PARTNER_B].serving or ""
    )


def x12_855(po: str, quantity: int, control: str) -> bytes:
    """A purchase order acknowledgement: it names the 850 by its PO number only (BAK03)."""
    return (
        f"ISA*00*          *00*          *08*ACMEUK         *12*PARTNER        *261207*0910*U*00401*"
        f"{control}*0*P*>~GS*PR*ACMEUK*PARTNER*20261207*0910*{int(control)}*X*004010~ST*855*0001~"
        f"BAK*00*AC*{po}*20261207~PO1*1*{quantity}*CA*23.52**UP*123456789012~ACK*IA*{quantity}*CA~"
        f"SE*5*0001~GE*1*{int(control)}~IEA*1*{control}~"
    ).encode()


def _reply(estate: Estate, side: str, name: str, data: bytes) -> None:
    path = estate.path(f"{side}/ack/{name}")
    path.write_bytes(data)
    os.utime(path, (time.time() - 5, time.time() - 5))


def test_each_kind_of_answer_is_compared_with_its_twin_and_the_partner_gets_one_of_each(on_both: Estate) -> None:
    """The key is the partner, so an 855 is matched by the PO number the file carries; a 997 and an
    855 from each side are two comparisons; the cloud's 855 confirms a different quantity."""
    on_both.set("dual_write")
    on_both.drop("po-4.x12", x12_order(PARTNER_A, "PO-4", "000000104"))
    on_both.run()
    _reply(on_both, "legacy", "997-1.x12", x12_ack(104, "A", "000000601"))
    _reply(on_both, "cloud", "997-c1.x12", x12_ack(104, "A", "000000701"))
    _reply(on_both, "legacy", "855-1.x12", x12_855("PO-4", 3, "000000602"))
    _reply(on_both, "cloud", "855-c1.x12", x12_855("PO-4", 2, "000000702"))
    evidence = on_both.run()
    assert sorted(p.name for p in on_both.path("partner/out").iterdir()) == ["855-1.x12", "997-1.x12"]  # legacy's
    found = sorted((len(differences), [d.path for d in differences]) for _, _, _, differences in evidence.comparisons)
    assert found == [(0, []), (2, ["/ST/*/ACK/*/02", "/ST/*/PO1/*/02"])]
    journey = Journey(on_both.cutover.store)
    [row] = journey.files("uk-partner-orders")
    assert row.numbers == "PO-4"
    [described] = [journey.described(row)]
    assert {side["side"]: sorted(r["kind"] for r in side["replies"]) for side in described["sides"]} == {
        "legacy": ["855", "997"],
        "cloud": ["855", "997"],
    }
    # the cloud corrects its 855: compared again, and it is the cloud's, so the partner still gets nothing more
    _reply(on_both, "cloud", "855-c2.x12", x12_855("PO-4", 3, "000000703"))
    [(_, _, _, differences)] = on_both.run().comparisons
    assert differences == []
    assert len(list(on_both.path("partner/out").iterdir())) == 2


@pytest.mark.parametrize(("mode", "legacy", "cloud"), [("cloud_primary", 1, 1), ("cloud", 0, 1)])
def test_the_top_rungs(estate: Estate, mode: str, legacy: int, cloud: int) -> None:
    estate.set(mode)
    estate.drop("po-9.x12", x12_order(PARTNER_A, "PO-9", "000000109"))
    estate.run()
    assert (len(estate.intake("legacy")), len(estate.intake("cloud"))) == (legacy, cloud)


def test_shadow_sends_the_cloud_only_to_its_checking_intake(tmp_path: Path) -> None:
    for folder in ("drop", "legacy/in", "cloud/in", "cloud/check"):
        (tmp_path / folder).mkdir(parents=True)
    flow = make_flow(
        tmp_path, cloud={"intake": str(tmp_path / "cloud/in"), "validate": str(tmp_path / "cloud/check")}, outbound=None
    )
    cutover = Cutover(str(tmp_path / "cutover.db"), *ladder([], [flow]))
    try:
        cutover.engine.set(flow.name, "ACME-UK", "shadow", "listen", "ana")
        cutover.reload()
        estate = Estate(tmp_path, cutover, FlowRunner([flow], cutover), flow)
        estate.drop("po-5.x12", x12_order(PARTNER_A, "PO-5", "000000105"))
        estate.run()
        assert estate.intake("legacy") == ["po-5.x12"] and estate.intake("cloud") == []
        assert [p.name for p in (tmp_path / "cloud/check").iterdir()] == ["po-5.x12"]
    finally:
        cutover.close()


def test_a_resent_file_is_delivered_once(estate: Estate) -> None:
    estate.set("dual_write")
    data = x12_order(PARTNER_A, "PO-6", "000000106")
    estate.drop("po-6.x12", data)
    estate.run()
    estate.drop("po-6-again.x12", data)  # the partner sends it again under another name
    estate.run()
    assert estate.intake("legacy") == ["po-6.x12"] and estate.intake("cloud") == ["po-6.x12"]
    states = sorted(row.state for row in Journey(estate.cutover.store).files("uk-partner-orders"))
    assert states == ["delivered", "duplicate"]
    assert list(estate.path("drop").glob("*.x12")) == []


def test_what_no_side_may_take_goes_to_the_error_folder_with_its_reason(estate: Estate) -> None:
    estate.drop("stranger.x12", x12_order("9999999999", "PO-7", "000000107"))
    estate.drop("empty.x12", b"")
    estate.drop("half.x12", x12_order(PARTNER_A, "PO-8", "000000108")[:150])
    estate.drop("-rf.x12", x12_order(PARTNER_A, "PO-9", "000000110"))
    estate.drop("new\nline.x12", x12_order(PARTNER_A, "PO-10", "000000111"))
    outside = estate.root / "secret.x12"
    outside.write_bytes(x12_order(PARTNER_A, "PO-11", "000000112"))
    (estate.path("drop") / "link.x12").symlink_to(outside)
    estate.drop("writing.x12.part", b"ISA*")  # a temporary name: left alone
    estate.run()
    assert estate.intake("legacy") == [] and estate.intake("cloud") == []
    error = estate.path("drop/.banyan/error")
    reasons = {p.name.split("-", 1)[1]: p.read_text() for p in error.glob("*.reason.txt")}
    assert "no legal entity for it (partner '9999999999'" in reasons["stranger.x12.reason.txt"]
    assert "empty" in reasons["empty.x12.reason.txt"]
    assert "cut short" in reasons["half.x12.reason.txt"]
    assert "starts with a dash" in reasons["_rf.x12.reason.txt"]
    assert "control characters" in reasons["new_line.x12.reason.txt"]
    assert "symbolic link" in reasons["link.x12.reason.txt"]
    assert outside.exists()  # the link was moved aside, what it points to untouched
    assert [p.name for p in estate.path("drop").iterdir() if p.is_file()] == ["writing.x12.part"]


class _Died(BaseException):
    """The runner's process ending mid-delivery (SIGKILL has no handler; nothing after it runs)."""


def _restart(estate: Estate) -> Estate:
    """A new runner on the same store, after the dead one's lease ran out."""
    runner = FlowRunner([estate.flow], estate.cutover)
    return Estate(estate.root, estate.cutover, runner, estate.flow)


def _expire_leases(estate: Estate) -> None:
    with estate.cutover.store.transaction() as cursor:
        estate.cutover.store.execute(cursor, "UPDATE flow_files SET lease_until = 0")


def test_a_runner_that_dies_before_the_rename_is_resumed_and_delivers_once(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    estate.set("dual_write")
    real_name = FolderIntake.name
    calls = {"n": 0}

    def dies_on_the_cloud(self: FolderIntake, staged: str, name: str) -> str:
        calls["n"] += 1
        if calls["n"] == 2:  # legacy was given its copy; the cloud's is copied and intended, not renamed
            raise _Died
        return real_name(self, staged, name)

    monkeypatch.setattr(FolderIntake, "name", dies_on_the_cloud)
    estate.drop("po-12.x12", x12_order(PARTNER_A, "PO-12", "000000113"))
    with pytest.raises(_Died):
        estate.run()
    assert estate.intake("cloud") == [] and estate.intake("legacy") == ["po-12.x12"]
    monkeypatch.setattr(FolderIntake, "name", real_name)
    assert estate.run().calls == []  # the lease is the dead runner's: nobody touches the file yet
    _expire_leases(estate)
    _restart(estate).run()
    assert estate.intake("legacy") == ["po-12.x12"] and estate.intake("cloud") == ["po-12.x12"]
    [row] = Journey(estate.cutover.store).files("uk-partner-orders")
    assert row.state == "delivered"
    assert not list(estate.path("cloud/in").glob(".banyan-*"))  # no temporary copy left behind


@pytest.mark.parametrize("importer", ["moved it to done", "took it without a trace"])
def test_a_runner_that_dies_after_the_rename_finds_the_file_or_says_it_is_in_doubt(
    on_both: Estate, monkeypatch: pytest.MonkeyPatch, importer: str
) -> None:
    real_delivered = Journey.delivered

    def dies_before_recording(
        self: Journey, file_id: int, sides: object, state: str = "", finished: bool = False
    ) -> None:
        raise _Died

    monkeypatch.setattr(Journey, "delivered", dies_before_recording)
    on_both.drop("po-13.x12", x12_order(PARTNER_A, "PO-13", "000000114"))
    with pytest.raises(_Died):
        on_both.run()
    monkeypatch.setattr(Journey, "delivered", real_delivered)
    delivered = on_both.path("legacy/in/po-13.x12")
    if importer == "moved it to done":
        delivered.rename(on_both.path("legacy/done/po-13.x12"))
    else:
        delivered.unlink()
    _expire_leases(on_both)
    _restart(on_both).run()
    [row] = Journey(on_both.cutover.store).files("uk-partner-orders")
    if importer == "moved it to done":
        assert row.state == "delivered" and on_both.intake("legacy") == []  # never sent again
    else:
        assert row.state == "in_doubt" and "unknown" in row.reason
        assert on_both.intake("legacy") == []  # never re-sent blindly
        assert list(on_both.path("drop/.banyan/error").glob("*po-13.x12"))  # kept for the person who decides


@pytest.mark.parametrize("importer", ["left it", "moved it to done"])
def test_a_runner_that_dies_between_the_link_and_removing_its_temporary_copy_delivers_once(
    on_both: Estate, monkeypatch: pytest.MonkeyPatch, importer: str
) -> None:
    on_both.set("dual_write")
    real_unlink = Path.unlink

    def dies_on_the_temporary(self: Path, missing_ok: bool = False) -> None:
        if self.name.startswith(".banyan-") and self.parent.name == "in":
            raise _Died  # named, the temporary copy still there
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", dies_on_the_temporary)
    on_both.drop("po-14.x12", x12_order(PARTNER_A, "PO-14", "000000115"))
    with pytest.raises(_Died):
        on_both.run()
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert on_both.intake("legacy") == ["po-14.x12"] and list(on_both.path("legacy/in").glob(".banyan-*"))
    if importer == "moved it to done":
        on_both.path("legacy/in/po-14.x12").rename(on_both.path("legacy/done/po-14.x12"))
    _expire_leases(on_both)
    _restart(on_both).run()
    [row] = Journey(on_both.cutover.store).files("uk-partner-orders")
    assert row.state == "delivered"
    assert on_both.intake("legacy") == ([] if importer == "moved it to done" else ["po-14.x12"])  # never twice
    assert on_both.intake("cloud") == ["po-14.x12"]
    assert not list(on_both.path("legacy/in").glob(".banyan-*"))


def test_two_runners_on_one_store_take_each_file_once(on_both: Estate) -> None:
    on_both.set("dual_write")
    other = FlowRunner([on_both.flow], on_both.cutover)
    for n in range(20):
        on_both.drop(f"po-{n:02d}.x12", x12_order(PARTNER_A, f"PO-{n}", f"{300 + n:09d}"))
    for _ in range(3):
        on_both.runner.pass_once(on_both.flow)
        other.pass_once(on_both.flow)
    assert len(on_both.intake("legacy")) == 20 == len(on_both.intake("cloud"))
    assert {row.state for row in Journey(on_both.cutover.store).files("uk-partner-orders", limit=100)} == {"delivered"}


def test_a_runner_that_loses_its_lease_mid_copy_stops_and_leaves_no_half_file(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    estate.set("dual_write")
    lines = "".join(f"PO1**{n % 9 + 1}*CA*23.52**UP*{n:012d}~" for n in range(80_000))  # about 3 MB: 3 chunks
    data = x12_order(PARTNER_A, "PO-BIG", "000000115").replace(b"PO1**3*CA*23.52**UP*123456789012~", lines.encode())
    estate.drop("big.x12", data)
    monkeypatch.setattr(intakes, "LEASE_CHECK_SECONDS", 0.0)  # renew after every chunk
    monkeypatch.setattr(Journey, "renew", lambda self, file_id, until, now=None: False)  # ... and find it gone
    estate.run()
    assert estate.intake("legacy") == [] and list(estate.path("legacy/in").iterdir()) == []  # no half file
    assert (estate.path("drop") / "big.x12").exists()
    monkeypatch.undo()
    _expire_leases(estate)
    _restart(estate).run()
    assert estate.path("legacy/in/big.x12").read_bytes() == data == estate.path("cloud/in/big.x12").read_bytes()


def test_a_large_file_cut_short_is_refused_and_a_whole_one_is_read_from_its_head(estate: Estate) -> None:
    lines = "".join(f"PO1**{n % 9 + 1}*CA*23.52**UP*{n:012d}~" for n in range(60_000))
    data = x12_order(PARTNER_A, "PO-LONG", "000000116").replace(b"PO1**3*CA*23.52**UP*123456789012~", lines.encode())
    estate.drop("whole.x12", data)
    estate.drop("cut.x12", data[: len(data) - 60].replace(b"000000116", b"000000117"))  # the transfer dropped
    estate.run()
    assert estate.intake("legacy") == ["whole.x12"]
    [reason] = estate.path("drop/.banyan/error").glob("*cut.x12.reason.txt")
    assert "cut short" in reason.read_text()


def test_a_flows_slos_measure_the_serving_sides_first_answer_and_what_it_took(tmp_path: Path) -> None:
    with _estate(tmp_path, str(tmp_path / "cutover.db")) as estate:
        flow = make_flow(
            tmp_path,
            slo=[
                {"name": "ack-in-15-min", "kind": "latency", "objective": 99, "threshold": 900},
                {"name": "booked", "kind": "success", "objective": 99.5},
            ],
        )
        runner = FlowRunner([flow], estate.cutover)
        estate.set("dual_write")
        estate.drop("po-5.x12", x12_order(PARTNER_A, "PO-5", "000000105"))
        taken = runner.pass_once(flow)
        assert [(name, good) for _, _, name, good, _ in taken.slos] == [("booked", True)]
        _reply(estate, "cloud", "997-c.x12", x12_ack(105, "A", "000000751"))  # the cloud's: not the serving side
        _reply(estate, "legacy", "997-l.x12", x12_ack(105, "A", "000000651"))
        _reply(estate, "legacy", "855-l.x12", x12_855("PO-5", 3, "000000652"))  # a second answer: not timed again
        answered = runner.pass_once(flow)
        [(_, entity, name, good, seconds)] = answered.slos
        assert (entity, name, good) == ("ACME-UK", "ack-in-15-min", True) and seconds is not None and seconds < 900
        answered.count(estate.cutover)
        estate.cutover.flush()
    with pytest.raises(ValueError, match="latency or success"):
        make_flow(
            tmp_path, slo=[{"name": "fresh", "kind": "freshness", "objective": 99, "threshold": 5, "field": "/at"}]
        )


def test_a_reply_read_by_a_runner_that_stopped_before_forwarding_it_still_reaches_the_partner(
    on_both: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_both.set("dual_write")
    on_both.drop("po-6.x12", x12_order(PARTNER_A, "PO-6", "000000106"))
    on_both.run()
    _reply(on_both, "legacy", "997-6.x12", x12_ack(106, "A", "000000661"))
    _reply(on_both, "cloud", "997-c6.x12", x12_ack(106, "A", "000000761"))

    def dies(*args: object) -> None:
        raise _Died

    monkeypatch.setattr(FlowRunner, "_forward", dies)
    with pytest.raises(_Died):
        on_both.run()
    monkeypatch.undo()
    assert list(on_both.path("partner/out").iterdir()) == []
    runner = _restart(on_both).runner
    runner.pass_once(on_both.flow)
    assert list(on_both.path("partner/out").iterdir()) == []  # within the grace: maybe another runner's
    monkeypatch.setattr(runner_module, "FORWARD_GRACE", -1.0)
    runner.pass_once(on_both.flow)
    runner.pass_once(on_both.flow)
    assert sorted(p.name for p in on_both.path("partner/out").iterdir()) == ["997-6.x12"]  # legacy's, once


def test_an_xml_partner_is_told_by_a_pointer_mapped_to_its_entity(tmp_path: Path, corpora: Path) -> None:
    for folder in ("drop", "legacy/in", "cloud/in"):
        (tmp_path / folder).mkdir(parents=True)
    flow = make_flow(
        tmp_path,
        source={"folder": str(tmp_path / "drop"), "pattern": "*.xml", "settle_seconds": 0},
        document="xml",
        entity={
            "from": "document",
            "pointer": "/cXML/Header/From/Credential/Identity",
            "partners": {"inbound@prominate-platform.com": "ACME-DE"},
        },
        key={"from": "document", "pointer": "/cXML/Request/OrderRequest/OrderRequestHeader/@orderID"},
        cutover={"mode": "dual_write"},
        outbound=None,
    )
    cutover = Cutover(str(tmp_path / "cutover.db"), *ladder([], [flow]))
    try:
        sample = corpora / "filedrop/cxml/OrderRequest_from-cxml-php_OrderRequest.xml"
        (tmp_path / "drop" / "order.xml").write_bytes(sample.read_bytes())
        FlowRunner([flow], cutover).pass_once(flow)
        [row] = Journey(cutover.store).files(flow.name)
        assert (row.state, row.entity, row.business_key, row.document) == ("delivered", "ACME-DE", "DO1234", "xml")
        assert (tmp_path / "cloud/in/order.xml").read_bytes() == sample.read_bytes()
    finally:
        cutover.close()
