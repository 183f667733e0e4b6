"""The loop that publishes a legacy table's rows and moves the source's mark only after the broker
has acknowledged what lies before it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from cutover.store import Store
from events.brokers import JetStream
from events.drop import DropSource, forget_gone, mark_seen, seen
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


async def drain_drop(source: DropSource, broker: JetStream, subject: str, store: Store, batch: int = 500) -> int:
    """Publish every settled file of the drop not published yet; returns how many. A file is kept as
    published only once the broker has acknowledged it."""
    published = 0
    while True:
        known = await asyncio.to_thread(seen, store, source.key)
        landed = await asyncio.to_thread(source.landed, known, batch)
        if not landed:
            break
        for item in landed:
            await broker.publish(subject, item.event.id, item.event.body, item.event.headers)
        await asyncio.to_thread(mark_seen, store, source.key, landed)
        published += len(landed)
        log.info("published %d files of %s", len(landed), source.key)
    present = {path.name for path in source.folder.iterdir()}
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="milliseconds")
    await asyncio.to_thread(forget_gone, store, source.key, present, day_ago)
    return published
