"""Process specs: one managed operation whose handler runs declared steps, each a call of a managed
route, declared beside the routes.

    processes:
      - name: group-order
        operation: {method: POST, path: /v1/group-orders, request: {...}}
        steps:
          - name: terms                      # the CRM's terms: a credit hold refuses the order
            call: customer-terms
            entity: =ACME-DE
            params: {customerId: /request/customer}
            refuse: {pointer: /steps/terms/answer/creditHold, equals: true, reason: the customer is on credit hold}
          - name: stock                      # every entity's stock, asked at once; the first that can fulfil
            call: inventory-availability
            each: [ACME-DE, ACME-UK, ACME-US]
            params: {sku: /request/lines/0/sku}
            choose: {pointer: /available, at_least: /request/lines/0/qty, otherwise: no entity holds the stock}
          - name: book                       # where the stock is, on that entity's rung
            call: order-create
            entity: /steps/stock/entity
            body: {map: {orderNumber: /request/orderNumber, customer: /request/customer, lines: /request/lines}}
            event: com.acme.order.routed
            compensate: {call: order-cancel, entity: /steps/book/entity, params: {orderId: /steps/book/answer/orderId}}
            check: {call: order-by-number, entity: /each, params: {number: /request/orderNumber},
                    found: {pointer: /orderId, present: true}}
          - name: shipped                    # the warehouse's confirmation, however long it takes
            wait: {event: com.acme.shipment.confirmed, subject: /steps/book/answer/orderId, timeout_seconds: 172800}
        result: {map: {orderId: /steps/book/answer/orderId, entity: /steps/book/entity}}

Every value a step sends is a JSON pointer into the process's document, or `=constant`:

    /request/…               the consumer's body and the operation's path parameters
    /steps/NAME/answer/…     a finished step's answer (with `each`: the chosen entity's)
    /steps/NAME/entity       the entity it was called for (with `each`: the chosen one)
    /steps/NAME/answers/E/…  with `each`: entity E's answer
    /each                    inside a step with `each`: the entity this call is for

and a pointer may hold another in braces, filled first: `/steps/terms/answer/accounts/{/steps/stock/entity}`.

Each step is a call to its route as a consumer makes it, so it goes through that route's rung,
policies, comparison, idempotency and outbox; how an instance runs, records its progress and
resumes is `processes/runner.py`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from legacy_adapters.mapping import Mapping, MappingError, pointer_get
from specs.owners import Owned
from specs.routes import Operation, Route

NAME = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


INSIDE = re.compile(r"\{(/[^{}]*)\}")


def expanded(source: str, document: Any) -> str:
    """A pointer with `{/other/pointer}` parts filled from the document: the customer's account in
    the entity chosen is `/steps/terms/answer/accounts/{/steps/stock/entity}`."""
    if "{/" not in source:
        return source

    def fill(found: re.Match[str]) -> str:
        value = pointer_get(document, found.group(1))
        return str(value).replace("~", "~0").replace("/", "~1")

    return INSIDE.sub(fill, source)


def value_of(source: str, document: Any) -> Any:
    """`=constant`, or a JSON pointer into `document` (MappingError when nothing is there)."""
    if source.startswith("="):
        return source[1:]
    return pointer_get(document, expanded(source, document))


class Test(_Model):
    """A condition on one value: `equals`, `at_least`, `at_most` or `present`. A string that starts
    with `/` is read from the process's document."""

    pointer: str = Field(pattern=r"^/", description="the value tested")
    equals: str | int | float | bool | None = Field(default=None, description="holds when the value is this")
    at_least: str | float | None = Field(default=None, description="holds when the value is this or more")
    at_most: str | float | None = Field(default=None, description="holds when the value is this or less")
    present: bool | None = Field(default=None, description="holds when there is (true) or is no (false) value")

    @model_validator(mode="after")
    def _one(self) -> Test:
        given = [name for name in ("equals", "at_least", "at_most", "present") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a condition is exactly one of equals, at_least, at_most or present")
        return self

    def holds(self, tested: Any, document: Any) -> bool:
        """Does it hold of `tested` (where `pointer` is read), with the process `document` for the
        values it compares with? A value that is missing or not a number fails every test but present."""
        try:
            value = pointer_get(tested, self.pointer)
        except (MappingError, TypeError):
            return self.present is False
        if self.present is not None:
            return self.present
        if "equals" in self.model_fields_set:
            return bool(value == self._operand(self.equals, document))
        bound = self._operand(self.at_least if self.at_least is not None else self.at_most, document)
        try:
            number, limit = float(value), float(bound)
        except (TypeError, ValueError):
            return False
        return number >= limit if self.at_least is not None else number <= limit

    @staticmethod
    def _operand(given: Any, document: Any) -> Any:
        if isinstance(given, str) and given.startswith("/"):
            try:
                return pointer_get(document, given)
            except (MappingError, TypeError):
                return None
        return given


class Refusal(Test):
    """Refuse the process (422, with the reason) when the condition holds after the step."""

    reason: str = Field(min_length=1, description="what the consumer is told")


class Choice(Test):
    """With `each`: the first entity, in the order listed, whose answer passes (`pointer` reads the
    answer); none passing refuses the process with `otherwise`."""

    otherwise: str = Field(min_length=1, description="the consumer's reason when no entity passes")


class Undo(_Model):
    """The call that takes a finished step back, made when a later step fails."""

    call: str = Field(description="the managed route to call")
    entity: str | None = Field(default=None, description="a pointer or =constant: the legal entity")
    params: dict[str, str] = Field(default_factory=dict, description="path, query or header values, by name")
    body: Mapping | None = Field(default=None, description="the request body, mapped from the process document")


class Check(Undo):
    """How to tell whether a call in doubt was made: a read of the record it makes (by the request's
    own number). `found` holds of the answer when the record is there."""

    found: Test = Field(description="holds of the check's answer when the step's record is there")


class Wait(_Model):
    """Wait for a business event (one a route records, e.g. the shipment confirmed), about this
    instance's subject, recorded since the instance started; its data is the step's answer."""

    event: str = Field(min_length=1, description="the CloudEvents type waited for")
    subject: str | None = Field(default=None, description="a pointer or =constant: the event's subject must be it")
    timeout_seconds: float = Field(default=3600.0, gt=0, description="then the step fails: what was done is taken back")


class Step(Undo):
    name: str = Field(pattern=NAME, description="the step's name, unique in its process")
    call: str | None = Field(default=None, description="the managed route to call (or wait)")  # type: ignore[assignment]
    wait: Wait | None = Field(default=None, description="instead of a call: wait for an event, with a timeout")
    each: list[str] | None = Field(
        default=None, min_length=1, description="legal entities: the route is called for each at once"
    )
    when: Test | None = Field(default=None, description="the step runs only when this holds (else it is skipped)")
    refuse: Refusal | None = Field(default=None, description="after the step: refuse the process when it holds")
    choose: Choice | None = Field(default=None, description="with each: which entity's answer the process goes on with")
    compensate: Undo | None = Field(default=None, description="what takes this step back when a later one fails")
    check: Check | None = Field(
        default=None,
        description="when the call's outcome is unknown: the read that tells whether it was made (then it is "
        "done, with the read's answer) or not (then it is sent once more, under a new Idempotency-Key)",
    )
    event: str | None = Field(
        default=None, description="the CloudEvents type recorded (through the outbox) when the step completes"
    )

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if (self.call is None) == (self.wait is None):
            raise ValueError(f"step {self.name}: a step either calls a route or waits for an event")
        if self.wait is not None and (self.each or self.check or self.compensate or self.body or self.params):
            raise ValueError(f"step {self.name}: a wait has only its event, subject and timeout (and when, refuse)")
        if self.choose is not None and self.each is None:
            raise ValueError(f"step {self.name}: choose picks among the answers of each")
        if self.each is not None and self.entity is not None:
            raise ValueError(f"step {self.name}: with each, the entity of each call is /each")
        return self


class Process(_Model, Owned):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str | None = None
    operation: Operation
    respond: Literal["sync", "accepted"] = Field(
        default="sync",
        description="sync: the answer when the instance ends (202 with its status URL if it takes longer than "
        "wait_seconds); accepted: 202 with the status URL at once",
    )
    wait_seconds: float = Field(default=10.0, gt=0, le=120, description="sync: how long the consumer is kept waiting")
    entity: str | None = Field(
        default=None, description="a pointer into the document: the legal entity an instance is about (inbox, list)"
    )
    steps: list[Step] = Field(min_length=1)
    result: Mapping | None = Field(default=None, description="the answer, mapped from the process document")
    tags: list[str] = Field(default_factory=list, description="the groups the API reference lists it under")

    @model_validator(mode="after")
    def _names(self) -> Process:
        names = [step.name for step in self.steps]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"step names are used twice: {', '.join(doubled)}")
        return self


def process_route_problems(folder: object, routes: list[Route], processes: list[Process]) -> list[str]:
    """Every step, and every compensation, calls a managed route of the folder."""
    by_name = {route.name: route for route in routes}
    problems = []
    for process in processes:
        for step in process.steps:
            calls = [("calls", step.call)] if step.call is not None else []
            calls += [("is taken back by", step.compensate.call)] if step.compensate else []
            calls += [("is checked by", step.check.call)] if step.check else []
            for verb, name in calls:
                route = by_name.get(name)
                if route is None or route.operation is None:
                    problems.append(
                        f"{folder}: process {process.name}: step {step.name} {verb} {name!r}, "
                        "which is no managed route of this folder"
                    )
    return problems
