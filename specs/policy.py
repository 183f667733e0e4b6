"""The organisation's standards, as checks on route files: `banyan routes check --policy FILE`.

The central team writes the policy once; each entity's team keeps its own route files, and a file
that breaks a standard is refused by the check (in CI, before a gateway loads it):

    standards:
      owner: true                     # every route, flow, batch and reconciliation names an owner
      min_gate_samples: 200           # every route's and flow's gate asks for at least this many
      approval: [cloud_primary, cloud]   # steps up a second person approves (gate.approval.into)
      approve_forced: true            # a step forced past the gate is approved too (schedules are)
      writes:
        idempotency_key: true         # every managed write route refuses a call without one
        canonical: true               # and speaks a canonical contract ($ref: canonical:NAME)
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cutover.gates import Approval, Gate, Rung
from specs.canonical import reference
from specs.files import RouteFile
from specs.routes import known_entities


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WriteStandards(_Model):
    idempotency_key: bool = Field(default=False, description="operation.idempotency_key: required on write routes")
    canonical: bool = Field(default=False, description="a canonical request or response ($ref: canonical:NAME)")


class Standards(_Model):
    owner: bool = Field(default=False, description="every route, flow, batch and reconciliation has an owner")
    min_gate_samples: int | None = Field(default=None, ge=1, description="the least gate.min_samples allowed")
    approval: list[Rung] = Field(default_factory=list, description="rungs whose step in needs gate approval")
    approve_forced: bool = Field(default=False, description="gate.approval.forced stays true")
    writes: WriteStandards = Field(default_factory=WriteStandards)


class Policy(_Model):
    standards: Standards


class PolicyError(ValueError):
    """The policy file cannot be read: nothing is checked against it."""


def load_policy(path: Path) -> Policy:
    try:
        return Policy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc}") from None
    except ValidationError as exc:
        said = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        raise PolicyError(f"{path}: not a policy file: {said}") from None


def policy_problems(folder: RouteFile, standards: Standards) -> list[str]:
    """Each way the route files break the standards, naming the item and the standard."""
    problems: list[str] = []
    if standards.owner:
        # an item without an owner of its own (or its file's) is covered by the entities' owners
        # only when every legal entity the routes name has one
        estate = known_entities(folder.routes) or []
        covered = bool(estate) and all(entity in folder.owners for entity in estate)
        for name, item in folder.owned().items():
            if item.owner is None and not covered:
                problems.append(f"{name}: names no owner (standard owner): owner: {{team: …}} on it or its file")
    gated = [("route", route.name, route.cutover.gate) for route in folder.routes if route.operation is not None]
    gated += [("flow", flow.name, flow.cutover.gate) for flow in folder.flows]
    for kind, name, gate in gated:
        problems += _gate_problems(kind, name, gate, standards)
    for route in folder.routes:
        operation = route.operation
        if not route.writes or operation is None:
            continue
        if standards.writes.idempotency_key and operation.idempotency_key != "required":
            problems.append(
                f"route {route.name}: a write that does not require an Idempotency-Key (standard "
                "writes.idempotency_key): operation.idempotency_key: required"
            )
        if (
            standards.writes.canonical
            and reference(operation.request) is None
            and reference(operation.response) is None
        ):
            problems.append(
                f"route {route.name}: a write without a canonical contract (standard writes.canonical): "
                "operation.request or response: {$ref: canonical:NAME}"
            )
    return problems


def _gate_problems(kind: str, name: str, gate: Gate, standards: Standards) -> list[str]:
    problems = []
    if standards.min_gate_samples is not None and gate.min_samples < standards.min_gate_samples:
        problems.append(
            f"{kind} {name}: gate.min_samples {gate.min_samples} is below the standard's "
            f"{standards.min_gate_samples} (standard min_gate_samples)"
        )
    approval: Approval | None = gate.approval
    missing = [rung for rung in standards.approval if approval is None or rung not in approval.into]
    if missing:
        problems.append(
            f"{kind} {name}: the step into {', '.join(missing)} needs no approval (standard approval): "
            f"gate.approval.into: [{', '.join(standards.approval)}]"
        )
    if standards.approve_forced and (approval is None or not approval.forced):
        problems.append(
            f"{kind} {name}: a forced step needs no approval (standard approve_forced): gate.approval: {{}}"
        )
    return problems
