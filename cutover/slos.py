"""Business SLOs per route and legal entity: good and total events per minute in the shared store,
error-budget burn over the SRE workbook's windows, and one alert per fast burn for the fleet.

Each gateway counts what its calls say (an order booked within its threshold, an invoice posted, a
stock figure fresh enough) and flushes the counts with its evidence, once a second; every gateway's
add up here. The burn rate of a window is its error rate over the error budget (1 − objective):
1 spends the budget exactly over the SLO's window. Alerting follows "The Site Reliability
Workbook", chapter 5, multiple windows: a fast burn is over 14.4 in the last hour *and* the last
5 minutes (2 % of a 30-day budget in an hour, still going on), a slow burn over 6 in the last 6
hours and the last 30 minutes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from cutover.store import Store, minute, now_iso
from cutover.webhook import post as post_webhook

log = logging.getLogger("banyan.cutover")

FAST, SLOW = 14.4, 6.0  # burn rates that page (fast) and open a ticket (slow)
WINDOWS = {"5m": 5, "30m": 30, "1h": 60, "6h": 360}  # minutes
KEEP_DAYS = 35  # minute counts kept: the longest SLO window, and some


@dataclass(frozen=True)
class Objective:
    """What a route promises: `objective` percent of good events over `days`."""

    route: str
    name: str
    kind: str
    objective: float  # percent
    days: int
    owner: str = ""  # the team that answers for the route, named in its alerts

    @property
    def budget(self) -> float:
        return 1 - self.objective / 100


@dataclass(frozen=True)
class Standing:
    """Where one SLO of one entity stands now."""

    route: str
    entity: str
    slo: str
    kind: str
    objective: float
    days: int
    good: int
    total: int
    sli: float | None  # percent good over the SLO's window; None without events
    budget_left: float | None  # share of the error budget not spent, over the window (may go below 0)
    burn: dict[str, float | None]  # window → burn rate
    alert: str  # "", "slow" or "fast"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_in(store: Store, cursor: Any, counts: dict[tuple[str, str, str], tuple[int, int]], at: int) -> None:
    """Add (good, total) per (route, entity, slo) for minute `at`."""
    for (route, entity, slo), (good, total) in counts.items():
        store.execute(
            cursor,
            "INSERT INTO cutover_slo_minutes (route, entity, slo, minute, good, total) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (route, entity, slo, minute) DO UPDATE SET good = cutover_slo_minutes.good + excluded.good, "
            "total = cutover_slo_minutes.total + excluded.total",
            (route, entity, slo, at, good, total),
        )


def add(store: Store, counts: dict[tuple[str, str, str], tuple[int, int]], at: int | None = None) -> None:
    if counts:
        with store.transaction() as cursor:
            add_in(store, cursor, counts, minute() if at is None else at)


def _burn(good: int, total: int, budget: float) -> float | None:
    return None if total == 0 else ((total - good) / total) / budget


def standings(store: Store, objectives: list[Objective], now: float | None = None) -> list[Standing]:
    """Every (route, entity, SLO) with events in its window, worst burn first."""
    current = minute(time.time() if now is None else now)
    longest = max((o.days for o in objectives), default=0) * 24 * 60
    with store.reading() as cursor:
        rows = store.execute(
            cursor,
            "SELECT route, entity, slo, minute, good, total FROM cutover_slo_minutes WHERE minute > ?",
            (current - longest,),
        ).fetchall()
    by_key: dict[tuple[str, str, str], list[tuple[int, int, int]]] = {}
    for route, entity, slo, at, good, total in rows:
        by_key.setdefault((route, entity, slo), []).append((int(at), int(good), int(total)))
    known = {(o.route, o.name): o for o in objectives}
    found = []
    for (route, entity, slo), minutes in by_key.items():
        objective = known.get((route, slo))
        if objective is None:
            continue  # an SLO no route declares any more

        def summed(span: int, minutes: list[tuple[int, int, int]] = minutes) -> tuple[int, int]:
            chosen = [(good, total) for at, good, total in minutes if at > current - span]
            return sum(g for g, _ in chosen), sum(t for _, t in chosen)

        good, total = summed(objective.days * 24 * 60)
        burn = {name: _burn(*summed(span), objective.budget) for name, span in WINDOWS.items()}
        fast = all((burn[w] or 0) > FAST for w in ("1h", "5m"))
        slow = all((burn[w] or 0) > SLOW for w in ("6h", "30m"))
        spent = (total - good) / (total * objective.budget) if total else None
        found.append(
            Standing(
                route,
                entity,
                slo,
                objective.kind,
                objective.objective,
                objective.days,
                good,
                total,
                100 * good / total if total else None,
                None if spent is None else 1 - spent,
                burn,
                "fast" if fast else "slow" if slow else "",
            )
        )
    return sorted(found, key=lambda s: (-(s.burn["1h"] or 0), s.route, s.entity, s.slo))


def alert(store: Store, objectives: list[Objective], webhook: str | None, now: float | None = None) -> list[str]:
    """Call the webhook once per fast burn, for the whole fleet: the store remembers which burns were
    told (a row per burning SLO), so every gateway's tick can look and only one tells. A burn that
    stops is forgotten, so the next one is told again. Returns what was told, for the log."""
    told = []
    burning = {(s.route, s.entity, s.slo): s for s in standings(store, objectives, now) if s.alert == "fast"}
    with store.transaction() as cursor:
        known = {tuple(row) for row in store.execute(cursor, "SELECT route, entity, slo FROM cutover_slo_alerts")}
        for key in known - set(burning):
            store.execute(cursor, "DELETE FROM cutover_slo_alerts WHERE route = ? AND entity = ? AND slo = ?", key)
        fresh = []
        for key, standing in burning.items():
            inserted = store.execute(
                cursor,
                "INSERT INTO cutover_slo_alerts (route, entity, slo, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (route, entity, slo) DO NOTHING",
                (*key, now_iso()),
            ).rowcount
            if inserted:
                fresh.append(standing)
    owners = {(objective.route, objective.name): objective.owner for objective in objectives}
    for standing in fresh:  # after the commit: another gateway that looks now sees it told
        told.append(
            f"fast burn of {standing.slo} on {standing.route}/{standing.entity}: "
            f"{standing.burn['1h']:.1f}× over the last hour"
        )
        if webhook:
            owner = owners.get((standing.route, standing.slo)) or None
            _call(webhook, {"event": "slo_fast_burn", **standing.as_dict(), "owner": owner})
    return told


def _call(url: str, payload: dict[str, Any]) -> None:
    post_webhook(url, payload, "SLO")


def prune(store: Store, now: float | None = None) -> None:
    with store.transaction() as cursor:
        store.execute(
            cursor,
            "DELETE FROM cutover_slo_minutes WHERE minute < ?",
            (minute(time.time() if now is None else now) - KEEP_DAYS * 24 * 60,),
        )
