"""What a rule can ask of an interface: the conditions shared by the pattern and disposition tables.

A rule holds when every condition it states holds; a condition it leaves out always holds. Some
conditions look past the interface itself (the systems a flow touches, the protocols it listens
on); `Facts` carries those, worked out once per interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field

from inventory_scan.catalog import Interface


@dataclass(frozen=True)
class Facts:
    """What the rules need to know about one interface beyond its own fields."""

    cadence: str | None = None
    systems: int = 0
    endpoint_protocols: frozenset[str] = frozenset()
    source_protocols: frozenset[str] = frozenset()
    # Known once patterns, links and activity have been analysed (the disposition table uses them):
    pattern: str | None = None
    business_object: str | None = None
    dependants: int = 0
    quiet: str | None = None  # why it looks unused, if it does
    duplicate_of: str | None = None  # the name of the interface that does the same, if any
    retiring: bool = False  # its system is being switched off
    extra: dict[str, str] = field(default_factory=dict)

    def values(self, interface: Interface) -> dict[str, str]:
        """What a rule's reason may name in braces: {system}, {quiet}, {duplicate_of} …"""
        return {
            "name": interface.name,
            "system": interface.system,
            "entity": interface.entity or "",
            "business_object": self.business_object or "",
            "dependants": str(self.dependants),
            "quiet": self.quiet or "",
            "duplicate_of": self.duplicate_of or "",
            **self.extra,
        }


def facts_of(interface: Interface) -> Facts:
    """The facts that follow from the interface alone."""
    cadence = interface.activity.cadence.kind if interface.activity.cadence else None
    endpoints = interface.attributes.get("endpoints", []) or []
    systems = set()
    for endpoint in endpoints:
        locator = str(endpoint.get("locator", ""))
        host = locator.partition("://")[2].split("/", 1)[0] if "://" in locator else locator.split(":", 1)[0]
        systems.add(host or endpoint.get("protocol"))
    return Facts(
        cadence=cadence,
        systems=len(systems),
        endpoint_protocols=frozenset(str(e.get("protocol")) for e in endpoints),
        source_protocols=frozenset(str(e.get("protocol")) for e in endpoints if e.get("role") == "source"),
    )


def names(pattern: str, interface: Interface) -> bool:
    """Whether `pattern` — an interface id, or a glob on its name or locator — names `interface`."""
    return pattern == interface.id or any(fnmatchcase(value, pattern) for value in (interface.name, interface.locator))


def fill(reason: str, values: dict[str, str]) -> str:
    """`reason` with each {name} it mentions replaced by the fact of that name; unknown names stay."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), reason)


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: list[str] | None = Field(default=None, description="interface kinds the rule applies to")
    protocol: list[str] | None = None
    side_effect: list[str] | None = Field(default=None, description="side-effect prefixes, e.g. outbox, notify")
    cadence: list[str] | None = Field(default=None, description="nightly, daily, weekly, interval, irregular …")
    flow_kind: list[str] | None = Field(default=None, description="route, proxy, orchestration, receive-port …")
    min_systems: int | None = Field(default=None, description="an ESB flow touching at least this many systems")
    has: list[str] | None = Field(default=None, description="attributes that must be present and non-empty")
    endpoint_protocol: list[str] | None = Field(default=None, description="an ESB flow with an endpoint of these")
    source_protocol: list[str] | None = Field(default=None, description="an ESB flow that listens on one of these")
    path: str | None = Field(default=None, description="glob on the interface's locator")

    def holds(self, interface: Interface, facts: Facts) -> bool:
        checks = [
            (self.kind, interface.kind.value),
            (self.protocol, interface.protocol),
            (self.cadence, facts.cadence),
            (self.flow_kind, interface.attributes.get("flow_kind")),
        ]
        if any(wanted is not None and value not in wanted for wanted, value in checks):
            return False
        if self.side_effect is not None and not any(
            effect.split(":", 1)[0] in self.side_effect for effect in interface.side_effects
        ):
            return False
        if self.endpoint_protocol is not None and not facts.endpoint_protocols & set(self.endpoint_protocol):
            return False
        if self.source_protocol is not None and not facts.source_protocols & set(self.source_protocol):
            return False
        if self.min_systems is not None and facts.systems < self.min_systems:
            return False
        if self.has is not None and not all(interface.attributes.get(name) for name in self.has):
            return False
        return self.path is None or fnmatchcase(interface.locator, self.path)
