"""What an ESB plug-in reads out of a configuration, and the registry plug-ins add themselves to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from inventory_scan.catalog import Direction
from legacy_adapters.registry import Registry


@dataclass
class Endpoint:
    """Where a flow takes messages from (`source`) or sends them to (`target`)."""

    role: str  # source | target
    protocol: str  # file, sftp, ftp, jms, amqp, http, soap, db, mail … ('' when unknown)
    locator: str  # credentials removed
    operation: str  # listener, poll, write, publish, request, select, insert …
    line: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # the product's own name for the endpoint (a BizTalk receive location)

    @property
    def direction(self) -> Direction:
        """Seen from the ESB: a source brings data in, a target sends it out (reads bring it in)."""
        if self.operation in ("select", "query", "read", "poll", "get"):
            return Direction.into
        return Direction.into if self.role == "source" else Direction.out_of


@dataclass
class Flow:
    """A flow, route, proxy, API, port or channel chain: one `esb_flow` interface."""

    product: str
    kind: str
    name: str
    line: int | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # internal links: direct:x, flow-ref names …
    exposes: list[str] = field(default_factory=list)  # internal addresses this flow listens on
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SoapOperation:
    service: str
    operation: str
    namespace: str
    line: int | None
    bindings: list[dict[str, Any]] = field(default_factory=list)  # name, protocol, soap_action, ports
    input: str | None = None
    output: str | None = None
    faults: list[str] = field(default_factory=list)


@dataclass
class Found:
    """Everything one plug-in read from one document."""

    product: str
    flows: list[Flow] = field(default_factory=list)
    operations: list[SoapOperation] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # documents this one imports (WSDL/XSD)


@dataclass(frozen=True)
class Plugin:
    name: str
    recognises: Callable[[etree._Element], bool]
    read: Callable[[etree._Element, str], Found]


PLUGINS: Registry[Plugin] = Registry("ESB plug-in")


def plugin(
    name: str, recognises: Callable[[etree._Element], bool]
) -> Callable[[Callable[[etree._Element, str], Found]], Callable[[etree._Element, str], Found]]:
    """Register a product's reader under `name`; `recognises` looks at the root element only."""

    def register(read: Callable[[etree._Element, str], Found]) -> Callable[[etree._Element, str], Found]:
        PLUGINS.add(name, Plugin(name, recognises, read))
        return read

    return register


def recognise(root: etree._Element) -> Plugin | None:
    return next((p for _, p in PLUGINS if p.recognises(root)), None)
