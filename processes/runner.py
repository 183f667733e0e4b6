"""Running a process instance: its steps in order, each call recorded with its answer before the next
is made, so an instance resumes where it stopped, on any gateway of the fleet, without repeating a
call that was settled.

A step calls its route as a consumer would (`Caller`: in the gateway, a request to its own port on
behalf of the consumer that started the instance), so the call takes the route's rung, policies,
comparison, idempotency and outbox. Its Idempotency-Key is the instance's and the call's
(`process-<instance>-<call>`): a call resumed after a crash is sent again with the same key, and the
route's idempotency replays the first answer, waits while the first try still runs, or says the
write is in doubt; it is never booked twice.

What each answer means for the instance:

    2xx                         done: the next step
    429, 503, 408, 425          not made: tried again (a few times, backing off), then a failure
    409 "Request in progress"   the first try still runs elsewhere: waited for
    other 4xx                   refused: the instance is refused (422), what was done is taken back
    409 "Write in doubt", 5xx   (a 5xx that says it was not made is a failure, as a 503)
    no answer                   in doubt: the instance stops there, for a person (the inbox)

A refusal (by a side, or by a step's `refuse` or `choose` rule) or a failure takes back the steps
already done, newest first, through their `compensate` calls; a compensation that fails leaves the
instance failed, for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from events.log import New, new_event
from legacy_adapters.errors import Outcome, outcome_of_status
from legacy_adapters.mapping import MappingError, pointer_set
from processes.book import Book, CallRow, Instance
from specs.processes import Process, Step, Undo, expanded, value_of
from specs.routes import Route

log = logging.getLogger("banyan.processes")

LEASE_SECONDS = 15.0  # an instance whose gateway stops is taken over this long after its last sign of life
TRIES = 4  # a call its side did not make (throttled, unavailable) is tried this often
BACKOFF = 0.2  # seconds before the second try, doubled each time
WAIT_RUNNING = 120.0  # how long a resumed call waits for its first try, still running elsewhere
WAIT_POLL = 1.0  # how often a waiting step looks for its event


@dataclass(frozen=True)
class Outgoing:
    """One call of a managed route, as a consumer sends it."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    consumer: str
    correlation_id: str
    traceparent: str | None


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no answer (the call may or may not have arrived)
    body: Any
    served_by: str | None = None
    reason: str = ""
    sent: bool = True  # False: it never left (the connection was refused): not made


class Caller(Protocol):
    def __call__(self, outgoing: Outgoing) -> Awaitable[Reply]: ...


Commit = Callable[..., Awaitable[Any]]  # runs `function(cursor, *args)` in a transaction (the group commit)


@dataclass
class Settled:
    state: str  # done, refused, failed, in_doubt, skipped
    status: int | None
    answer: Any
    served_by: str | None
    reason: str
    entity: str | None = None  # a wait's: the entity of the event that came


@dataclass
class Ended(Exception):
    """How the instance ends, raised out of the steps."""

    state: str
    status: int
    reason: str
    result: Any = None
    take_back: bool = True


@dataclass
class _Run:
    instance: Instance
    process: Process
    done: dict[str, CallRow]
    document: dict[str, Any] = field(default_factory=dict)
    finished: list[Step] = field(default_factory=list)  # steps done, in order: what a failure takes back


def _problem_of(body: Any) -> str:
    if isinstance(body, dict):
        title, detail = body.get("title"), body.get("detail")
        if title or detail:
            return f"{title or ''}: {detail or ''}".strip(": ")
    return ""


def judged(reply: Reply) -> tuple[str, Outcome]:
    """(state, outcome) of one answer: see the module's table."""
    if not reply.sent:
        return "failed", Outcome.not_made
    if reply.status == 0:
        return "in_doubt", Outcome.unknown
    said = reply.body.get("outcome") if isinstance(reply.body, dict) else None
    outcome = Outcome(said) if said in {o.value for o in Outcome} else outcome_of_status(reply.status)
    if outcome is Outcome.made:
        return "done", outcome
    if reply.status == 409 and isinstance(reply.body, dict) and reply.body.get("title") == "Write in doubt":
        return "in_doubt", Outcome.unknown
    if outcome is Outcome.unknown:
        return "in_doubt", outcome
    if outcome is Outcome.not_made:
        return "failed", outcome
    return "refused", outcome


class Runner:
    """Runs instances of the processes it is given; `Caller` makes the calls."""

    def __init__(
        self,
        book: Book,
        commit: Commit,
        caller: Caller,
        processes: list[Process],
        routes: list[Route],
        gateway: str = "",
    ) -> None:
        self.book, self.commit, self.caller, self.gateway = book, commit, caller, gateway
        self.running: dict[str, asyncio.Task[Instance | None]] = {}
        self.use(processes, routes)

    def use(self, processes: list[Process], routes: list[Route]) -> None:
        """The processes and routes as the route files say now (at start, and on each reload)."""
        self.processes = {process.name: process for process in processes}
        self.routes = {route.name: route for route in routes}
        self.mappings: dict[tuple[str, str], Callable[[Any], Any]] = {}
        for process in processes:
            if process.result is not None:
                self.mappings[(process.name, "")] = process.result.compile()
            for step in process.steps:
                if step.body is not None:
                    self.mappings[(process.name, step.name)] = step.body.compile()
                if step.compensate is not None and step.compensate.body is not None:
                    self.mappings[(process.name, f"undo:{step.name}")] = step.compensate.body.compile()

    # -- starting and resuming -------------------------------------------------------------------
    async def start(
        self, process: Process, request: Any, consumer: str, correlation_id: str, traceparent: str | None
    ) -> str:
        """Record a new instance (leased by this gateway) and start running it; its id."""
        instance_id: str = await self.commit(
            self.book.start_in,
            process.name,
            "*",
            consumer,
            request,
            correlation_id,
            traceparent,
            time.time() + LEASE_SECONDS,
        )
        self.spawn(instance_id)
        return instance_id

    def spawn(self, instance_id: str) -> asyncio.Task[Instance | None]:
        task = asyncio.ensure_future(self.run(instance_id))
        self.running[instance_id] = task
        task.add_done_callback(lambda _: self.running.pop(instance_id, None))
        return task

    async def resume_stale(self, limit: int = 50) -> int:
        """Take over the open instances whose gateway stopped (their lease ran out), and run them."""
        taken = 0
        for instance_id in await asyncio.to_thread(self.book.stale, limit):
            if instance_id in self.running:
                continue
            if await asyncio.to_thread(self.book.take_over, instance_id, time.time() + LEASE_SECONDS):
                log.info("process instance %s taken over by %s", instance_id, self.gateway or "this gateway")
                self.spawn(instance_id)
                taken += 1
        return taken

    async def close(self) -> None:
        """Stop running instances (at shutdown): each resumes elsewhere once its lease runs out."""
        for task in list(self.running.values()):
            task.cancel()
        for task in list(self.running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- one instance ----------------------------------------------------------------------------
    async def run(self, instance_id: str) -> Instance | None:
        """Run an instance to its end from where its record says it is; None when it is not ours
        to run (ended, unknown, or its lease was lost)."""
        instance = await asyncio.to_thread(self.book.get, instance_id)
        if instance is None or instance.state not in ("running", "compensating"):
            return instance
        process = self.processes.get(instance.process)
        if process is None:
            await self._end(instance, Ended("failed", 500, f"process {instance.process} is no longer declared"))
            return await asyncio.to_thread(self.book.get, instance_id)
        calls = await asyncio.to_thread(self.book.calls, instance_id)
        run = _Run(instance, process, {row.call: row for row in calls})
        run.document = {"request": instance.request, "steps": {}}
        lost = asyncio.Event()
        keeper = asyncio.ensure_future(self._keep_lease(instance_id, asyncio.current_task(), lost))
        try:
            try:
                await self._steps(run)
                result = self._result(run)
                ended = Ended("completed", 201 if process.operation.method == "POST" else 200, "", result)
            except Ended as stop:
                ended = stop
            if ended.take_back and ended.state in ("refused", "failed"):
                ended = await self._take_back(run, ended)
            await self._end(instance, ended, self._entity(run))
        except asyncio.CancelledError:
            if not lost.is_set():
                raise
            log.warning("process instance %s: its lease ran out; another gateway resumes it", instance_id)
            return None
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return await asyncio.to_thread(self.book.get, instance_id)

    async def _keep_lease(self, instance_id: str, run: asyncio.Task[Any] | None, lost: asyncio.Event) -> None:
        """Renew the instance's lease while it runs; when it cannot (it ran out: another gateway may
        have taken the instance over), stop the run at its next await."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                kept = await asyncio.to_thread(self.book.renew, instance_id, time.time() + LEASE_SECONDS)
            except Exception as exc:  # the store away for a moment: the next renewal may do
                log.warning("process instance %s: lease not renewed: %s", instance_id, exc)
                continue
            if not kept:
                lost.set()
                if run is not None:
                    run.cancel()
                return

    async def _steps(self, run: _Run) -> None:
        if run.instance.state == "compensating":  # stopped while taking back: take back the rest
            self._replay(run)
            raise Ended("failed", 502, run.instance.reason or "a step failed")
        for step in run.process.steps:
            if step.when is not None and not step.when.holds(run.document, run.document):
                what = step.call or (step.wait.event if step.wait else "")
                skip = (run.instance.id, step.name, step.name, what, "its condition did not hold")
                await self.commit(self.book.skip_in, *skip)
                continue
            if step.wait is not None:
                waited = await self._wait(run, step)
                if waited.state != "done":
                    raise Ended("failed", 504, f"{step.name}: {waited.reason}")
                run.finished.append(step)
                run.document["steps"][step.name] = {"entity": waited.entity, "answer": waited.answer}
                if step.refuse is not None and step.refuse.holds(run.document, run.document):
                    raise Ended("refused", 422, f"{step.name}: {step.refuse.reason}")
                continue
            entities: list[str | None] = (
                list(step.each) if step.each is not None else [self._step_entity(step, run.document)]
            )
            settled = await asyncio.gather(*(self._call(run, step, entity) for entity in entities))
            outcome = self._outcome_of(run, step, entities, settled)
            run.finished.append(step)
            run.document["steps"][step.name] = outcome
            if step.refuse is not None and step.refuse.holds(run.document, run.document):
                raise Ended("refused", 422, f"{step.name}: {step.refuse.reason}")

    def _outcome_of(self, run: _Run, step: Step, entities: list[str | None], settled: list[Settled]) -> dict[str, Any]:
        doubtful = [(e, s) for e, s in zip(entities, settled, strict=True) if s.state == "in_doubt"]
        if doubtful:
            entity, found = doubtful[0]
            reason = f"{step.name}{_at(entity)}: its outcome is unknown: {found.reason}"
            raise Ended("in_doubt", 502, reason, None, False)
        bad = [(e, s) for e, s in zip(entities, settled, strict=True) if s.state in ("refused", "failed")]
        if bad and (step.each is None or step.choose is None):  # with choose, the others may do
            entity, found = bad[0]
            status = 422 if found.state == "refused" else 502
            if found.state == "refused" and found.status:
                status = found.status if found.status in (404, 409, 422) else 422
            raise Ended(found.state, status, f"{step.name}{_at(entity)}: {found.reason}")
        if step.each is None:
            only = settled[0]
            return {"entity": entities[0], "status": only.status, "answer": only.answer, "servedBy": only.served_by}
        answers = {e: s.answer for e, s in zip(entities, settled, strict=True) if s.state == "done" and e}
        outcome: dict[str, Any] = {"answers": answers}
        if step.choose is not None:
            chosen = next((e for e in step.each if e in answers and step.choose.holds(answers[e], run.document)), None)
            if chosen is None:  # with what the entities that did not answer said
                said = "".join(f"; {entity}: {found.reason}" for entity, found in bad)
                raise Ended("refused", 422, f"{step.name}: {step.choose.otherwise}{said}")
            outcome.update(entity=chosen, answer=answers[chosen])
        return outcome

    def _replay(self, run: _Run) -> None:
        """The document and the finished steps as the recorded calls say (to take back after a resume)."""
        for step in run.process.steps:
            rows = [row for row in run.done.values() if row.step == step.name and not row.call.startswith("undo:")]
            if rows and all(row.state == "done" for row in rows):
                run.finished.append(step)
                first = rows[0]
                run.document["steps"][step.name] = {"entity": first.entity, "answer": first.answer}

    # -- calls ------------------------------------------------------------------------------------
    async def _call(self, run: _Run, step: Step | Undo, entity: str | None, name: str | None = None) -> Settled:
        """One call, once: its record read back when it was settled before, else made (tried again
        while its side did not make it) and recorded with its answer. No intent is recorded first: a
        write's Idempotency-Key (the instance's and the call's) is claimed in the store by the route
        before its side is called, so a call resumed after a crash is replayed, waited for, or in
        doubt there; a read made again changes nothing."""
        step_name = step.name if isinstance(step, Step) else (name or "").removeprefix("undo:")
        call = name or (f"{step_name}[{entity}]" if isinstance(step, Step) and step.each else step_name)
        found = run.done.get(call)
        if found is not None:
            return Settled(found.state, found.status, found.answer, found.served_by, found.reason)
        instance, started = run.instance, time.time()
        try:
            outgoing = self._outgoing(run, step, entity, call)
        except MappingError as exc:  # nothing was sent: the process's own declaration does not fit
            settled = Settled("refused", None, None, None, f"cannot be mapped for route {step.call}: {exc}")
        else:
            settled = await self._send(outgoing)
            if settled.state == "in_doubt" and isinstance(step, Step) and step.check is not None:
                settled = await self._resolve(run, step, entity, call, outgoing, settled)
        events = self._events(run, step, entity, settled)
        lease = time.time() + LEASE_SECONDS
        told = (settled.state, settled.status, settled.answer, settled.served_by, settled.reason)
        answered = (instance.id, call, step_name, step.call or "", entity or "", told, started, events)
        await self.commit(self.book.answered_in, *answered, lease)
        return settled

    async def _wait(self, run: _Run, step: Step) -> Settled:
        """Wait for the step's event about its subject, recorded since the instance started; the
        time it may take counts from when the wait began, whichever gateway resumes it."""
        assert step.wait is not None
        found = run.done.get(step.name)
        if found is not None and found.state != "waiting":
            return Settled(found.state, found.status, found.answer, None, found.reason, found.entity or None)
        wait, instance = step.wait, run.instance
        try:
            subject = None if wait.subject is None else str(value_of(wait.subject, run.document))
        except MappingError as exc:
            return Settled("failed", None, None, None, f"no subject to wait for: {exc}")
        began = found.started if found is not None else time.time()
        if found is None:
            await self.commit(self.book.wait_in, instance.id, step.name, wait.event, time.time() + LEASE_SECONDS)
        while True:
            arrived = await asyncio.to_thread(self.book.event_since, wait.event, subject, instance.created)
            if arrived is not None:
                data, entity = arrived
                await self.commit(self.book.waited_in, instance.id, step.name, "done", data, entity, "")
                return Settled("done", None, data, None, "", entity)
            left = began + wait.timeout_seconds - time.time()
            if left <= 0:
                about = f" about {subject}" if subject else ""
                reason = f"no {wait.event}{about} within {wait.timeout_seconds:g} s"
                await self.commit(self.book.waited_in, instance.id, step.name, "failed", None, "", reason)
                return Settled("failed", None, None, None, reason)
            await asyncio.sleep(min(WAIT_POLL, left))

    async def _resolve(
        self, run: _Run, step: Step, entity: str | None, call: str, outgoing: Outgoing, doubt: Settled
    ) -> Settled:
        """A call in doubt, settled by reading its record: there, it is done (with what the read
        answered); certainly not there (404, or an answer `found` does not hold of), it is sent once
        more under a new key; anything else leaves it in doubt."""
        assert step.check is not None
        try:
            read = self._outgoing(run, step.check, entity, f"{call}:check", check=True)
        except MappingError as exc:
            return Settled("in_doubt", doubt.status, doubt.answer, doubt.served_by, f"{doubt.reason}; no check: {exc}")
        seen = await self._send(read)
        if seen.state == "done" and step.check.found.holds(seen.answer, run.document):
            return Settled("done", seen.status, seen.answer, seen.served_by, f"made, as {step.check.call} found")
        absent = seen.status == 404 or seen.state == "done"
        if not absent:
            return Settled("in_doubt", doubt.status, doubt.answer, doubt.served_by, f"{doubt.reason}; {seen.reason}")
        again = Outgoing(
            outgoing.route,
            outgoing.method,
            outgoing.path,
            outgoing.query,
            {**outgoing.headers, "Idempotency-Key": f"{outgoing.headers['Idempotency-Key']}-again"},
            outgoing.body,
            outgoing.consumer,
            outgoing.correlation_id,
            outgoing.traceparent,
        )
        log.info(
            "process instance %s: %s was not made (%s found nothing): sent again",
            run.instance.id,
            call,
            step.check.call,
        )
        return await self._send(again)

    async def _send(self, outgoing: Outgoing) -> Settled:
        waited, tries, pause = 0.0, 0, BACKOFF
        while True:
            reply = await self.caller(outgoing)
            state, outcome = judged(reply)
            said = reply.reason or _problem_of(reply.body)
            reason = "" if state == "done" else f"{outgoing.route}: {reply.status or 'no answer'} {said}".strip()
            in_progress = (
                reply.status == 409
                and isinstance(reply.body, dict)
                and reply.body.get("title") == ("Request in progress")
            )
            if in_progress and waited < WAIT_RUNNING:  # its first try still runs (a resumed call)
                await asyncio.sleep(1.0)
                waited += 1.0
                continue
            if in_progress:
                return Settled("in_doubt", reply.status, reply.body, reply.served_by, reason)
            tries += 1
            if outcome is Outcome.not_made and tries < TRIES:
                await asyncio.sleep(pause)
                pause *= 2
                continue
            return Settled(state, reply.status or None, reply.body, reply.served_by, reason)

    def _outgoing(self, run: _Run, step: Step | Undo, entity: str | None, call: str, check: bool = False) -> Outgoing:
        route = self.routes.get(step.call or "")
        if route is None or route.operation is None:
            raise MappingError(f"route {step.call} is not served")
        operation = route.operation
        document = {**run.document, "each": entity}
        if check:
            entity = self._step_entity(step, document) or entity
        mapping = None if check else self._mapping(run.process.name, step, call, document)
        body: Any = mapping(document) if mapping is not None else None
        if body is None and operation.method in ("POST", "PUT", "PATCH"):
            body = {}
        values = {name: value_of(source, document) for name, source in step.params.items()}
        path_params = set(operation.parameters)
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        if route.entity is not None and entity:
            source = route.entity
            if source.from_ in ("path", "query", "header") and source.name:
                values.setdefault(source.name, entity)
            elif source.from_ == "json" and source.pointer and isinstance(body, dict):
                pointer_set(body, source.pointer, entity)
        path = operation.path
        header_names = {
            s.name for s in (route.entity, route.key) if s is not None and s.from_ == "header" and s.name is not None
        }
        for name, value in values.items():
            text = "" if value is None else str(value)
            if name in path_params:
                path = path.replace("{" + name + "}", _segment(text))
            elif name in header_names:
                headers[name] = text
            else:
                query[name] = text
        missing = [name for name in path_params if "{" + name + "}" in path]
        if missing:
            raise MappingError(f"no value for path parameter {', '.join(missing)} of {operation.path}")
        headers["Idempotency-Key"] = f"process-{run.instance.id}-{call}"
        return Outgoing(
            route.name,
            operation.method,
            path,
            query,
            headers,
            body,
            run.instance.consumer,
            run.instance.correlation_id,
            run.instance.traceparent,
        )

    def _mapping(self, process: str, step: Step | Undo, call: str, document: Any) -> Callable[[Any], Any] | None:
        """The step's body mapping; one whose sources hold `{/pointer}` parts, filled for this call."""
        if step.body is None or step.body.map is None or not any("{/" in v for v in step.body.map.values()):
            return self.mappings.get((process, call if call.startswith("undo:") else step_name(step)))
        filled = {target: expanded(source, document) for target, source in step.body.map.items()}
        return step.body.model_copy(update={"map": filled}).compile()

    def _step_entity(self, step: Step | Undo, document: Any) -> str | None:
        if step.entity is None:
            return None
        try:
            found = value_of(step.entity, document)
        except MappingError:
            return None
        return None if found is None else str(found)

    def _events(self, run: _Run, step: Step | Undo, entity: str | None, settled: Settled) -> list[New]:
        if not isinstance(step, Step) or step.event is None or settled.state != "done":
            return []
        process, instance = run.process, run.instance
        data = {"instance": instance.id, "step": step.name, "entity": entity, "answer": settled.answer}
        owner = process.owner.team if process.owner is not None else None
        return [
            new_event(
                step.event,
                f"/banyan/processes/{process.name}",
                instance.id,
                data,
                process.name,
                entity,
                instance.correlation_id,
                instance.traceparent,
                owner,
            )
        ]

    # -- the end ----------------------------------------------------------------------------------
    async def _take_back(self, run: _Run, ended: Ended) -> Ended:
        """Compensate the steps done, newest first; the instance ends refused or compensated, or
        failed when a compensation did not go through."""
        owed = [step for step in reversed(run.finished) if step.compensate is not None]
        if not owed:
            return ended
        await self.commit(self.book.mark_in, run.instance.id, "compensating", ended.reason)
        for step in owed:
            assert step.compensate is not None
            entities = (
                [self._step_entity(step.compensate, run.document)]
                if step.compensate.entity is not None
                else [run.document["steps"].get(step.name, {}).get("entity")]
            )
            for entity in entities:
                settled = await self._call(run, step.compensate, entity, f"undo:{step.name}")
                if settled.state != "done":
                    reason = f"{ended.reason}; taking back {step.name} did not go through: {settled.reason}"
                    return Ended("failed" if settled.state != "in_doubt" else "in_doubt", 502, reason, None, False)
        state = "refused" if ended.state == "refused" else "compensated"
        return Ended(state, ended.status, f"{ended.reason}; taken back: {', '.join(s.name for s in owed)}")

    def _result(self, run: _Run) -> Any:
        mapping = self.mappings.get((run.process.name, ""))
        if mapping is None:
            return {name: step.get("answer") for name, step in run.document["steps"].items()}
        try:
            return mapping(run.document)
        except MappingError as exc:
            raise Ended("failed", 502, f"the result cannot be mapped: {exc}", None, False) from None

    def _entity(self, run: _Run) -> str | None:
        if run.process.entity is None:
            return None
        try:
            found = value_of(run.process.entity, run.document)
        except MappingError:
            return None
        return None if found is None else str(found)

    async def _end(self, instance: Instance, ended: Ended, entity: str | None = None) -> None:
        result = ended.result if ended.state == "completed" else None
        await self.commit(self.book.finish_in, instance.id, ended.state, ended.status, result, ended.reason, entity, [])


def step_name(step: Step | Undo) -> str:
    return step.name if isinstance(step, Step) else ""


def _at(entity: str | None) -> str:
    return f" ({entity})" if entity else ""


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")
