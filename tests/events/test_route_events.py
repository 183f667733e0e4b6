"""The events routes declare, against the real NATS JetStream and RabbitMQ on this machine: one per
successful write and none for a refused one, recorded with the write and published in order; a
broker that goes away mid-stream loses nothing; a replay publishes a range again under the same
event ids; two gateways on one store publish each event once."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from cli.main import app as cli
from legacy_adapters import memory
from tests.conftest import missing_service
from tests.gateway.conftest import Gateway, free_port, running_gateway

NATS, RABBIT = "nats://127.0.0.1:4222", "amqp://guest:guest@127.0.0.1:5672/"
STREAM = "BANYAN_EVENTS"
ROUTES = """\
routes:
  - name: order-put
    operation: {method: PUT, path: "/v1/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: orderId}
    writes: true
    events:
      - {type: com.acme.order.created, subject: /orderId, data: both}
    legacy: {backend: {backend: memory, system: erp}}
    cloud: {backend: {backend: memory, system: cloud}}
    cutover: {mode: dual_write}
  - name: order-accept
    operation: {method: POST, path: "/v2/{entity}/orders/{orderId}"}
    entity: {from: path, name: entity, values: [ACME-DE]}
    key: {from: path, name: orderId}
    writes: true
    async: true
    events:
      - {type: com.acme.order.accepted, subject: /orderId}
    legacy: {backend: {backend: memory, system: erp}}
"""


async def _nats(action: str) -> list[dict[str, Any]]:
    import nats
    from nats.js.errors import NotFoundError

    connection = await nats.connect(NATS, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        jetstream = connection.jetstream()
        if action == "drop":
            with suppress(NotFoundError):
                await jetstream.delete_stream(STREAM)
            return []
        try:
            info = await jetstream.stream_info(STREAM)
        except NotFoundError:
            return []
        found: list[dict[str, Any]] = []
        if not info.state.messages:  # created by the relay, nothing published yet
            return found
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(STREAM, sequence)
            found.append(
                {
                    "subject": message.subject,
                    "id": (message.headers or {}).get("Nats-Msg-Id"),
                    "event": json.loads(message.data),
                }
            )
        return found
    finally:
        await connection.close()


@pytest.fixture
def nats_events() -> Iterator[None]:
    try:
        asyncio.run(_nats("drop"))
    except Exception as exc:
        missing_service(f"NATS is not reachable on 127.0.0.1:4222 ({type(exc).__name__})")
    memory.forget()
    yield
    asyncio.run(_nats("drop"))
    memory.forget()


def published(count: int, seconds: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = asyncio.run(_nats("read"))
        if len(found) >= count:
            time.sleep(0.3)  # and nothing more comes
            return asyncio.run(_nats("read"))
        assert time.monotonic() < deadline, f"{len(found)} of {count} events published"
        time.sleep(0.1)


def put(gateway: Gateway, order: str, qty: int = 1) -> requests.Response:
    return requests.put(
        f"{gateway.url}/v1/ACME-DE/orders/{order}", json={"qty": qty}, headers=gateway.headers(), timeout=10
    )


def test_one_event_per_successful_write_in_order_and_none_for_a_refusal(nats_events: None, tmp_path: Path) -> None:
    with running_gateway(tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), events_broker=NATS) as gateway:
        assert [put(gateway, f"PO-{n}", n).status_code for n in range(1, 4)] == [200] * 3
        memory.system("erp").refuse = "customer on credit hold"
        assert put(gateway, "PO-9").status_code == 422
        memory.system("erp").refuse = None
        accepted = requests.post(
            f"{gateway.url}/v2/ACME-DE/orders/PO-10", json={"qty": 10}, headers=gateway.headers(), timeout=10
        )
        assert accepted.status_code == 202
        found = published(4)
    assert len(found) == 4  # the refused write has none
    created = [f for f in found if f["subject"] == "events.com.acme.order.created"]
    assert [f["event"]["subject"] for f in created] == ["PO-1", "PO-2", "PO-3"]  # in the order they were made
    first = created[0]["event"]
    assert first["type"] == "com.acme.order.created" and first["source"] == "/banyan/routes/order-put"
    assert first["legalentity"] == "ACME-DE" and first["correlationid"]
    assert first["data"]["request"]["qty"] == 1 and first["data"]["answer"] == {"key": "PO-1", "booked": 1}
    assert created[0]["id"] == first["id"]  # JetStream's message id is the event id
    assert len({f["event"]["id"] for f in found}) == 4
    [made_later] = [f["event"] for f in found if f["subject"] == "events.com.acme.order.accepted"]
    assert made_later["subject"] == "PO-10"  # published once the accepted write was made


class Cut:
    """A TCP relay to a broker that can be cut and restored: the broker goes away and comes back,
    as far as the gateway can tell."""

    def __init__(self, port: int) -> None:
        self.target, self.port = port, free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.restore()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def restore(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def cut(self) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            for writer in self.writers:
                writer.close()
            self.writers.clear()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)


def _metric(gateway: Gateway, name: str) -> float:
    for line in requests.get(f"{gateway.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_broker_gone_mid_stream_loses_nothing(nats_events: None, tmp_path: Path) -> None:
    cut = Cut(4222)
    broker = f"nats://127.0.0.1:{cut.port}"
    with running_gateway(tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), events_broker=broker) as gateway:
        put(gateway, "PO-1")
        published(1)
        cut.cut()
        for n in range(2, 7):
            assert put(gateway, f"PO-{n}").status_code == 200  # the consumers do not notice
        deadline = time.monotonic() + 10
        while _metric(gateway, "banyan_events_broker_down") != 1:
            assert time.monotonic() < deadline, "the relay never said the broker was gone"
            time.sleep(0.1)
        assert _metric(gateway, "banyan_events_backlog") == 5
        cut.restore()
        found = published(6, seconds=45)  # the relay backs off, then takes the backlog up
        assert [f["event"]["subject"] for f in found] == [f"PO-{n}" for n in range(1, 7)]
        assert _metric(gateway, "banyan_events_backlog") == 0


def test_a_replay_publishes_a_range_again_under_the_same_ids(nats_events: None, tmp_path: Path) -> None:
    store = str(tmp_path / "cutover.db")
    with running_gateway(tmp_path, ROUTES, store=store, events_broker=NATS) as gateway:
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
        put(gateway, "PO-1")
        put(gateway, "PO-2")
        first = published(2)
        to = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
        result = CliRunner().invoke(
            cli,
            [
                "events",
                "replay",
                "--type",
                "com.acme.order.created",
                "--since",
                since,
                "--to",
                to,
                "--reason",
                "the warehouse was down",
                "--store",
                store,
            ],
        )
        assert result.exit_code == 0 and "2 events" in result.output, result.output
        again = published(4)
    replayed = again[2:]
    assert [f["event"]["id"] for f in replayed] == [f["event"]["id"] for f in first]  # the same events
    assert all(f["id"].endswith("#replay-1") for f in replayed)  # past JetStream's duplicate window
    seen = {f["event"]["id"] for f in again}  # a consumer deduplicating on the id sees each once
    assert len(seen) == 2
    history = (
        CliRunner()
        .invoke(cli, ["cutover", "history", "--store", store, "--routes", str(tmp_path / "routes"), "--json"])
        .output
    )
    assert '"kind": "events_replay"' in history and "the warehouse was down" in history


def test_two_gateways_on_one_store_publish_each_event_once(nats_events: None, tmp_path: Path) -> None:
    store = str(tmp_path / "cutover.db")
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(running_gateway(tmp_path / name, ROUTES, store=store, events_broker=NATS))
            for name in ("a", "b")
        ]
        for n in range(20):
            assert put(gateways[n % 2], f"PO-{n}").status_code == 200
        found = published(20)
    assert len(found) == 20 and len({f["event"]["id"] for f in found}) == 20


def test_rabbitmq_gets_each_event_confirmed_persistent_and_with_its_id(tmp_path: Path) -> None:
    import aio_pika

    async def bind() -> tuple[Any, Any]:
        connection = await aio_pika.connect(RABBIT, timeout=3)
        channel = await connection.channel()
        exchange = await channel.declare_exchange("banyan.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "com.acme.order.#")
        return connection, queue

    async def take(queue: Any, count: int) -> list[Any]:
        taken = []
        deadline = time.monotonic() + 15
        while len(taken) < count and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            taken.append(message)
        return taken

    loop = asyncio.new_event_loop()
    try:
        connection, queue = loop.run_until_complete(bind())
    except Exception as exc:
        loop.close()
        missing_service(f"RabbitMQ is not reachable on 127.0.0.1:5672 ({type(exc).__name__})")
    memory.forget()
    try:
        with running_gateway(tmp_path, ROUTES, store=str(tmp_path / "cutover.db"), events_broker=RABBIT) as gateway:
            put(gateway, "PO-1")
            put(gateway, "PO-2")
            messages = loop.run_until_complete(take(queue, 2))
    finally:
        loop.run_until_complete(connection.close())
        loop.close()
        memory.forget()
    events = [json.loads(message.body) for message in messages]
    assert [event["subject"] for event in events] == ["PO-1", "PO-2"]
    assert [message.message_id for message in messages] == [event["id"] for event in events]
    assert all(message.routing_key == "com.acme.order.created" for message in messages)
    assert all(message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for message in messages)
    assert messages[0].content_type.startswith("application/cloudevents+json")


def test_events_need_a_write_route_a_store_and_a_known_broker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from gateway.app import Settings, build_app
    from specs.files import RouteError, load_routes

    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "orders.yaml").write_text(ROUTES.replace("    writes: true\n    events:", "    events:", 1))
    with pytest.raises(RouteError, match="only a managed write route publishes events"):
        load_routes(folder)
    (folder / "orders.yaml").write_text(ROUTES.replace("    async: true\n", ""))
    with caplog.at_level(logging.WARNING, logger="banyan.gateway"):
        build_app(Settings(routes=folder, consumers=None))  # served; its events are not made, and it says so
    assert "route order-put declares events: without --store they are not recorded" in caplog.text
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--routes",
            str(folder),
            "--insecure-no-auth",
            "--store",
            str(tmp_path / "c.db"),
            "--events-broker",
            "kafka://user:secret@host:9092",
        ],
    )
    assert result.exit_code == 2 and "nats://host:port or amqp://" in result.output
    assert "secret" not in result.output


def test_the_event_log_is_listed_per_type(nats_events: None, tmp_path: Path) -> None:
    store = str(tmp_path / "cutover.db")
    with running_gateway(tmp_path, ROUTES, store=store) as gateway:  # no broker: the events wait in the store
        put(gateway, "PO-1")
        put(gateway, "PO-2")
    listed = CliRunner().invoke(cli, ["events", "list", "--store", store, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == {"com.acme.order.created": {"pending": 2, "published": 0}}
