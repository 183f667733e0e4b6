"""Prometheus metrics: requests, latency, backend errors, breaker state and the cutover per route and entity.

A gateway of several processes (`--workers N`, or the deliverer beside the workers) counts as one:
each process writes its values to files in one folder (prometheus_client's multiprocess mode), and
a scrape of /metrics on any worker adds up every process's, the deliverer's deliveries included.
Gauges say how they add up (`multiprocess_mode`); a process that is gone leaves its counts in the
sums, and its live gauges are taken out by the supervisor (`process_gone`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

__all__ = ["OPENMETRICS", "Metrics", "process_gone"]

FLOW_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 14400, 86400)  # seconds: an ack within minutes, a batch a day
SLO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


_PID = [os.getpid()]  # this process's id, kept: os.getpid() is a system call
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _share(folder: str) -> None:
    """Every metric made from now on in this process writes its values to `folder`. prometheus_client
    reads its environment variable when it is imported, which the gateway's modules have done by the
    time a process builds its app: the value class it would have chosen is set here in the same way.
    It asks for the process id on every update, to notice a fork; that system call was a tenth of a
    passthrough call's time, so it is given the id kept above, which a fork updates."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue(lambda: _PID[0])  # type: ignore[no-untyped-call]


def process_gone(folder: str, pid: int) -> None:
    """A process of the gateway has stopped: its live gauges (calls in flight, breakers it had open)
    leave the sums. Its counters stay in them: a count never goes back."""
    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


class _Fleet:
    """The collector a shared scrape reads: every process's values added up, with this process's
    latest exemplars (multiprocess mode keeps none: a trace id is an example, one process's will do)."""

    def __init__(self, folder: str, exemplars: dict[tuple[str, tuple[tuple[str, str], ...]], Exemplar]) -> None:
        self.folder, self.exemplars = folder, exemplars

    def collect(self) -> Iterator[Any]:
        for family in multiprocess.MultiProcessCollector(None, self.folder).collect():  # type: ignore[no-untyped-call]
            if self.exemplars:
                family.samples = [
                    sample._replace(exemplar=self.exemplars.get((sample.name, tuple(sorted(sample.labels.items())))))
                    for sample in family.samples
                ]
            yield family


class Metrics:
    def __init__(self, shared: str | None = None) -> None:
        """`shared`: the folder every process of this gateway writes its values to (None: this one alone)."""
        self.shared = shared
        if shared is not None:
            _share(shared)
        self._exemplars: dict[tuple[str, tuple[tuple[str, str], ...]], Exemplar] = {}
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "banyan_requests", "Requests answered", ["route", "entity", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "banyan_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "banyan_backend_errors", "Backend calls that failed", ["route", "side", "error"], registry=self.registry
        )
        self.contract_violations = Counter(
            "banyan_contract_violations",
            "Compared answers that break the route's canonical schema, by side",
            ["route", "entity", "side"],
            registry=self.registry,
        )
        self.deprecated_calls = Counter(
            "banyan_deprecated_calls",
            "Calls to a deprecated version, by consumer: who still has to move before the sunset",
            ["route", "consumer"],
            registry=self.registry,
        )
        self.shed = Counter(
            "banyan_backend_shed",
            "Calls refused at once (503) because the side's concurrency limit and its line were full",
            ["route", "side"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "banyan_backend_in_flight",
            "Calls in flight to a backend pool, from the gateway's processes",
            ["pool"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.waiting = Gauge(
            "banyan_backend_waiting",
            "Calls waiting in line for a backend pool, in the gateway's processes",
            ["pool"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.owed = Gauge(
            "banyan_cutover_writes_owed",
            "Writes a side is still owed through the outbox: the keys they hold are "
            "served by the other side until they land",
            ["route", "entity", "side"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.owed_age = Gauge(
            "banyan_cutover_writes_owed_oldest_seconds",
            "Age of the oldest write a side is still owed",
            ["route", "entity", "side"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.owed_shown: set[tuple[str, str, str]] = set()  # the owed gauges set at the last scrape
        self.exceptions = Gauge(
            "banyan_exceptions_open",
            "Exceptions waiting for a person, per kind, legal entity and owner",
            ["kind", "entity", "owner"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.exceptions_age = Gauge(
            "banyan_exceptions_oldest_seconds",
            "Age of the oldest exception waiting for a person",
            ["kind", "entity", "owner"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.paused = Gauge(
            "banyan_backend_paused_seconds",
            "Seconds left of the pause a backend asked for (Retry-After)",
            ["pool"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.throttled = Counter(
            "banyan_backend_throttled",
            "Answers that asked the gateway for a pause (429, or 503 with Retry-After)",
            ["pool"],
            registry=self.registry,
        )
        self.events_recorded = Counter(
            "banyan_events_recorded",
            "Events recorded in the store by successful calls",
            ["route", "type"],
            registry=self.registry,
        )
        self.events_unrecorded = Counter(
            "banyan_events_unrecorded",
            "Events of a made write the store could not take (logged)",
            ["route"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "banyan_events_published", "Events the broker acknowledged", ["type"], registry=self.registry
        )
        self.events_backlog = Gauge(
            "banyan_events_backlog",
            "Events recorded and not yet acknowledged by the broker (fleet-wide)",
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self.events_broker_down = Gauge(
            "banyan_events_broker_down",
            "1 while this gateway's relay cannot reach the events broker",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.slo_events = Counter(
            "banyan_slo_events",
            "Calls measured against a route's business SLO, good or bad",
            ["route", "entity", "slo", "result"],
            registry=self.registry,
        )
        self.slo_seconds = Histogram(
            "banyan_slo_seconds",
            "Time from the call to the system of record's answer, for latency SLOs",
            ["route", "entity", "slo"],
            buckets=SLO_BUCKETS,
            registry=self.registry,
        )
        self.wrong_keys = Counter(
            "banyan_wrong_keys",
            "Wrong API keys and admin keys, by kind (api, admin): guessing shows here",
            ["kind"],
            registry=self.registry,
        )
        self.rate_store_down = Gauge(
            "banyan_rate_store_down",
            "1 while the shared rate store (Redis) cannot be reached and limits are kept per process",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.breaker_open = Gauge(
            "banyan_breaker_open",
            "1 while a backend's circuit breaker is open (in any of the gateway's processes)",
            ["route", "side", "entity"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.flow_files = Counter(
            "banyan_flow_files",
            "Files a flow delivered to each side, by outcome (delivered, failed), and "
            "replies compared (matched, mismatched)",
            ["flow", "entity", "side", "outcome"],
            registry=self.registry,
        )
        self.flow_seconds = Histogram(
            "banyan_flow_reply_seconds",
            "From a file's arrival to each side's reply",
            ["flow", "entity", "side"],
            buckets=FLOW_BUCKETS,
            registry=self.registry,
        )
        self.side_calls = Counter(
            "banyan_cutover_calls",
            "Calls to each side by the cutover plan, by role (serve, mirror, fallback) and outcome",
            ["route", "entity", "side", "role", "outcome"],
            registry=self.registry,
        )
        self.comparisons = Counter(
            "banyan_cutover_comparisons",
            "Answers of both sides compared",
            ["route", "entity", "result"],
            registry=self.registry,
        )

        self.loop_lag = Histogram(
            "banyan_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 0.1 s: time in which no request was served",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def flows(self, evidence: Any) -> None:
        """What a pass of the flows saw (flows.runner.Evidence): deliveries, replies, comparisons."""
        for flow, entity, _, side, failed in evidence.calls:
            self.flow_files.labels(flow, entity, side.value, "failed" if failed else "delivered").inc()
        for flow, entity, side, seconds in evidence.replies:
            self.flow_seconds.labels(flow, entity, side.value).observe(seconds)
        for flow, entity, _, differences in evidence.comparisons:
            self.flow_files.labels(flow, entity, "both", "mismatched" if differences else "matched").inc()
        for flow, entity, slo, good, seconds in evidence.slos:
            self.slo_measured(flow, entity, slo, good, seconds, "")

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, kept for the next call: prometheus_client takes a lock and
        builds the label tuple on every `labels()`, and the calls on every request use a bounded
        set of label values (known routes and entities, status codes, sides)."""
        found = self._children.get((metric, values))
        if found is None:
            found = self._children[(metric, values)] = metric.labels(*values)
        return found

    def answered(self, route: str, entity: str, status: int, seconds: float) -> None:
        """One request answered: counted by route, entity and status; timed by route."""
        self.child(self.requests, route, entity, str(status)).inc()
        self.child(self.latency, route).observe(seconds)

    def slo_measured(self, route: str, entity: str, slo: str, good: bool, seconds: float | None, trace_id: str) -> None:
        """One call judged against a route's SLO (`seconds`: its latency, for a latency SLO), with
        the call's trace id as the exemplar."""
        exemplar = {"trace_id": trace_id} if trace_id else None
        result = "good" if good else "bad"
        self.slo_events.labels(route, entity, slo, result).inc(exemplar=exemplar)
        if seconds is not None:
            self.slo_seconds.labels(route, entity, slo).observe(seconds, exemplar)
        if self.shared is None or exemplar is None:  # alone, the library keeps its exemplars
            return
        at, labels = time.time(), {"route": route, "entity": entity, "slo": slo}
        self._exemplar("banyan_slo_events_total", {**labels, "result": result}, 1.0, exemplar, at)
        if seconds is not None:
            bound = floatToGoString(next((b for b in SLO_BUCKETS if seconds <= b), float("inf")))  # type: ignore[no-untyped-call]
            self._exemplar("banyan_slo_seconds_bucket", {**labels, "le": bound}, seconds, exemplar, at)

    def _exemplar(self, sample: str, labels: dict[str, str], value: float, exemplar: dict[str, str], at: float) -> None:
        self._exemplars[(sample, tuple(sorted(labels.items())))] = Exemplar(exemplar, value, at)

    async def watch_loop(self, every: float = 0.1, gauges: Callable[[], None] | None = None, lag: bool = True) -> None:
        """Observe the loop's lag until cancelled: a stall (a blocking call, a long collection, a
        disk that made a write wait) shows here, apart from what the network and the clients add.
        Every second, `gauges` sets what is read rather than counted (calls in flight): a scrape on
        another process of the gateway reads them too, at most a second old. `lag` False: a process
        that serves no requests (the deliverer) keeps its lag out of the serving processes' sums."""
        loop = asyncio.get_running_loop()
        for tick in itertools.count():
            due = loop.time() + every
            await asyncio.sleep(every)
            if lag:
                self.loop_lag.observe(max(0.0, loop.time() - due))
            if gauges is not None and tick % round(1 / every) == 0:
                gauges()

    def render(self, openmetrics: bool = False) -> bytes:
        """The text format; OpenMetrics (which carries the exemplars: trace ids) when asked for.
        Shared, every process's values added up."""
        registry = self.registry
        if self.shared is not None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Fleet(self.shared, self._exemplars))
        if openmetrics:
            return bytes(openmetrics_latest(registry))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
