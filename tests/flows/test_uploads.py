"""A side that takes files over HTTP: one Idempotency-Key per file and side, and each answer
classified as a backend's is: made, sent again later, refused, or in doubt (never re-sent blindly)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cutover.runtime import Cutover
from flows.journey import Journey
from flows.runner import FlowRunner
from specs.flows import Flow, ladder
from tests.flows.test_runner import PARTNER_A, make_flow, x12_order


@dataclass
class CloudApi:
    """The cloud ERP's EDI endpoint: answers from `script` in turn (then 201), and what it got."""

    script: list[int | str] = field(default_factory=list)  # a status, or "hang" (longer than the timeout)
    received: list[tuple[str, str, bytes]] = field(default_factory=list)  # key, content type, body
    booked: set[str] = field(default_factory=set)
    tokens: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def api() -> Iterator[CloudApi]:
    state = CloudApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers.get("Idempotency-Key", "")
            state.received.append((key, self.headers.get("Content-Type", ""), body))
            state.tokens.append(self.headers.get("Authorization", ""))
            step = state.script.pop(0) if state.script else 201
            if step == "hang":
                state.booked.add(key)  # booked, and the answer never comes in time
                time.sleep(1.5)
                return
            status = int(step)
            if status == 201:
                state.booked.add(key)
            answer = {"status": "booked", "order": f"SO-{len(state.booked)}"} if status == 201 else {"error": "no"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/edi/inbound"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Setup:
    root: Path
    flow: Flow
    cutover: Cutover

    def run(self, passes: int = 2) -> None:
        runner = FlowRunner([self.flow], self.cutover)
        for _ in range(passes):
            runner.pass_once(self.flow)

    def row(self) -> Any:
        [row] = Journey(self.cutover.store).files(self.flow.name)
        return row

    def expire(self) -> None:
        with self.cutover.store.transaction() as cursor:
            self.cutover.store.execute(cursor, "UPDATE flow_files SET lease_until = 0")


def _setup(root: Path, api: CloudApi, **upload: Any) -> Iterator[Setup]:
    for folder in ("drop", "legacy/in", "legacy/ack", "partner/out"):
        (root / folder).mkdir(parents=True)
    flow = make_flow(
        root, cloud={"upload": {"url": api.url, "timeout_seconds": 0.5, **upload}}, cutover={"mode": "dual_write"}
    )
    cutover = Cutover(str(root / "cutover.db"), *ladder([], [flow]))
    try:
        yield Setup(root, flow, cutover)
    finally:
        cutover.close()


@pytest.fixture
def setup(tmp_path: Path, api: CloudApi) -> Iterator[Setup]:
    yield from _setup(tmp_path, api)


@pytest.fixture
def idempotent(tmp_path: Path, api: CloudApi) -> Iterator[Setup]:
    yield from _setup(tmp_path, api, idempotent=True)


def _drop(setup: Setup, po: str = "PO-1", control: str = "000000901") -> bytes:
    data = x12_order(PARTNER_A, po, control)
    (setup.root / "drop" / f"{po}.x12").write_bytes(data)
    return data


def test_a_file_is_posted_whole_with_its_media_type_and_the_answer_kept(setup: Setup, api: CloudApi) -> None:
    data = _drop(setup)
    setup.run()
    [(key, media, body)] = api.received
    assert body == data and media == "application/EDI-X12" and key.startswith("banyan-uk-partner-orders-")
    row = setup.row()
    assert row.state == "delivered" and (setup.root / "legacy/in/PO-1.x12").exists()
    [answer] = Journey(setup.cutover.store).answers(row.id)
    assert (answer.side, answer.kind, answer.reply["status"]) == ("cloud", "upload", "booked")


def test_a_throttled_upload_is_sent_again_later_with_the_same_key(setup: Setup, api: CloudApi) -> None:
    api.script = [429]
    _drop(setup)
    setup.run(passes=1)
    assert setup.row().state == "delivering" and "429" in setup.row().reason
    assert (setup.root / "drop" / "PO-1.x12").exists()  # not archived: the cloud has not got it
    setup.run()
    assert setup.row().state == "delivered"
    first, again = (key for key, _, _ in api.received)
    assert first == again
    assert len(api.booked) == 1 and sorted(p.name for p in (setup.root / "legacy/in").iterdir()) == ["PO-1.x12"]


def test_a_refusal_by_the_mirror_is_evidence_and_the_file_stays_legacys(setup: Setup, api: CloudApi) -> None:
    api.script = [422]
    _drop(setup)
    setup.run()
    row = setup.row()
    assert row.state == "delivered"  # legacy serves in dual_write: it booked it
    states = {d.side: d.state for d in Journey(setup.cutover.store).deliveries(row.id)}
    assert states == {"legacy": "delivered", "cloud": "refused"}
    assert len(api.received) == 1  # a refusal is not retried


def test_an_upload_without_an_answer_is_in_doubt_unless_the_endpoint_is_idempotent(setup: Setup, api: CloudApi) -> None:
    api.script = ["hang"]
    _drop(setup)
    setup.run(passes=3)
    row = setup.row()
    assert row.state == "in_doubt" and "unknown" in row.reason
    assert len(api.received) == 1  # never re-sent blindly
    assert list((setup.root / "drop/.banyan/error").glob("*PO-1.x12"))  # kept for the person who decides


def test_an_idempotent_endpoint_gets_the_same_key_again_after_no_answer(idempotent: Setup, api: CloudApi) -> None:
    api.script = ["hang"]
    _drop(idempotent)
    idempotent.run(passes=1)
    assert idempotent.row().state == "delivering"
    idempotent.run()
    assert idempotent.row().state == "delivered"
    keys = {key for key, _, _ in api.received}
    assert len(api.received) == 2 and len(keys) == 1  # the endpoint sees one intent, twice


def test_a_runner_that_dies_awaiting_the_answer_leaves_the_upload_in_doubt(
    setup: Setup, api: CloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.runner as runner_module

    def dies(*args: object) -> None:
        raise KeyboardInterrupt  # the process ends while the request is out

    monkeypatch.setattr(runner_module, "send", dies)
    _drop(setup)
    with pytest.raises(KeyboardInterrupt):
        setup.run()
    monkeypatch.undo()
    setup.expire()
    setup.run()
    row = setup.row()
    assert row.state == "in_doubt" and api.received == []


def test_an_upload_url_with_credentials_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token_env"):
        make_flow(tmp_path, cloud={"upload": {"url": "https://user:secret@erp.example/edi"}})
    with pytest.raises(ValueError, match="exactly one"):
        make_flow(tmp_path, cloud={"intake": str(tmp_path), "upload": {"url": "https://erp.example/edi"}})


def test_the_token_is_sent_and_never_kept(
    tmp_path: Path, api: CloudApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CLOUD_EDI_TOKEN", "tok-PLANTED-SECRET-42")
    for setup in _setup(tmp_path, api, token_env="CLOUD_EDI_TOKEN"):
        api.script = [503]
        _drop(setup)
        setup.run(passes=1)
        assert api.tokens == ["Bearer tok-PLANTED-SECRET-42"]
        described = json.dumps(Journey(setup.cutover.store).described(setup.row()))
        assert "503" in described and "PLANTED" not in described and "PLANTED" not in caplog.text
