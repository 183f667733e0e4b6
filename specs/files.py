"""Reading route files: each file validated as a whole, its errors naming the file and the line;
`${NAME}` / `${NAME:-default}` filled from the environment in any string, so one set of route files
serves every deployment (hosts, ports and folders differ, the routes do not; a variable that is not
set and has no default is an error naming the file and the line); a folder's routes checked
together; and the JSON Schema editors validate route files with.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specs.checks import canonical_problems, pool_problems, successor_problems
from specs.flows import Batch, Flow, flow_route_problems
from specs.owners import Owner, owner_problems
from specs.processes import Process, process_route_problems
from specs.reconciliations import Reconciliation, reconciliation_route_problems
from specs.routes import Route, tags_of


class RouteFile(BaseModel):
    """One route file: its routes, its flows (files and batches on the same ladder), reconciliations
    and processes."""

    model_config = ConfigDict(extra="forbid")
    owner: Owner | None = Field(default=None, description="the owner of everything in the file that names none")
    owners: dict[str, Owner] = Field(
        default_factory=dict, description="per legal entity: the owner of what neither it nor its file names one for"
    )
    routes: list[Route] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    reconciliations: list[Reconciliation] = Field(default_factory=list)
    batches: list[Batch] = Field(default_factory=list)
    processes: list[Process] = Field(default_factory=list)

    def owned(self) -> dict[str, Route | Flow | Batch | Reconciliation | Process]:
        """Every route, flow, batch, reconciliation and process by name (they share one namespace)."""
        items: list[Route | Flow | Batch | Reconciliation | Process] = [*self.routes, *self.flows, *self.batches]
        return {item.name: item for item in [*items, *self.reconciliations, *self.processes]}

    def tags_of(self, subject: str) -> tuple[str, ...]:
        """The groups of a route (a person's scope may name them); none for anything else."""
        route = next((route for route in self.routes if route.name == subject), None)
        return tuple(tags_of(route)) if route is not None else ()

    def owner_of(self, subject: str, entity: str | None) -> Owner | None:
        """The owner of a route, flow, batch or reconciliation, for an exception about `entity`."""
        item = self.owned().get(subject)
        return item.owner if item is not None and item.owner is not None else self.owners.get(entity or "")


class RouteError(ValueError):
    """Route files that do not validate; each line of the message names a file and a line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _line(node: yaml.Node | None, location: tuple[Any, ...]) -> int | None:
    """The line of the YAML node at a pydantic error location."""
    current = node
    for step in location:
        if isinstance(current, yaml.MappingNode):
            current = next((v for k, v in current.value if k.value == step), None)
        elif isinstance(current, yaml.SequenceNode) and isinstance(step, int) and step < len(current.value):
            current = current.value[step]
        else:
            break
        if current is None:
            return None
    return current.start_mark.line + 1 if current is not None else None


VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, node: yaml.Node | None, path: Path, problems: list[str]) -> Any:
    """`value` with `${NAME}` / `${NAME:-default}` filled from the environment, in every string it holds."""
    if isinstance(value, dict):
        nodes = {k.value: v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
        return {k: _expand(v, nodes.get(k), path, problems) for k, v in value.items()}
    if isinstance(value, list):
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        return [_expand(v, items[i] if i < len(items) else None, path, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is None and default is None:
            line = node.start_mark.line + 1 if node is not None else 1
            problems.append(f"{path}:{line}: environment variable {name} is not set (or write ${{{name}:-default}})")
            return ""
        return found if found is not None else default

    return VARIABLE.sub(fill, value)


def load_file(path: Path) -> list[Route]:
    """The routes of one file."""
    return read_file(path).routes


def read_file(path: Path) -> RouteFile:
    """One route file, routes and flows, validated; RouteError names the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise RouteError([f"{path}: cannot read: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RouteError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    problems: list[str] = []
    raw = _expand(raw, node, path, problems)
    if problems:
        raise RouteError(problems)
    try:
        return RouteFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(error["loc"])
            line = _line(node, location)
            field = ".".join(str(step) for step in location)
            problems.append(f"{path}:{line or 1}: {field}: {error['msg']}")
        raise RouteError(problems) from None


def load_routes(folder: Path) -> list[Route]:
    """Every route in a folder's *.yaml files; all problems of all files are reported together."""
    return load_folder(folder).routes


def load_flows(folder: Path) -> list[Flow]:
    """Every flow in a folder's *.yaml files, checked with the routes beside them."""
    return load_folder(folder).flows


def load_folder(folder: Path) -> RouteFile:
    """Every route and flow in a folder's *.yaml files, checked together; all problems of all
    files are reported at once."""
    if not folder.is_dir():
        raise RouteError([f"{folder}: no such routes folder"])
    routes: list[Route] = []
    flows: list[Flow] = []
    batches: list[Batch] = []
    reconciliations: list[Reconciliation] = []
    processes: list[Process] = []
    problems: list[str] = []
    owners: list[tuple[str, dict[str, Owner]]] = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            found = _owned(read_file(path))
        except RouteError as exc:
            problems += exc.problems
            continue
        routes += [route.model_copy(update={"description": route.description}) for route in found.routes]
        flows += found.flows
        batches += found.batches
        reconciliations += found.reconciliations
        processes += found.processes
        owners.append((path.name, found.owners))
    names = [route.name for route in routes] + [flow.name for flow in flows] + [batch.name for batch in batches]
    names += [reconciliation.name for reconciliation in reconciliations] + [process.name for process in processes]
    problems += [
        f"{folder}: name {name!r} is used twice (routes and flows share the ladder)"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    endpoints = [
        (route.operation.method, route.operation.path) if route.operation else ("POST", route.passthrough.path)  # type: ignore[union-attr]
        for route in routes
    ] + [(process.operation.method, process.operation.path) for process in processes]
    problems += [
        f"{folder}: {m} {p} is served by two routes"
        for m, p in sorted({e for e in endpoints if endpoints.count(e) > 1})
    ]
    problems += successor_problems(folder, routes) + canonical_problems(folder, routes) + pool_problems(folder, routes)
    problems += flow_route_problems(folder, routes, flows)
    problems += reconciliation_route_problems(folder, routes, reconciliations)
    problems += process_route_problems(folder, routes, processes)
    problems += owner_problems(folder, owners)
    if problems:
        raise RouteError(problems)
    by_entity = {entity: owner for _, found in reversed(owners) for entity, owner in found.items()}
    return RouteFile(
        owners=by_entity,
        routes=routes,
        flows=flows,
        batches=batches,
        reconciliations=reconciliations,
        processes=processes,
    )


def _owned(found: RouteFile) -> RouteFile:
    """The file's items, each with the file's owner where it names none."""
    if found.owner is None:
        return found

    def stamped(items: list[Any]) -> list[Any]:
        return [item if item.owner is not None else item.model_copy(update={"owner": found.owner}) for item in items]

    return found.model_copy(
        update={
            "routes": stamped(found.routes),
            "flows": stamped(found.flows),
            "batches": stamped(found.batches),
            "reconciliations": stamped(found.reconciliations),
            "processes": stamped(found.processes),
        }
    )


def _variables_allowed(node: Any) -> Any:
    """The schema with `${NAME}` strings allowed wherever a number or a flag is expected, and in a
    string held to a pattern (the pattern is checked once the variable is filled in, at load)."""
    if isinstance(node, list):
        return [_variables_allowed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _variables_allowed(value) for key, value in node.items()}
    if node.get("type") in ("integer", "number", "boolean"):
        variable = {"type": "string", "pattern": VARIABLE.pattern}
        return {"anyOf": [node, variable], **{k: node[k] for k in ("title", "description", "default") if k in node}}
    if node.get("type") == "string" and "pattern" in node:  # a URL given as ${ACME_CLOUD:-http://…}/api
        variable = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}
        return {"anyOf": [node, variable], **{k: node[k] for k in ("title", "description", "default") if k in node}}
    return node


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _variables_allowed(RouteFile.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Banyan route file"
    return schema
