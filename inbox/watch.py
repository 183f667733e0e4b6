"""The inbox kept current while the gateway runs: synced with the store every few seconds (in the
process that runs the flows), each owner told of its tier-1 exceptions, and the counts the
metrics show.

An owner with a `webhook` gets a POST when a tier-1 exception of theirs opens, and again each
time it waits longer than their `respond_minutes`; one gateway of the fleet sends each (the
store marks it sent with a compare-and-set). A webhook that fails is tried at the next sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any

from cutover.runtime import in_thread
from cutover.store import Store, StoreError
from inbox.collect import collect
from inbox.store import Inbox
from specs.files import RouteFile

log = logging.getLogger("banyan.inbox")
INTERVAL = 15.0
MOST_SECONDS = 60.0  # the longest wait between two syncs, however long the last one took


class Watch:
    def __init__(self, store: Store, folder: RouteFile, interval: float = INTERVAL) -> None:
        self.store, self.folder, self.interval = store, folder, interval
        self.counts: list[tuple[str, str, str, int, float]] = []  # (kind, entity, owner, open, oldest created)
        self.counted = 0.0  # when they were read (monotonic)
        self.fresh_until = 0.0  # the admin API shows these counts until the next sync is due
        self.shown: set[tuple[str, str, str]] = set()  # the gauges set at the last scrape

    async def run(self) -> None:
        """A sync every `interval` seconds, or ten times as long as the last one took if longer (a
        large inbox costs the gateway's process a tenth of its time), but at least once a minute."""
        while True:
            started = time.monotonic()
            try:
                await in_thread(self.once)
            except StoreError as exc:  # the store is away: the inbox waits for it, the gateway serves on
                log.warning("exception inbox: %s", exc)
            pause = min(max(self.interval, 10 * (time.monotonic() - started)), MOST_SECONDS)
            self.fresh_until = time.time() + pause + self.interval
            await asyncio.sleep(pause)

    def once(self, now: float | None = None) -> None:
        collect(self.store, self.folder)
        inbox = Inbox(self.store)
        read = time.monotonic()
        counts = inbox.counts()
        if read >= self.counted:  # a sync that read earlier and ended later keeps the newer counts
            self.counts, self.counted = counts, read
        self.alert(inbox, now)

    def alert(self, inbox: Inbox, now: float | None = None) -> int:
        """Post each due tier-1 exception to its owner's webhook, once for the fleet."""
        moment = time.time() if now is None else now
        owners = {}
        for owned in self.folder.owned().values():
            if owned.owner is not None and owned.owner.webhook:
                owners[owned.owner.team] = owned.owner
        for owner in self.folder.owners.values():
            if owner.webhook:
                owners.setdefault(owner.team, owner)
        sent = 0
        for item, before in inbox.due_alerts({team: owner.respond_minutes for team, owner in owners.items()}, moment):
            owner = owners[item.owner]
            why = "opened" if before == 0 else f"waiting longer than {owner.respond_minutes} minutes"
            if not inbox.alerted(item, before, moment):
                continue  # another gateway sent it
            assert owner.webhook is not None
            if _post(owner.webhook, {"exception": item.as_dict(), "owner": owner.shown(), "why": why}):
                sent += 1
            else:
                inbox.alerted(item, moment, before)  # not told: try again at the next sync
        return sent


def _post(url: str, payload: dict[str, Any]) -> bool:
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return bool(200 <= reply.status < 300)
    except (OSError, ValueError) as exc:
        log.warning("exception inbox: the webhook of an owner failed: %s", type(exc).__name__)
        return False
