"""Who answers for an interface: every route, flow, batch and reconciliation can name its owner.

    owner: {team: uk-edi, contact: edi-uk@acme.example, runbook: https://wiki/edi/uk, on_call: uk-edi-rota,
            webhook: https://hooks.acme.example/uk-edi, respond_minutes: 60}

An item's own `owner` comes first; then its file's `owner:` (the default for everything in the
file); then the folder's default for the legal entity the exception is about (`owners:` in any
file: `{ACME-UK: {team: uk-ops}}`). What has none is unowned, and `routes check` warns about an
unowned tier-1 item (`tier: 1`, the roadmap's criticality). The owner is shown in the console, in
OpenAPI (`x-owner`), in the events' metadata, in every alert, and on every exception.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Owner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1, max_length=100, description="the team that answers for it")
    contact: str | None = Field(default=None, description="an address or channel that reaches the team")
    runbook: str | None = Field(default=None, description="what to read first when it fails")
    on_call: str | None = Field(default=None, description="the rota or pager that is on call for it")
    webhook: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="where its tier-1 exceptions are posted, as they open and "
        "again when one waits longer than respond_minutes",
    )
    respond_minutes: int = Field(default=240, ge=1, description="how long an exception may wait for a person")

    def shown(self) -> dict[str, Any]:
        """What consoles, OpenAPI and events carry: the owner without its webhook."""
        return self.model_dump(exclude_none=True, exclude={"webhook", "respond_minutes"})


class Owned(BaseModel):
    """The fields an ownable item (route, flow, batch, reconciliation) adds."""

    owner: Owner | None = Field(default=None, description="who answers for it (default: its file's owner)")
    tier: int | None = Field(default=None, ge=1, le=3, description="criticality: 1 is what the business stops for")


def owner_problems(folder: object, files: list[tuple[str, dict[str, Owner]]]) -> list[str]:
    """A legal entity with two different default owners in two files."""
    seen: dict[str, tuple[str, Owner]] = {}
    problems = []
    for name, owners in files:
        for entity, owner in owners.items():
            if entity in seen and seen[entity][1] != owner:
                problems.append(f"{folder}: entity {entity} has two default owners ({seen[entity][0]} and {name})")
            seen.setdefault(entity, (name, owner))
    return problems
