"""Traces: every call a span in the W3C trace its consumer sent, or in a new one the gateway starts;
each side's call, each outbox delivery and each event publish a span beneath it. Backends are sent
the `traceparent` of the gateway's own span, so their work hangs off it.

Exported over OTLP/HTTP (the OpenTelemetry SDK, batched off the request path) when an endpoint is
configured — `--otlp-endpoint` or the standard OTEL_EXPORTER_OTLP_ENDPOINT. Off by default, and
then no span object is made: the ids are drawn from the PRNG and carried in a context variable,
so every log line still names its trace and correlation id (`log_context`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass
class Span:
    """One unit of work in a trace; `otel` is the SDK's span when export is on."""

    trace_id: str
    span_id: str
    sampled: bool = True
    otel: Any = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def set(self, **attributes: Any) -> None:
        if self.otel is not None:
            self.otel.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def end(self, error: str | None = None) -> None:
        if self.otel is not None:
            if error:
                from opentelemetry.trace import Status, StatusCode

                self.otel.set_status(Status(StatusCode.ERROR, error))
            self.otel.end()


def parse(traceparent: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid W3C traceparent; None for anything else."""
    found = TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if found is None or found.group(1) == _ZERO_TRACE or found.group(2) == _ZERO_SPAN:
        return None
    return found.group(1), found.group(2), bool(int(found.group(3), 16) & 1)


class Tracer:
    """Spans without export: ids only, nothing kept. Hot paths ask `exporting` first and call `ids`,
    so they build no span name or attributes for nothing."""

    exporting = False

    def ids(self, parent: str | None) -> Span:
        """A span's ids, in `parent`'s trace or a new one."""
        context = parse(parent) if parent else None
        if context is None:
            return Span(f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}")
        return Span(context[0], f"{random.getrandbits(64):016x}", context[2])

    def start(self, name: str, parent: str | None, kind: str = "internal", **attributes: Any) -> Span:
        context = parse(parent)
        if context is None:
            return Span(f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}")
        return Span(context[0], f"{random.getrandbits(64):016x}", context[2])

    def shutdown(self) -> None:
        pass


class OtlpTracer(Tracer):
    """Spans exported over OTLP/HTTP in batches, by the OpenTelemetry SDK."""

    exporting = True

    def __init__(self, endpoint: str, service: str = "banyan-gateway") -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind

        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        # an endpoint given here is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("banyan.gateway")
        self.kinds = {
            "server": SpanKind.SERVER,
            "client": SpanKind.CLIENT,
            "producer": SpanKind.PRODUCER,
            "internal": SpanKind.INTERNAL,
        }

    def start(self, name: str, parent: str | None, kind: str = "internal", **attributes: Any) -> Span:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parse(parent) else None
        span = self.tracer.start_span(
            name,
            context=context,
            kind=self.kinds[kind],
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        own = span.get_span_context()
        return Span(f"{own.trace_id:032x}", f"{own.span_id:016x}", own.trace_flags.sampled, span)

    def shutdown(self) -> None:
        self.provider.shutdown()  # exports what is still batched


def tracer(endpoint: str | None) -> Tracer:
    """Spans exported to the OTLP/HTTP collector at `endpoint`, or ids only when there is none."""
    return OtlpTracer(endpoint) if endpoint else Tracer()


# the trace and correlation ids of the work in progress, for every log line it writes
CURRENT: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("banyan_trace", default=None)


def log_context() -> dict[str, str]:
    current = CURRENT.get()
    return {"trace_id": current[0], "correlation_id": current[1]} if current else {}


class JsonLines(logging.Formatter):
    """Every log line as one JSON object, with the trace and correlation id of the work it is about."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **log_context(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)
