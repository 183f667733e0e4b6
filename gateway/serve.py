"""Run the gateway: one process, or N supervised processes sharing one port (SO_REUSEPORT), draining
on shutdown."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from cutover.store import open_store
from gateway.access_log import ACCESS, PLAIN, BatchedLines
from gateway.app import Settings, build_app, compile_table
from gateway.tracing import JsonLines

SHUTDOWN_SECONDS = 15.0  # in-flight requests get this long to finish on SIGTERM or Ctrl-C
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
RESTARTS_ALLOWED, RESTART_WINDOW = 5, 10.0  # this many worker deaths this fast is a crash loop: stop
log = logging.getLogger("banyan.gateway")


def _logging() -> None:
    # Nothing we log shows the caller, thread or process, so logging need not look them up on every
    # record: the logging HOWTO's "Optimization" settings, worth a tenth of a request per access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedLines(sys.stderr)
    handler.setFormatter(PLAIN)  # the lines are JSON already: see access_log.writer
    access = ACCESS
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    lines = logging.StreamHandler(sys.stderr)
    lines.setFormatter(JsonLines())  # one JSON object a line, with the trace and correlation ids
    logging.basicConfig(level=logging.INFO, handlers=[lines])


def _one(settings: Settings, host: str, port: int, reuse_port: bool, access_log: bool) -> None:
    try:
        import uvloop  # a faster event loop where it is installed

        uvloop.install()
    except ImportError:
        pass
    if not access_log:
        ACCESS.setLevel(logging.WARNING)
    app = build_app(settings)
    app.on_startup.append(_freeze_what_started)  # after every resource of the app has started
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            reuse_port=reuse_port,
            shutdown_timeout=SHUTDOWN_SECONDS,
            access_log=None,
            print=None,
        )
    except RuntimeError as exc:
        # SIGTERM while the app was still starting (a worker just started in place of a dead one when
        # the gateway is stopped): run_app's GracefulExit stops the loop mid-setup, and its clean-up
        # then finds the loop stopped. Nothing was served yet: say so and go, without a traceback.
        if not isinstance(exc.__context__, web.GracefulExit):
            raise
        log.info("stopped while starting (SIGTERM): nothing was served yet")


async def _freeze_what_started(app: web.Application) -> None:
    """Leave what the gateway built at start out of the garbage collector's full passes.

    The routes, schemas, metrics and libraries make some 60,000 long-lived objects; a full
    collection walks them all, about 20 ms during which no request is served, and under load one
    comes every few seconds: the p99 of a gateway at half its peak was those pauses. Frozen (the
    `gc.freeze` the CPython docs describe for long-running servers), they are never walked again;
    what requests allocate is still collected as before."""
    gc.collect()
    gc.freeze()


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies, even by SIGKILL, so no worker outlives
    the gateway and keeps the port (SO_REUSEPORT would let a new gateway share it with the orphan)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker(settings: Settings, host: str, port: int, access_log: bool, parent: int) -> int:
    pid = os.fork()
    if pid == 0:
        # the supervisor's handlers came with the fork: until run_app sets its own, SIGTERM would run
        # the supervisor's stop() here (signalling this worker's siblings) and this worker would live on
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before the line above: go at once
            os._exit(0)
        _one(settings, host, port, True, access_log)
        os._exit(0)
    return pid


def serve(settings: Settings, host: str, port: int, workers: int, access_log: bool = True) -> None:
    _logging()
    compile_table(settings.routes)  # validate routes before forking, so a bad folder fails once and clearly
    if settings.store:
        open_store(settings.store).close()  # reachable, and migrated once before the workers start
    if workers <= 1:
        _one(settings, host, port, False, access_log)
        return
    supervise(lambda: _worker(settings, host, port, access_log, os.getpid()), workers)


def supervise(start: Callable[[], int], workers: int) -> None:
    """Keep `workers` processes running: one that dies is started again (a crash loop stops the
    gateway instead); SIGTERM or Ctrl-C stops them all and waits for them to drain."""
    children = {start() for _ in range(workers)}
    stopping = False
    restarts: deque[float] = deque(maxlen=RESTARTS_ALLOWED)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if stopping:
            continue
        log.error("worker %d stopped (%s); starting another", pid, _how(status))
        now = time.monotonic()
        if len(restarts) == RESTARTS_ALLOWED and now - restarts[0] < RESTART_WINDOW:
            log.error("%d workers stopped within %.0f s: stopping the gateway", RESTARTS_ALLOWED, RESTART_WINDOW)
            stop(signal.SIGTERM, None)
            continue
        restarts.append(now)
        children.add(start())


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
