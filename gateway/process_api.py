"""Process routes on the gateway: the operation a consumer calls, the instance's status URL, and the
runner that resumes instances whose gateway stopped.

A call starts an instance (processes/runner.py) and, for a `sync` process, waits for its end up to
`wait_seconds`: the answer is the process's result (201/200), or a problem saying which step refused
(422) or failed (502) and what was taken back. A longer instance, or an `accepted` process, is
answered 202 with `Location: /processes/<id>`, where its consumer reads each step's state.

Each step is a request to this gateway's own port (`Settings.listen`) that carries the gateway's
step token and the name of the consumer that started the instance: it is authenticated as that
consumer (its entities and limits), and allowed every route the process declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cutover.runtime import in_thread
from gateway.consumers import Consumer
from gateway.inputs import json_body, schema_validator
from gateway.policies import CONSUMER, ON_BEHALF_HEADER, SPAN, STEP_HEADER, authenticate, correlation_id
from gateway.problems import Problem
from gateway.state import CUTOVER, EVENT_LOG, SETTINGS
from legacy_adapters import Outcome
from legacy_adapters.raw_http import Origin, UpstreamError
from processes.book import Book, Instance
from processes.runner import Outgoing, Reply, Runner
from specs.processes import Process
from specs.routes import Route

log = logging.getLogger("banyan.gateway")

STATUS = "/processes/{instance}"
RESUME_SECONDS = 1.0
STEP_TIMEOUT = 120.0  # the longest one step's call may take: the route's own timeouts and retries are shorter


@dataclass
class Served:
    process: Process
    regex: re.Pattern[str]
    validator: Any


class Processes:
    """The processes this gateway serves, and their runner (None without a store)."""

    def __init__(self, processes: list[Process], runner: Runner | None) -> None:
        self.runner = runner
        self.served: list[Served] = []
        self.use(processes, [])

    def use(self, processes: list[Process], routes: list[Route]) -> None:
        served = []
        for process in processes:
            operation = process.operation
            pattern = re.sub(
                r"{(\w+)}", r"(?P<\1>[^/]+)", re.escape(operation.path).replace(r"\{", "{").replace(r"\}", "}")
            )
            validator = schema_validator(operation.request) if operation.request else None
            served.append(Served(process, re.compile(f"^{pattern}$"), validator))
        self.served = served
        if self.runner is not None and routes:
            self.runner.use(processes, routes)

    def match(self, method: str, path: str) -> tuple[Served, dict[str, str]] | None:
        for served in self.served:
            found = served.regex.match(path)
            if found and served.process.operation.method == method:
                return served, found.groupdict()
        return None


PROCESSES = web.AppKey("processes", Processes)


class Loopback:
    """A step's call, made to this gateway's own port as the consumer would make it (over the same
    small keep-alive client the HTTP backends use)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.origin: Origin | None = None

    async def __call__(self, outgoing: Outgoing) -> Reply:
        settings = self.app[SETTINGS]
        if settings.listen is None:
            unknown = "this gateway does not know its own address (serve it with banyan serve)"
            return Reply(0, None, None, unknown, False)
        if self.origin is None:
            self.origin = Origin(settings.listen, pool_size=256)
        headers = {
            **outgoing.headers,
            STEP_HEADER: settings.step_token,
            ON_BEHALF_HEADER: urllib.parse.quote(outgoing.consumer),  # any name, as one Latin-1 line
            "X-Correlation-ID": outgoing.correlation_id,
        }
        if outgoing.traceparent:
            headers["traceparent"] = outgoing.traceparent
        body = None
        if outgoing.method in ("POST", "PUT", "PATCH"):
            body = json.dumps(outgoing.body).encode()
            headers["Content-Type"] = "application/json"
        target = outgoing.path + (f"?{urllib.parse.urlencode(outgoing.query)}" if outgoing.query else "")
        try:
            reply = await self.origin.request(outgoing.method, target, headers, body, STEP_TIMEOUT)
        except UpstreamError as exc:  # `sent` says whether the gateway may have acted on it
            return Reply(0, None, None, f"{outgoing.route}: {exc}", exc.sent)
        except TimeoutError:
            return Reply(0, None, None, f"no answer from {outgoing.route} in {STEP_TIMEOUT:.0f} s")
        try:
            answer: Any = json.loads(reply.body) if reply.body else None
        except ValueError:
            answer = reply.body.decode("utf-8", "replace")
        return Reply(reply.status, answer, reply.headers.get("x-served-by"))

    def close(self) -> None:
        if self.origin is not None:
            self.origin.close()


def _request_document(body: Any, params: dict[str, str]) -> Any:
    """/request: the body's fields and the path's parameters (a body that is no object is /request/body)."""
    if body is None:
        return dict(params)
    return {**body, **params} if isinstance(body, dict) else {"body": body, **params}


async def start(request: web.Request, served: Served, params: dict[str, str]) -> web.StreamResponse:
    """POST (or any method) to a process's operation: start an instance; see the module's docstring."""
    runner = request.app[PROCESSES].runner
    process = served.process
    if runner is None:
        raise Problem(404, "No such endpoint", f"process {process.name} runs only on a gateway with a store")
    body = await json_body(request, served.validator)
    consumer: Consumer | None = request.get(CONSUMER)
    instance_id = await runner.start(
        process,
        _request_document(body, params),
        consumer.name if consumer is not None else "",
        correlation_id(request),
        request[SPAN].traceparent,
    )
    location = STATUS.format(instance=instance_id)
    task = runner.running.get(instance_id)
    if process.respond == "accepted" or task is None:
        return _accepted(process, instance_id, location)
    try:
        instance = await asyncio.wait_for(asyncio.shield(task), process.wait_seconds)
    except TimeoutError:
        return _accepted(process, instance_id, location)
    if instance is None:  # its lease was lost: another gateway finishes it
        return _accepted(process, instance_id, location)
    return answer(instance, location)


def _accepted(process: Process, instance_id: str, location: str) -> web.Response:
    body = {"status": "running", "process": process.name, "instance": instance_id, "statusUrl": location}
    return web.json_response(body, status=202, headers={"Location": location, "Retry-After": "1"})


def answer(instance: Instance, location: str) -> web.Response:
    """The consumer's answer for an instance that ended."""
    headers = {"Location": location, "X-Process-Instance": instance.id}
    if instance.state == "completed":
        return web.json_response(instance.result, status=instance.status or 200, headers=headers)
    if instance.state == "running" or instance.state == "compensating":
        return _accepted_again(instance, location)
    kinds = {
        "refused": (422, "Process refused", Outcome.refused),
        "compensated": (502, "Process failed", Outcome.not_made),
        "failed": (502, "Process failed", Outcome.unknown),
        "in_doubt": (502, "Process in doubt", Outcome.unknown),
    }
    status, title, outcome = kinds.get(instance.state, (502, "Process failed", Outcome.unknown))
    detail = instance.reason
    if instance.state in ("failed", "in_doubt"):
        detail += "; it waits in the operators' exception inbox"
    raise Problem(status, title, detail, headers, outcome, instance=instance.id, statusUrl=location)


def _accepted_again(instance: Instance, location: str) -> web.Response:
    body = {"status": instance.state, "process": instance.process, "instance": instance.id, "statusUrl": location}
    return web.json_response(body, status=202, headers={"Location": location, "Retry-After": "1"})


def told(instance: Instance, book: Book) -> dict[str, Any]:
    """An instance with its calls, as the status URL and the admin API tell it."""
    calls = [row.as_dict() for row in book.calls(instance.id)]
    return {**instance.as_dict(), "calls": calls}


async def status(request: web.Request) -> web.Response:
    """GET /processes/{instance}: where an instance stands, for the consumer that started it."""
    consumer = authenticate(request.app[SETTINGS].consumers, request)
    book = Book(request.app[CUTOVER].store)
    instance = await in_thread(book.get, request.match_info["instance"])
    if instance is None or instance.consumer != (consumer.name if consumer is not None else ""):
        raise Problem(404, "No such process instance", "no instance started with your key has this status URL")
    body = await in_thread(told, instance, book)
    headers = {"Retry-After": "1"} if instance.state in ("running", "compensating") else {}
    return web.json_response(body, headers=headers)


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The loop that takes over stopped instances; at the end, the runner's connections to this gateway."""
    runner = app[PROCESSES].runner
    assert runner is not None and isinstance(runner.caller, Loopback)
    resumer = asyncio.create_task(_resume(app, runner))
    yield
    resumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await resumer
    await runner.close()
    runner.caller.close()


async def _resume(app: web.Application, runner: Runner) -> None:
    await asyncio.sleep(RESUME_SECONDS)
    while True:
        try:
            if app[SETTINGS].listen is not None and runner.processes:
                await runner.resume_stale()
        except Exception as exc:  # the store away for a moment: the next round may do
            log.warning("process instances not resumed now: %s", exc)
        await asyncio.sleep(RESUME_SECONDS)


def build(app: web.Application, processes: list[Process], routes: list[Route]) -> None:
    """Serve `processes` on `app` (with a store: run them too)."""
    runner = None
    if CUTOVER in app:
        cutover = app[CUTOVER]
        book = Book(cutover.store, app[EVENT_LOG])
        runner = Runner(book, cutover.commits.run, Loopback(app), processes, routes, f"pid {os.getpid()}")
    app[PROCESSES] = Processes(processes, runner)
    if runner is not None:
        app.cleanup_ctx.append(lifecycle)
        app.router.add_get(STATUS, status)
