"""The loop that publishes a legacy table's rows and moves the source's mark only after the broker
has acknowledged what lies before it."""

from __future__ import annotations

import asyncio
import logging

from cutover.store import Store
from events.brokers import JetStream
from events.table import TableSource

log = logging.getLogger("banyan.events")


async def drain(source: TableSource, broker: JetStream, subject: str, store: Store, batch: int = 500) -> int:
    """Publish every row past the source's mark, a batch at a time; returns how many were published.
    The mark moves on only once the broker has acknowledged the batch."""
    published = 0
    while True:
        after = await asyncio.to_thread(store.event_mark, source.key)
        events = await asyncio.to_thread(source.read, after, batch)
        if not events:
            return published
        for event in events:
            await broker.publish(subject, event.id, event.body, event.headers)
        await asyncio.to_thread(store.set_event_mark, source.key, events[-1].mark)
        published += len(events)
        log.info("published %d events from %s (mark %d)", len(events), source.key, events[-1].mark)
