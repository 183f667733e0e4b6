"""The relay: publishes the events the routes recorded, in the order they were recorded, and marks
each published once the broker has it.

Every gateway with an events broker runs one; the store's lease lets one of them publish at a time
for the whole fleet, so the events of one subject reach the broker in order. A broker that is down
loses nothing: the relay says so (log line, `banyan_events_broker_down`), backs off, and takes up
the backlog where the broker's last acknowledgement left it. A crash between the broker's
acknowledgement and the mark publishes an event again with the same id (at least once):
JetStream drops the repeat inside its duplicate window, a consumer deduplicating on the id drops
it after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from events.brokers import CONTENT_TYPE, Broker, BrokerError, open_broker, subject_of
from events.log import EventLog, Recorded

log = logging.getLogger("banyan.events")

BATCH = 100  # events read and published at a time
POLL_SECONDS = 0.5  # how often a relay looks for events other gateways recorded
BACKOFF_CAP = 30.0


async def _pause(ready: asyncio.Event, seconds: float) -> None:
    ready.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), seconds)


# given an event, start its publish span (a tracing gateway's) and return what ends it, with an error or None
Traced = Callable[[Recorded], Callable[[str | None], None]]


async def _publish(
    broker: Broker, batch: list[Recorded], event_log: EventLog, published: Callable[[str], None], traced: Traced | None
) -> None:
    """Publish `batch` in order; mark what the broker took, even when a later event fails."""
    done: list[Recorded] = []
    try:
        for event in batch:
            end = traced(event) if traced is not None else None
            try:
                await broker.publish(
                    subject_of(broker, event.type), event.message_id, event.body, {"Content-Type": CONTENT_TYPE}
                )
            except BaseException as exc:
                if end is not None:
                    end(type(exc).__name__)
                raise
            if end is not None:
                end(None)
            done.append(event)
    finally:
        if done:
            await asyncio.to_thread(event_log.published, [event.id for event in done])
            for event in done:
                published(event.type)


async def relay(
    event_log: EventLog,
    url: str,
    owner: str,
    ready: asyncio.Event,
    published: Callable[[str], None],
    down: Callable[[bool], None],
    traced: Traced | None = None,
) -> None:
    """Publish what the store holds for as long as the gateway runs (cancel it to stop)."""
    broker: Broker | None = None
    backoff = 1.0
    try:
        while True:
            try:
                if not await asyncio.to_thread(event_log.lead, owner):
                    await _pause(ready, 1.0)  # another gateway publishes; take over if its lease runs out
                    continue
                batch = await asyncio.to_thread(event_log.pending, BATCH)
                if not batch:
                    await _pause(ready, POLL_SECONDS)
                    continue
                if broker is None:
                    broker = open_broker(url)
                    await broker.open()
                    down(False)
                await _publish(broker, batch, event_log, published, traced)
                backoff = 1.0
            except BrokerError as exc:
                down(True)
                log.warning("events wait in the store, trying the broker again in %.0f s: %s", backoff, exc)
                if broker is not None:
                    await broker.close()
                    broker = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
            except Exception as exc:  # the store is down: keep serving, try again
                log.error("event relay paused: %s", exc)
                await asyncio.sleep(1)
    finally:
        if broker is not None:
            await broker.close()
