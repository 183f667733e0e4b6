"""Which legal entity (and system) an interface belongs to, from rules in the scan config.

Rules are tried in order and the first whose every stated condition holds wins:

    entities:
      - entity: ACME-DE            # a path glob (fnmatch: * also crosses /)
        path: "*/acme_de/*"
      - entity: ACME-US
        host: "edi.acme-us.example"
        system: erp_us
      - entity: ACME-UK            # an X12 ISA06/ISA08 or EDIFACT UNB sender/recipient id
        sender: ["5012345000011"]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EntityRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = Field(description="the legal entity to set")
    system: str | None = Field(default=None, description="the system to set as well, if any")
    path: str | None = Field(default=None, description="glob on the folder path (local or remote)")
    host: str | None = Field(default=None, description="glob on the SFTP host; never matches a local path")
    sender: list[str] | None = Field(default=None, description="X12/EDIFACT sender ids")
    receiver: list[str] | None = Field(default=None, description="X12/EDIFACT receiver ids")

    @model_validator(mode="after")
    def _has_condition(self) -> EntityRule:
        if not (self.path or self.host or self.sender or self.receiver):
            raise ValueError(
                f"the rule for entity {self.entity!r} states no condition (path, host, sender or receiver)"
            )
        return self


@dataclass(frozen=True)
class Subject:
    """What a rule can look at for one interface."""

    path: str
    host: str | None = None
    senders: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()


def _ids_match(wanted: list[str] | None, seen: frozenset[str]) -> bool:
    return wanted is None or bool(seen.intersection(wanted))


def matches(rule: EntityRule, subject: Subject) -> bool:
    if rule.path is not None and not fnmatchcase(subject.path, rule.path):
        return False
    if rule.host is not None and (subject.host is None or not fnmatchcase(subject.host, rule.host)):
        return False
    return _ids_match(rule.sender, subject.senders) and _ids_match(rule.receiver, subject.receivers)


def resolve(rules: Iterable[EntityRule], subject: Subject) -> EntityRule | None:
    """The first rule that matches, or None."""
    return next((rule for rule in rules if matches(rule, subject)), None)
