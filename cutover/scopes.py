"""Who may act on which row: a person's role, and the legal entities and route groups it reaches.

A person is a key with a role (viewer reads, operator changes the ladder, admin does all) and a
scope: the entities and the routes, flows and batches it names. A route group is a name, a glob
(`order-*`) or a tag (`tag:orders`); `*` is everything, and a central admin names `*` for both.
The scope of a row is checked where it is touched: the admin API, the CLI against the store, the
console's buttons and a schedule when it comes due (its actor's scope then, not when it was made).
Reads are not scoped: an entity's team sees the whole ladder and acts on its own part of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
EVERYTHING = ("*",)


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    entities: tuple[str, ...] = EVERYTHING
    routes: tuple[str, ...] = EVERYTHING  # names, globs or tag:NAME

    @classmethod
    def of(cls, name: str, spec: dict[str, Any]) -> Person | None:
        """The person a stored consumer's spec describes; None for a consumer without a role."""
        role = spec.get("role") or ("admin" if spec.get("admin") else None)
        if role not in ROLES:
            return None
        entities, routes = spec.get("entities") or ["*"], spec.get("routes") or ["*"]
        return cls(name, str(role), tuple(map(str, entities)), tuple(map(str, routes)))

    @property
    def central(self) -> bool:
        return "*" in self.entities and "*" in self.routes

    def scope(self) -> str:
        """The scope in words, for refusals and the console."""
        entities = "every entity" if "*" in self.entities else ", ".join(self.entities)
        routes = "every route" if "*" in self.routes else ", ".join(self.routes)
        return f"{entities}; {routes}"

    def refusal(self, route: str, entity: str, tags: Iterable[str] = (), need: str = "operator") -> str | None:
        """Why this person may not act on route × entity (route or entity `*`: all of them); None if they may."""
        if ROLES.index(self.role) < ROLES.index(need):
            return f"{self.name} is a {self.role}; this needs an {need}"
        if "*" not in self.entities and entity not in self.entities:
            what = "every entity" if entity == "*" else entity
            return f"{self.name} acts for {', '.join(self.entities)}, not for {what}"
        if not self.reaches(route, tags):
            what = "every route" if route == "*" else route
            return f"{self.name} acts on {', '.join(self.routes)}, not on {what}"
        return None

    def reaches(self, route: str, tags: Iterable[str] = ()) -> bool:
        if "*" in self.routes:
            return True
        if route == "*":
            return False
        tagged = {f"tag:{tag}" for tag in tags}
        return any(pattern in tagged or fnmatchcase(route, pattern) for pattern in self.routes)


def persons(rows: Iterable[tuple[str, str, dict[str, Any], str | None]]) -> dict[str, Person]:
    """The persons among a store's consumers (`Store.consumers()` rows), by name; revoked ones left out."""
    found = {}
    for name, _, spec, revoked_at in rows:
        person = Person.of(name, spec) if revoked_at is None else None
        if person is not None:
            found[name] = person
    return found
