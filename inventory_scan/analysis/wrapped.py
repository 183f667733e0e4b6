"""Which gateway route stands in front of each cataloged interface, and on which rung it is.

A route names what it wraps (`wraps:` in its spec: interface ids, or globs on their name or
locator); the rungs come from a cutover store when one is given. The report shows both beside the
interface, so the architect sees how far each integration has moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from inventory_scan.analysis.rules import names
from inventory_scan.catalog import Catalog


@dataclass(frozen=True)
class Wrapper:
    route: str
    entity: str | None = None  # None: the route as a whole, without a store to say per entity
    rung: str | None = None  # e.g. "canary 25 %", read from the store

    def __str__(self) -> str:
        where = f" · {self.entity}" if self.entity else ""
        return f"{self.route}{where}" + (f": {self.rung}" if self.rung else "")


def wrappers(
    catalog: Catalog, routes: Iterable[tuple[str, list[str]]], rungs: dict[tuple[str, str], str] | None = None
) -> dict[str, list[Wrapper]]:
    """interface id → the routes wrapping it; with `rungs` ((route, entity) → rung), one per entity
    the route serves that the interface belongs to (every entity, for an interface without one)."""
    found: dict[str, list[Wrapper]] = {}
    routes = list(routes)
    for interface in catalog.interfaces:
        for route, patterns in routes:
            if not any(names(pattern, interface) for pattern in patterns):
                continue
            if rungs is None:
                found.setdefault(interface.id, []).append(Wrapper(route))
                continue
            served = sorted((entity, rung) for (name, entity), rung in rungs.items() if name == route)
            mine = [pair for pair in served if pair[0] == interface.entity] or served
            listed = [Wrapper(route, entity, rung) for entity, rung in mine] or [Wrapper(route)]  # not on the ladder
            found.setdefault(interface.id, []).extend(listed)
    return found
