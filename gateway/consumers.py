"""API consumers: keys stored hashed, each scoped to routes and legal entities; admins apart.

consumers:
  - name: webshop
    key_sha256: 9f86d081884c7d65…     # `banyan keys create webshop` prints the key once
    routes: [order-create, order-status]
    entities: [ACME-DE, ACME-UK]
    rate: 50          # requests per second, per route
    burst: 100
  - name: ops
    key_sha256: …
    admin: true
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cutover.scopes import Person


class Consumer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    routes: list[str] = Field(default_factory=lambda: ["*"])
    entities: list[str] = Field(default_factory=lambda: ["*"])
    rate: float = Field(default=100.0, gt=0)
    burst: int = Field(default=200, ge=1)
    admin: bool = False  # the older way to say role: admin
    role: Literal["viewer", "operator", "admin"] | None = Field(
        default=None, description="a person's admin key: viewer reads the ladder, operator changes it, admin all"
    )

    @property
    def admin_role(self) -> str | None:
        return self.role or ("admin" if self.admin else None)

    def person(self) -> Person:
        """As a person of the admin API: its role, and its routes and entities as its scope."""
        return Person(self.name, self.admin_role or "viewer", tuple(self.entities), tuple(self.routes))

    def may_call(self, route: str) -> bool:
        return "*" in self.routes or route in self.routes

    def may_serve(self, entity: str | None) -> bool:
        return "*" in self.entities or (entity is not None and entity in self.entities)


class ConsumerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consumers: list[Consumer]


def digest(key: str) -> str:
    # Header values that are not UTF-8 arrive with surrogate escapes; they hash (and never match).
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class Consumers:
    """The keys a gateway accepts: the consumers file's, and with a store the store's, which a
    change feed keeps current (`use_stored`); a key revoked in the store is refused even if the file
    still lists it."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self._by_hash = {c.key_sha256: c for c in consumers}
        self._stored: dict[str, Consumer] = {}
        self._revoked: frozenset[str] = frozenset()

    def use_stored(self, rows: list[tuple[str, str, dict[str, Any], str | None]]) -> None:
        """Take the store's consumers (name, key hash, scopes, revoked at): one swap, no lock."""
        stored, revoked = {}, set()
        for name, key_sha256, spec, revoked_at in rows:
            if revoked_at is None:
                stored[key_sha256] = Consumer(name=name, key_sha256=key_sha256, **spec)
            else:
                revoked.add(key_sha256)
        revoked |= {c.key_sha256 for c in self._by_hash.values() if any(r[0] == c.name and r[3] for r in rows)}
        self._stored, self._revoked = stored, frozenset(revoked)

    @classmethod
    def load(cls, path: Path) -> Consumers:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {"consumers": []}
            return cls(ConsumerFile.model_validate(raw).consumers)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: not a consumers file: {exc}") from None

    def named(self, name: str) -> Consumer | None:
        """The consumer of that name whose key is valid now (a process's steps run on its behalf)."""
        for found in (*self._stored.values(), *self._by_hash.values()):
            if found.name == name and found.key_sha256 not in self._revoked:
                return found
        return None

    def find(self, key: str) -> Consumer | None:
        hashed = digest(key)
        if hashed in self._revoked:
            return None
        found = self._stored.get(hashed) or self._by_hash.get(hashed)
        # compare in constant time even though the dict lookup already matched
        return found if found is not None and hmac.compare_digest(found.key_sha256, hashed) else None


def new_key() -> str:
    return "bnk_" + secrets.token_urlsafe(32)
