"""The file drop's reply: an acknowledgement is the answer, a negative one is the legacy system's refusal."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from legacy_adapters import BackendRejected, Call, FileDropConfig, create


def importer(inbound: Path, acks: Path, stop: threading.Event) -> None:
    """A legacy importer: books known customers, answers the rest with a negative acknowledgement."""
    while not stop.wait(0.02):
        for path in inbound.glob("*.json"):
            order = json.loads(path.read_text())
            correlation = path.stem.rsplit("_", 1)[-1]
            answer = (
                {"orderId": "SO-1"}
                if order["customer"] == "C-1"
                else {"error": f"unknown customer {order['customer']}"}
            )
            (acks / f".{correlation}.part").write_text(json.dumps(answer))
            (acks / f".{correlation}.part").replace(acks / f"{correlation}.ack")
            path.unlink()


@pytest.mark.parametrize("reject", ["/error", None])
def test_a_negative_acknowledgement_is_a_refusal(tmp_path: Path, reject: str | None) -> None:
    inbound, acks = tmp_path / "in", tmp_path / "ack"
    inbound.mkdir()
    acks.mkdir()
    config = FileDropConfig(folder=str(inbound), reply_folder=str(acks), reject=reject, timeout=5)
    stop = threading.Event()
    thread = threading.Thread(target=importer, args=(inbound, acks, stop), daemon=True)
    thread.start()

    async def scenario() -> tuple[object, object]:
        backend = create(config)
        try:
            booked = await backend.call(Call(route="r", payload={"customer": "C-1"}, correlation_id="ok-1"))
            try:
                refused: object = await backend.call(
                    Call(route="r", payload={"customer": "C-9"}, correlation_id="no-1")
                )
            except BackendRejected as exc:
                refused = exc
            return booked.body, refused
        finally:
            await backend.close()

    try:
        booked, refused = asyncio.run(scenario())
    finally:
        stop.set()
        thread.join(5)
    assert booked == {"orderId": "SO-1"}
    if reject is None:  # without the setting, the reply is passed on as it is
        assert getattr(refused, "body", None) == {"error": "unknown customer C-9"}
    else:
        assert isinstance(refused, BackendRejected) and "refused the file: unknown customer C-9" in str(refused)
