"""Publishing events to NATS JetStream, and the loop that moves a source's mark only after the
broker has acknowledged what lies before it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cutover.store import Store
from events.table import Event, TableSource

log = logging.getLogger("banyan.events")
CONNECT_SECONDS = 3.0


class BrokerError(RuntimeError):
    """The broker cannot be reached or did not acknowledge; nothing past the last mark is lost."""


class JetStream:
    """A JetStream stream to publish into; created when it does not exist yet."""

    def __init__(self, url: str, stream: str, subject: str) -> None:
        self.url, self.stream, self.subject = url, stream, subject
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
                nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False,
                             error_cb=quiet),
                CONNECT_SECONDS,
            )  # fmt: skip
            self._jetstream = self._connection.jetstream()
            try:
                await self._jetstream.stream_info(self.stream)
            except NotFoundError:
                await self._jetstream.add_stream(name=self.stream, subjects=[self.subject])
        except BrokerError:
            raise
        except TimeoutError:
            raise BrokerError(f"cannot reach NATS at {self.url} within {CONNECT_SECONDS:g} s") from None
        except Exception as exc:  # nats raises its own kinds for every way a connection fails
            raise BrokerError(f"cannot reach NATS at {self.url}: {type(exc).__name__} {exc}".strip()) from None

    async def publish(self, event: Event) -> None:
        try:
            # the message id is the event id: JetStream drops a repeat inside its duplicate window
            await self._jetstream.publish(self.subject, event.body, timeout=5,
                                          headers={**event.headers, "Nats-Msg-Id": event.id})  # fmt: skip
        except Exception as exc:
            raise BrokerError(f"NATS did not acknowledge event {event.id}: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def drain(source: TableSource, broker: JetStream, store: Store, batch: int = 500) -> int:
    """Publish every row past the source's mark, a batch at a time; returns how many were published.
    The mark moves on only once the broker has acknowledged the batch."""
    published = 0
    while True:
        after = await asyncio.to_thread(store.event_mark, source.key)
        events = await asyncio.to_thread(source.read, after, batch)
        if not events:
            return published
        for event in events:
            await broker.publish(event)
        await asyncio.to_thread(store.set_event_mark, source.key, events[-1].mark)
        published += len(events)
        log.info("published %d events from %s (mark %d)", len(events), source.key, events[-1].mark)
