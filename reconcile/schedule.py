"""Reconciliations that run by themselves: at each due time (cron, in the schedule's zone), for each
entity, one gateway of the fleet claims the run in the store and makes it in a process of its own
(`banyan reconcile run`), so a long run never holds the gateway's loop and a crash of it is only
that run's. A run that drifted more than `alert_drift` is posted to the webhook.

The scheduler only looks forward: a due time missed while no gateway ran is not made up (the next
one comes), and a run that failed says so in `reconcile status` like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

from cutover.store import Store, now_iso
from cutover.webhook import post as post_webhook
from specs.reconciliations import Reconciliation

log = logging.getLogger("banyan.reconcile")
POLL_SECONDS = 15.0
GRACE = timedelta(minutes=10)  # a due time this recent is still made when the scheduler comes by


def due(spec: Reconciliation, now: datetime) -> datetime | None:
    """The newest due time at or before `now`, if it is recent enough to be made now."""
    assert spec.schedule is not None
    zone = ZoneInfo(spec.schedule.timezone)
    moment = now.astimezone(zone)
    previous: datetime = croniter(spec.schedule.cron, moment + timedelta(seconds=1)).get_prev(datetime)
    return previous if moment - previous <= GRACE else None


class Scheduler:
    def __init__(
        self, specs: list[Reconciliation], store: Store, store_location: str, routes: Path, webhook: str | None
    ) -> None:
        self.specs, self.store, self.location, self.routes, self.webhook = specs, store, store_location, routes, webhook

    def claim(self, name: str, entity: str, when: datetime) -> bool:
        """This gateway makes the run of `when`: the first to write it does."""
        with self.store.transaction() as cursor:
            row = self.store.execute(
                cursor,
                "INSERT INTO recon_schedule (name, entity, due, claimed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, entity, due) DO NOTHING RETURNING name",
                (name, entity, when.isoformat(), now_iso()),
            ).fetchone()
        return row is not None

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # the store away: said, and tried again
                log.error("reconcile schedule: %s", exc)
            await asyncio.sleep(POLL_SECONDS)

    async def pass_once(self, now: datetime | None = None) -> list[dict[str, object]]:
        """Make every run due now that no other gateway claimed; what each run reported."""
        made = []
        moment = now or datetime.now(ZoneInfo("UTC"))
        for spec in self.specs:
            if spec.schedule is None:
                continue
            when = due(spec, moment)
            if when is None:
                continue
            for entity in spec.entities:
                if await asyncio.to_thread(self.claim, spec.name, entity, when):
                    made.append(await self.make(spec, entity))
        return made

    async def make(self, spec: Reconciliation, entity: str) -> dict[str, object]:
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "reconcile",
            "run",
            spec.name,
            "--entity",
            entity,
            "--store",
            self.location,
            "--routes",
            str(self.routes),
            "--json",
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        try:
            report: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            said = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            log.error("reconcile %s for %s: the run did not report: %s", spec.name, entity, said[0][:300])
            return {"name": spec.name, "entity": entity, "state": "failed"}
        counts = report.get("counts") or {}
        drift = float(counts.get("drift_rate", 0.0)) if isinstance(counts, dict) else 0.0
        alert = spec.schedule.alert_drift if spec.schedule else None
        if report.get("state") == "failed":
            log.warning(
                "reconcile %s for %s: run %s failed: %s", spec.name, entity, report.get("id"), report.get("reason")
            )
        if self.webhook and alert is not None and (drift > alert or report.get("state") == "failed"):
            payload = {
                "event": "reconcile_drift" if report.get("state") == "done" else "reconcile_failed",
                "reconciliation": spec.name,
                "entity": entity,
                "run": report.get("id"),
                "drift_rate": drift,
                "threshold": alert,
                "reason": report.get("reason", ""),
                "owner": spec.owner.shown() if spec.owner is not None else None,
            }
            await asyncio.to_thread(post_webhook, self.webhook, payload, "reconcile")
        return report
