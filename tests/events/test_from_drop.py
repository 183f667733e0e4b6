"""`banyan events from-drop`: files landing in a drop folder, published as CloudEvents to the real NATS
JetStream, once each (by name and content), across restarts; half-written files wait; a broker that
is down loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cli.main import app
from cutover.store import open_store
from tests.events.test_from_table import _stream, nats_stream  # noqa: F401 - the fixture

runner = CliRunner()


def publish(folder: Path, store: str, stream: str, *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            "events",
            "from-drop",
            str(folder),
            "--pattern",
            "ASN_*",
            "--type",
            "com.acme.shipment.advised",
            "--source",
            "/warehouse",
            "--subject",
            f"{stream.lower()}.shipments",
            "--stream",
            stream,
            "--entity",
            "ACME-UK",
            "--settle",
            str(SETTLE),
            "--store",
            store,
            *extra,
        ],
    )


SETTLE = 5  # seconds; the files' ages are set, so a slow machine cannot settle one while the test runs


def land(folder: Path, name: str, text: str, age: float = SETTLE + 5) -> None:
    path = folder / name
    path.write_text(text)
    os.utime(path, (time.time() - age, time.time() - age))  # settled, unless age < SETTLE


def test_each_landed_file_becomes_one_event_across_restarts(tmp_path: Path, nats_stream: str) -> None:  # noqa: F811
    store, drop = str(tmp_path / "cutover.db"), tmp_path / "in"
    drop.mkdir()
    open_store(store).close()
    land(drop, "ASN_1.json", json.dumps({"shipmentId": "S-1", "lines": [{"sku": "SKU-1", "qty": 2}]}))
    land(drop, "ASN_2.x12", "ISA*00*...~ST*856*0001~", age=SETTLE + 10)
    land(drop, "ASN_3.json.part", "{half")  # a writer that renames when done: not yet
    land(drop, "ASN_4.json", "{}", age=0.0)  # still being written: waits for it to settle
    land(drop, "README.txt", "not a shipment")  # not the pattern
    first = publish(drop, store, nats_stream)
    assert first.exit_code == 0 and "published 2 files" in first.output, first.output
    events = asyncio.run(_stream(nats_stream))
    assert [e["subject"] for e in events] == ["ASN_2.x12", "ASN_1.json"]  # oldest first
    assert events[1]["data"]["content"] == {"shipmentId": "S-1", "lines": [{"sku": "SKU-1", "qty": 2}]}
    assert events[0]["data"]["content"].startswith("ISA*00*") and events[0]["legalentity"] == "ACME-UK"
    assert (
        events[1]["data"]["size"] == len((drop / "ASN_1.json").read_bytes()) and len(events[1]["data"]["sha256"]) == 64
    )
    os.utime(drop / "ASN_4.json", (time.time() - SETTLE - 1, time.time() - SETTLE - 1))  # ASN_4 has settled now
    again = publish(drop, store, nats_stream)  # a restart: only what is new
    assert "published 1 files" in again.output
    land(drop, "ASN_1.json", json.dumps({"shipmentId": "S-1", "lines": []}))  # the same name, new content
    assert "published 1 files" in publish(drop, store, nats_stream).output
    assert "published 0 files" in publish(drop, store, nats_stream).output
    ids = [e["id"] for e in asyncio.run(_stream(nats_stream))]
    assert len(ids) == 4 and len(set(ids)) == 4


def test_a_broker_that_is_down_loses_no_file(tmp_path: Path, nats_stream: str) -> None:  # noqa: F811
    store, drop = str(tmp_path / "cutover.db"), tmp_path / "in"
    drop.mkdir()
    open_store(store).close()
    land(drop, "ASN_1.json", "{}")
    down = publish(drop, store, nats_stream, "--broker", "nats://127.0.0.1:1")
    assert down.exit_code == 2 and "cannot reach NATS" in down.output and "Traceback" not in down.output
    assert "published 1 files" in publish(drop, store, nats_stream).output
    missing = publish(tmp_path / "nowhere", store, nats_stream)
    assert missing.exit_code == 2 and "is not a folder" in missing.output
