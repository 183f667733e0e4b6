"""The brokers events are published to: NATS JetStream (nats-py) and RabbitMQ (aio-pika).

Both take a structured CloudEvent with a message id (the event's id, or a replay's) and return
only once the broker has it: JetStream's publish acknowledgement, RabbitMQ's publisher confirm.
`open_broker` picks one from a URL: `nats://…` or `amqp://…`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("banyan.events")
CONNECT_SECONDS = 3.0
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class BrokerError(RuntimeError):
    """The broker cannot be reached or did not acknowledge; what it did not take is not lost."""


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Broker(Protocol):
    async def open(self) -> None: ...

    async def publish(self, subject: str, message_id: str, body: bytes, headers: dict[str, str]) -> None: ...

    async def close(self) -> None: ...


class JetStream:
    """A JetStream stream to publish into; created with `subjects` when it does not exist yet."""

    def __init__(self, url: str, stream: str, subjects: list[str]) -> None:
        self.url, self.stream, self.subjects = url, stream, subjects
        self._connection: Any = None
        self._jetstream: Any = None

    async def open(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        async def quiet(error: Exception) -> None:  # nats-py prints each failed attempt's traceback otherwise
            log.debug("NATS: %s", error)

        try:
            # nats-py keeps retrying a first connection that is refused: the wait is bounded here
            self._connection = await asyncio.wait_for(
                nats.connect(
                    self.url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False, error_cb=quiet
                ),
                CONNECT_SECONDS,
            )
            self._jetstream = self._connection.jetstream()
            try:
                await self._jetstream.stream_info(self.stream)
            except NotFoundError:
                await self._jetstream.add_stream(name=self.stream, subjects=self.subjects)
        except TimeoutError:
            raise BrokerError(f"cannot reach NATS at {shown(self.url)} within {CONNECT_SECONDS:g} s") from None
        except Exception as exc:  # nats raises its own kinds for every way a connection fails
            raise BrokerError(f"cannot reach NATS at {shown(self.url)}: {type(exc).__name__} {exc}".strip()) from None

    async def publish(self, subject: str, message_id: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            # the message id deduplicates: JetStream drops a repeat inside its duplicate window
            await self._jetstream.publish(subject, body, timeout=5, headers={**headers, "Nats-Msg-Id": message_id})
        except Exception as exc:
            raise BrokerError(f"NATS did not acknowledge event {message_id}: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                await connection.close()
            except Exception as exc:  # a connection the broker already dropped
                log.debug("NATS close: %s", exc)


class RabbitMQ:
    """A durable topic exchange; the routing key is the subject (the event type), messages are
    persistent, and each publish waits for the broker's confirm. Bind a queue to the exchange
    before events flow: like any topic exchange, it drops what no queue is bound for."""

    def __init__(self, url: str, exchange: str = "banyan.events") -> None:
        self.url, self.exchange = url, exchange
        self._connection: Any = None
        self._exchange: Any = None

    async def open(self) -> None:
        import aio_pika

        try:
            self._connection = await asyncio.wait_for(aio_pika.connect(self.url, timeout=2), CONNECT_SECONDS)
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        except TimeoutError:
            raise BrokerError(f"cannot reach RabbitMQ at {shown(self.url)} within {CONNECT_SECONDS:g} s") from None
        except Exception as exc:
            raise BrokerError(f"cannot reach RabbitMQ at {shown(self.url)}: {type(exc).__name__}") from None

    async def publish(self, subject: str, message_id: str, body: bytes, headers: dict[str, str]) -> None:
        import aio_pika

        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers),
        )
        try:
            await self._exchange.publish(message, routing_key=subject, timeout=5)
        except Exception as exc:
            raise BrokerError(f"RabbitMQ did not confirm event {message_id}: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                await connection.close()
            except Exception as exc:
                log.debug("RabbitMQ close: %s", exc)


NATS_STREAM, NATS_PREFIX = "BANYAN_EVENTS", "events."  # the routes' events: subjects events.<type>


def open_broker(url: str) -> Broker:
    """The broker a URL names; a `ValueError` for any other scheme."""
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        return JetStream(url, NATS_STREAM, [f"{NATS_PREFIX}>"])
    if scheme in ("amqp", "amqps"):
        return RabbitMQ(url)
    raise ValueError(f"an events broker is nats://host:port or amqp://user:password@host:port/, not {shown(url)!r}")


def subject_of(broker: Broker, event_type: str) -> str:
    """Where an event of `event_type` goes: `events.<type>` on NATS, routing key `<type>` on RabbitMQ."""
    return f"{NATS_PREFIX}{event_type}" if isinstance(broker, JetStream) else event_type
