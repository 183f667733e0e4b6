"""The cutover ladder and the decision for one call: pure, in memory, constant time.

    legacy → shadow → dual_write → canary (percent, pinned keys) → cloud_primary → cloud

Canary is sticky by business key: the key's bucket is a hash of the route's salt and the key into
10,000 buckets, and the key goes to the cloud when its bucket is below percent × 100. So a key moved
at P % stays moved at any higher percentage, and lowering the percentage moves keys back in the
reverse order they moved. A pinned key (in canary) stays on its side whatever the percentage does.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

BUCKETS = 10_000


class Mode(StrEnum):
    legacy = "legacy"
    shadow = "shadow"
    dual_write = "dual_write"
    canary = "canary"
    cloud_primary = "cloud_primary"
    cloud = "cloud"


LADDER = list(Mode)


class Side(StrEnum):
    legacy = "legacy"
    cloud = "cloud"


@dataclass(frozen=True)
class Rule:
    """The cutover state of one route for one entity ("*" is the route's default)."""

    route: str
    entity: str
    mode: Mode = Mode.legacy
    percent: float = 0.0
    pins: dict[str, Side] = field(default_factory=dict)
    version: int = 0
    since: str | None = field(default=None, compare=False)  # when the store last set it (ISO 8601)

    @property
    def rung(self) -> str:
        """Names this rule's time on its rung: evidence gathered under it is judged with it, and only with it."""
        return f"{self.entity}@{self.version}"


@dataclass(frozen=True)
class Plan:
    """What to do with one call: who answers, who else gets it, whether the answers are compared."""

    serve: Side
    mirror: Side | None = None  # gets the call off the request path
    compare: bool = False
    fallback: Side | None = None  # answers reads when the serving side fails


@functools.lru_cache(maxsize=4096)
def starting(route: str, entity: str, mode: Mode) -> Rule:
    """The rule of a route and entity the store has none for: where the route file starts it. Rules
    are immutable, so the calls of one route and entity share one (instead of a new one per call)."""
    return Rule(route, entity, mode)


LEGACY, CLOUD = Plan(Side.legacy), Plan(Side.cloud)  # the plans of a call on the first and last rungs


def bucket(salt: str, key: str) -> int:
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(rule: Rule, key: str | None, salt: str) -> bool:
    """Is this key served by the cloud in canary? Pins first, then the key's bucket."""
    if key is not None and key in rule.pins:
        return rule.pins[key] is Side.cloud
    if key is None:
        return rule.percent >= 100  # no business key to be sticky by: legacy until everything moved
    return bucket(salt, key) < round(rule.percent * BUCKETS / 100)


def decide(rule: Rule, key: str | None, writes: bool, salt: str = "") -> Plan:
    """The plan for one call under `rule`. Writes never reach a side not allowed to own them."""
    mode = rule.mode
    if mode is Mode.legacy:
        return LEGACY
    if mode is Mode.shadow:
        # the cloud sees reads only: a shadow write would change the cloud before it owns anything
        return Plan(Side.legacy, mirror=None if writes else Side.cloud, compare=not writes)
    if mode is Mode.dual_write:
        return Plan(Side.legacy, mirror=Side.cloud, compare=True)
    if mode is Mode.canary:
        serve = Side.cloud if in_canary(rule, key, salt) else Side.legacy
        other = Side.legacy if serve is Side.cloud else Side.cloud
        # legacy still owns the data in canary, so it answers a read the cloud fails
        fallback = Side.legacy if serve is Side.cloud and not writes else None
        return Plan(serve, mirror=other, compare=True, fallback=fallback)
    if mode is Mode.cloud_primary:
        # legacy keeps getting writes, so a rollback loses nothing, and reads for the comparison;
        # it answers a read the cloud fails
        return Plan(Side.cloud, mirror=Side.legacy, compare=True, fallback=None if writes else Side.legacy)
    return CLOUD


def serving(rule: Rule) -> tuple[object, ...]:
    """Who serves the keys under `rule`: one side for all, or the canary's split. Two rules with the
    same answer serve every key from the same side (a change between them hands no key over)."""
    if rule.mode is Mode.canary:
        return (Mode.canary, rule.percent, tuple(sorted(rule.pins.items())))
    return (Side.cloud if rule.mode in (Mode.cloud_primary, Mode.cloud) else Side.legacy,)


def previous_mode(mode: Mode) -> Mode | None:
    index = LADDER.index(mode)
    return LADDER[index - 1] if index > 0 else None
