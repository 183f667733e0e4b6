"""Prometheus metrics: requests, latency, backend errors, breaker state and the cutover per route and entity."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

__all__ = ["OPENMETRICS", "Metrics"]


class Metrics:
    def __init__(self) -> None:
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
            "banyan_backend_in_flight", "Calls in flight to a backend pool, from this process", ["pool"],
            registry=self.registry,
        )  # fmt: skip
        self.waiting = Gauge(
            "banyan_backend_waiting", "Calls waiting in line for a backend pool, in this process", ["pool"],
            registry=self.registry,
        )  # fmt: skip
        self.events_recorded = Counter(
            "banyan_events_recorded", "Events recorded in the store by successful calls", ["route", "type"],
            registry=self.registry,
        )  # fmt: skip
        self.events_unrecorded = Counter(
            "banyan_events_unrecorded", "Events of a made write the store could not take (logged)", ["route"],
            registry=self.registry,
        )  # fmt: skip
        self.events_published = Counter(
            "banyan_events_published", "Events the broker acknowledged", ["type"], registry=self.registry
        )
        self.events_backlog = Gauge(
            "banyan_events_backlog", "Events recorded and not yet acknowledged by the broker (fleet-wide)",
            registry=self.registry,
        )  # fmt: skip
        self.events_broker_down = Gauge(
            "banyan_events_broker_down", "1 while this gateway's relay cannot reach the events broker",
            registry=self.registry,
        )  # fmt: skip
        self.slo_events = Counter(
            "banyan_slo_events", "Calls measured against a route's business SLO, good or bad",
            ["route", "entity", "slo", "result"], registry=self.registry,
        )  # fmt: skip
        self.slo_seconds = Histogram(
            "banyan_slo_seconds", "Time from the call to the system of record's answer, for latency SLOs",
            ["route", "entity", "slo"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )  # fmt: skip
        self.rate_store_down = Gauge(
            "banyan_rate_store_down",
            "1 while the shared rate store (Redis) cannot be reached and limits are kept per process",
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "banyan_breaker_open",
            "1 while a backend's circuit breaker is open",
            ["route", "side", "entity"],
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

    async def watch_loop(self, every: float = 0.1) -> None:
        """Observe the loop's lag until cancelled: a stall (a blocking call, a long collection, a
        disk that made a write wait) shows here, apart from what the network and the clients add."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + every
            await asyncio.sleep(every)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    def render(self, openmetrics: bool = False) -> bytes:
        """The text format; OpenMetrics (which carries the exemplars: trace ids) when asked for."""
        if openmetrics:
            return bytes(openmetrics_latest(self.registry))  # type: ignore[no-untyped-call]
        return generate_latest(self.registry)
