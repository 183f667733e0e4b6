"""The ladder at run time, inside each gateway: rules in memory, evidence out, background work.

Each gateway keeps the rules in memory so a decision costs no I/O; a listener thread reloads them
when the store signals a change (LISTEN/NOTIFY on PostgreSQL, a generation check on SQLite). Call
counts, errors and comparisons gather in memory and are flushed to the store once a second, and a
tick applies due schedules and guardrails, expires change requests and tells the approvers of new
ones, recovers outbox intents left without an outcome, prunes and repairs the outbox. Writes on the
request path go through the group commit (`commits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from cutover import slos
from cutover.changes import Changes
from cutover.commits import GroupCommit
from cutover.compare import Difference
from cutover.decide import Mode, Rule, Side, serving, starting
from cutover.engine import NOISE_WINDOW_MINUTES, Engine, RouteInfo
from cutover.gates import Counters
from cutover.outbox import Outbox
from cutover.slos import Objective
from cutover.store import Store, StoreError, minute, open_store

log = logging.getLogger("banyan.cutover")

FLUSH_SECONDS = 1.0
TICK_SECONDS = 5.0
RECHECK_SECONDS = 5.0  # after a rule change, or a side last seen behind: ask the outbox before serving a key
T = TypeVar("T")
SAMPLES_PER_FLUSH = 10  # new samples per route × entity per flush: the first of each path
DifferencesByRoute = dict[tuple[str, str], tuple[dict[tuple[str, str], int], list[tuple[str, str, Any, Any]]]]


@dataclass
class Taken:
    counters: dict[tuple[str, str, str], Counters]
    differences: DifferencesByRoute
    noise: dict[tuple[str, str], tuple[int, dict[str, int]]]
    deprecated: dict[tuple[str, str], int] = field(default_factory=dict)  # (route, consumer) → calls
    slo: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)  # (route, entity, slo) → good, total


class Cutover:
    """The gateway's view of the ladder: a rule cache, an evidence buffer and the background work."""

    def __init__(
        self,
        location: str,
        routes: list[RouteInfo],
        entities: list[str] | None,
        webhook: str | None = None,
        in_doubt_after: float = 60.0,
    ) -> None:
        self.in_doubt_after = in_doubt_after  # an intent this old without an outcome is in doubt
        self.store: Store = open_store(location)
        self.engine = Engine(self.store, routes, entities, webhook)
        self.outbox = Outbox(self.store)
        self.commits = GroupCommit(self.store)
        self.rules: dict[tuple[str, str], Rule] = {}
        self.paused: frozenset[tuple[str, str]] = frozenset()
        self.pending: dict[tuple[str, str, str], Counters] = {}
        self.differences: DifferencesByRoute = {}
        self.noise: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
        self.deprecated: dict[tuple[str, str], int] = {}
        self.slo: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.webhook = webhook
        self.noise_paths: dict[str, frozenset[str]] = {}  # per route: fields learnt to be noise
        self.learning = frozenset(info.name for info in routes if info.learns_noise)  # until the store says
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.listeners: list[Callable[[], None]] = []  # called (in the listener thread) on every change
        # write ownership: when this process learnt of each rule's last change, how far each side is
        # behind (refreshed every second), and when each side was last seen behind
        self.changed: dict[tuple[str, str], float] = {}
        self.behind: dict[tuple[str, str, str], tuple[int, float]] = {}
        self.seen_behind: dict[tuple[str, str, str], float] = {}
        self.started = time.monotonic()
        self.record_settings(routes)
        self.reload()
        self.refresh_backlog()

    def use_routes(self, routes: list[RouteInfo], entities: list[str] | None) -> None:
        self.engine.routes = {info.name: info for info in routes}
        self.engine.entities = entities
        self.record_settings(routes)

    def record_settings(self, routes: list[RouteInfo]) -> None:
        """Put the gates and guardrails this gateway runs in the store: the CLI and every console judge
        with them, not with whatever their own environment makes of the route files."""
        source = f"the gateway on {socket.gethostname()} (pid {os.getpid()})"
        self.store.put_settings({info.name: (info.gate, info.guardrail) for info in routes}, source)
        self.engine.settings_from = dict.fromkeys(self.engine.routes, source)

    # -- rules ----------------------------------------------------------------------------------
    def reload(self) -> None:
        rules = {(rule.route, rule.entity): rule for rule in self.store.rules()}
        learnt = time.monotonic()
        for (route, entity), rule in rules.items():
            info = self.engine.routes.get(route)
            known = self.rule(route, entity, info.default if info is not None else Mode.legacy)
            # a change that moves no key to another side hands nothing over: no need to ask the outbox
            if serving(known) != serving(rule):
                self.changed[(route, entity)] = learnt
        for gone in self.rules.keys() - rules.keys():  # its entity falls back to the route's rule
            self.changed[gone] = learnt
        self.rules = rules  # one swap
        self.paused = frozenset(self.engine.paused_copies())  # the guardrail's change rings like a rule's

    def copies_paused(self, route: str, entity: str) -> bool:
        """Does the guardrail hold the cloud's copies of route × entity (the outbox keeps them)?"""
        return (route, entity) in self.paused

    # -- write ownership --------------------------------------------------------------------------
    def refresh_backlog(self) -> None:
        """Read how far each side is behind on its copies: for `may_owe`, the status and /metrics."""
        behind = self.outbox.backlog()
        seen = time.monotonic()
        for key in behind:
            self.seen_behind[key] = seen
        self.behind = behind

    def may_owe(self, routes: Sequence[str], entity: str | None, side: Side) -> bool:
        """Whether `side` may still be owed writes of some key of `routes` for `entity`, so that the
        key's outbox must be asked before the side serves it. No, without asking the store, when no
        write was owed to the side at the last few refreshes and no rule of the routes changed lately:
        a write is owed only to a side that is not serving its key, and what a side serves changes
        only with a rule (RECHECK_SECONDS covers the rule reaching every gateway, and the refresh)."""
        now, owner = time.monotonic(), entity or "*"
        if now - self.started < RECHECK_SECONDS:  # what changed just before this process began is unknown
            return True
        for route in routes:
            if now - self.seen_behind.get((route, owner, side.value), -RECHECK_SECONDS) < RECHECK_SECONDS:
                return True
            for which in (owner, "*"):
                if now - self.changed.get((route, which), -RECHECK_SECONDS) < RECHECK_SECONDS:
                    return True
        return False

    def rule(self, route: str, entity: str | None, start: Mode) -> Rule:
        """The rule for `entity` on `route`: its own, the route's `*`, or the route file's `start` rung."""
        rules = self.rules
        found = rules.get((route, entity or "*")) or rules.get((route, "*"))
        return found if found is not None else starting(route, entity or "*", start)

    # -- evidence -------------------------------------------------------------------------------
    def _counters(self, route: str, entity: str | None, rung: str) -> Counters:
        key = (route, entity or "*", rung)
        counters = self.pending.get(key)
        if counters is None:
            counters = self.pending[key] = Counters()
        return counters

    def called(self, route: str, entity: str | None, rung: str, side: Side, failed: bool) -> None:
        """Count one call to a side, made on `rung` (evidence belongs to the rung it was gathered on)."""
        counters = self._counters(route, entity, rung)
        if side is Side.cloud:
            counters.calls_cloud += 1
            counters.errors_cloud += failed
        else:
            counters.calls_legacy += 1
            counters.errors_legacy += failed

    def compared(self, route: str, entity: str | None, rung: str, differences: Sequence[Difference]) -> bool:
        """Count one comparison; a difference only on fields learnt to be noise is not a mismatch.
        Returns whether it counted as a mismatch. Every field is still counted, so learning goes on."""
        noisy = self.noise_paths.get(route, frozenset())
        learning = route in self.learning  # a difference may be noise: counted, learnt from, not judged
        mismatched = not learning and any(difference.path not in noisy for difference in differences)
        counters = self._counters(route, entity, rung)
        counters.comparisons += 1
        counters.unjudged += learning
        counters.mismatches += mismatched
        if differences:
            by_path = self.differences.setdefault((route, entity or "*"), ({}, []))
            for difference in differences:
                key = (difference.path, difference.kind.value)
                if key not in by_path[0] and len(by_path[1]) < SAMPLES_PER_FLUSH:
                    by_path[1].append((difference.path, difference.kind.value, difference.legacy, difference.cloud))
                by_path[0][key] = by_path[0].get(key, 0) + 1
        return mismatched

    def refresh_noise(self) -> None:
        """Learn again which fields are noise: legacy differs on them from itself as often as the cloud."""
        since = minute() - NOISE_WINDOW_MINUTES + 1
        learnt = {}
        for route in self.engine.routes:
            paths = {
                row["path"]
                for row in self.store.differences(route, None, since, limit=200)
                if row["verdict"] == "noise"
            }
            if paths:
                learnt[route] = frozenset(paths)
        self.noise_paths = learnt  # one swap
        self.learning = frozenset(route for route in self.engine.routes if self.engine.learning(route))

    def used_deprecated(self, route: str, consumer: str) -> None:
        """Count a consumer's call to a deprecated version; the store adds up every gateway's."""
        self.deprecated[(route, consumer)] = self.deprecated.get((route, consumer), 0) + 1

    def measured(self, route: str, entity: str | None, slo: str, good: bool) -> None:
        """Count one event of a route's SLO; the store adds up every gateway's, per minute."""
        key = (route, entity or "*", slo)
        done, total = self.slo.get(key, (0, 0))
        self.slo[key] = (done + good, total + 1)

    @property
    def objectives(self) -> list[Objective]:
        return [objective for info in self.engine.routes.values() for objective in info.slos]

    def noised(self, route: str, entity: str | None, differences: Sequence[Difference]) -> None:
        """Count one comparison of legacy with itself, and the fields that differed on their own."""
        calls, paths = self.noise.setdefault((route, entity or "*"), (0, {}))
        for path in {difference.path for difference in differences}:
            paths[path] = paths.get(path, 0) + 1
        self.noise[(route, entity or "*")] = (calls + 1, paths)

    def take(self) -> Taken:
        """What was gathered since the last take; call it on the thread that counts."""
        taken = Taken(self.pending, self.differences, self.noise, self.deprecated, self.slo)
        self.pending, self.differences, self.noise, self.deprecated, self.slo = {}, {}, {}, {}, {}
        return taken

    def write(self, taken: Taken) -> None:
        with self.store.transaction() as cursor:
            self.write_in(cursor, taken)

    def write_in(self, cursor: Any, taken: Taken) -> None:
        """What was taken, added to the store's minute counts: one transaction for all of it."""
        now, store = minute(), self.store
        for (route, entity, rung), counters in taken.counters.items():
            store.add_evidence_in(cursor, route, entity, rung, now, counters)
        for (route, entity), (counts, samples) in taken.differences.items():
            store.add_differences_in(cursor, route, entity, now, counts, samples)
        for (route, entity), (calls, paths) in taken.noise.items():
            store.add_noise_in(cursor, route, entity, now, calls, paths)
        if taken.deprecated:
            store.add_deprecated_calls_in(cursor, taken.deprecated)
        slos.add_in(store, cursor, taken.slo, now)

    def flush(self) -> None:
        self.write(self.take())

    # -- background work ------------------------------------------------------------------------
    def _on_change(self) -> None:
        try:
            self.reload()
        except StoreError as exc:
            log.error("cutover rules not reloaded, the previous rules keep serving: %s", exc)
        for listener in self.listeners:
            try:
                listener()
            except StoreError as exc:
                log.error("a change in the store was not taken up: %s", exc)

    def start_listening(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.store.listen(self._on_change, self._stop)
                except Exception as exc:  # the store went away: keep the rules, retry
                    log.error("cutover change listener lost the store, retrying: %s", exc)
                    self._stop.wait(1)
                    self._on_change()

        self._listener = threading.Thread(target=run, name="cutover-listener", daemon=True)
        self._listener.start()

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(2)
        self.commits.close()
        with contextlib.suppress(Exception):
            self.flush()
        self.store.close()


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))


async def run_background(cutover: Cutover) -> None:
    """Flush evidence every second; every tick apply schedules and guardrails, learn noise, and keep
    the outbox (recover, prune, repair). A store that is down costs a log line, never the serving."""
    ticks = 0
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        ticks += 1
        try:
            # taken here, where calls are counted; one transaction through the writer thread, which
            # takes turns with the request path's writes instead of contending for the lock
            await cutover.commits.background(cutover.write_in, cutover.take())
            await in_thread(cutover.refresh_backlog)
            await in_thread(cutover.store.checkpoint)
            if cutover.learning or ticks % round(TICK_SECONDS / FLUSH_SECONDS) == 0:
                await in_thread(cutover.refresh_noise)  # every second while a route is learning its noise
            if ticks % round(TICK_SECONDS / FLUSH_SECONDS) == 0:
                for line in await in_thread(cutover.engine.tick):
                    log.warning("cutover: %s", line)
                changes = Changes(cutover.engine)
                for line in [*await in_thread(changes.expire), *await in_thread(changes.tell, cutover.webhook)]:
                    log.warning("cutover: %s", line)
                doubtful = await in_thread(cutover.outbox.recover, cutover.in_doubt_after)
                if doubtful:
                    log.warning("outbox: %d writes left without an outcome are now in doubt", doubtful)
                await in_thread(cutover.outbox.prune)
                for line in await in_thread(slos.alert, cutover.store, cutover.objectives, cutover.webhook):
                    log.warning("slo: %s", line)
                if ticks % 720 == 0:  # hourly
                    await in_thread(slos.prune, cutover.store)
                if await in_thread(cutover.outbox.repair_heads):
                    log.warning("outbox: repaired the queue heads of some business keys")
        except Exception as exc:  # the store is down: keep serving on the rules in memory
            log.error("cutover evidence or tick failed: %s", exc)
