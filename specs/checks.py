"""What a folder of routes must hold together, beyond each route on its own: every canonical schema a
route names exists and is a schema, every deprecated version's successor is a route that
outlives it, and sides sharing a concurrency pool agree on its limit. `load_routes` reports these
with the file's other problems."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from specs.canonical import CanonicalError, load_canonical, reference

if TYPE_CHECKING:
    from specs.routes import Route


def canonical_problems(folder: Path, routes: list[Route]) -> list[str]:
    """Each `$ref: canonical:NAME` names a schema in the canonical folder; `extends` needs one."""
    try:
        known = load_canonical(folder)
    except CanonicalError as exc:
        return [str(exc)]
    problems = []
    for route in routes:
        operation = route.operation
        schemas = {"request": operation.request, "response": operation.response} if operation else {}
        for part, schema in schemas.items():
            name = reference(schema)
            if name is not None and name not in known:
                there = ", ".join(sorted(known)) or f"none: add {folder / 'canonical' / name}.json"
                problems.append(
                    f"{folder}: route {route.name}: operation.{part}: no canonical schema {name!r} (there are: {there})"
                )
        for entity, own in route.entities.items():
            if own.extends and reference(operation.response if operation else None) is None:
                problems.append(
                    f"{folder}: route {route.name}: entities.{entity}.extends needs a canonical "
                    "response ($ref: canonical:NAME) to extend"
                )
    return problems


def successor_problems(folder: Path, routes: list[Route]) -> list[str]:
    """A deprecated version names a successor that exists, serves an operation, and outlives it."""
    by_name = {route.name: route for route in routes}
    problems = []
    for route in routes:
        deprecation = route.operation.deprecated if route.operation else None
        if deprecation is None or deprecation.successor is None:
            continue
        successor = by_name.get(deprecation.successor)
        where = f"{folder}: route {route.name}: operation.deprecated.successor"
        if successor is None:
            problems.append(f"{where}: no route is named {deprecation.successor!r}")
        elif successor is route or successor.operation is None:
            problems.append(f"{where}: {deprecation.successor!r} must be another route with an operation")
        elif successor.operation.deprecated and successor.operation.deprecated.sunset <= deprecation.sunset:
            problems.append(f"{where}: {deprecation.successor!r} is retired no later than {route.name} itself")
    return problems


def pool_problems(folder: Path, routes: list[Route]) -> list[str]:
    """Sides naming one concurrency pool share one limit, so they must say the same limit and line."""
    seen: dict[str, tuple[tuple[int, int, float | None], str]] = {}
    problems = []
    for route in routes:
        sides = [("legacy", route.legacy), ("cloud", route.cloud)]
        sides += [
            (f"entities.{entity}.{which}", getattr(own, which))
            for entity, own in route.entities.items()
            for which in ("legacy", "cloud")
        ]
        for where, side in sides:
            limits = side.concurrency if side is not None else None
            if limits is None or limits.pool is None:
                continue
            said, first = (limits.limit, limits.queue, limits.wait), f"route {route.name}: {where}"
            if limits.pool not in seen:
                seen[limits.pool] = (said, first)
            elif seen[limits.pool][0] != said:
                other = seen[limits.pool][1]
                problems.append(
                    f"{folder}: {first}.concurrency: pool {limits.pool!r} is already limited "
                    f"differently by {other}; say the same limit, queue and wait"
                )
    return problems
