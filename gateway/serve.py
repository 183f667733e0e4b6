"""Run the gateway: one process, or N supervised processes sharing one port (SO_REUSEPORT), and
with a store one more that delivers the outbox; draining on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from cutover.store import open_store
from gateway.access_log import ACCESS, PLAIN, BatchedLines
from gateway.app import Settings, build_app, compile_table
from gateway.metrics import process_gone
from gateway.tracing import JsonLines

SHUTDOWN_SECONDS = 15.0  # in-flight requests get this long to finish on SIGTERM or Ctrl-C
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
RESTARTS_ALLOWED, RESTART_WINDOW = 5, 10.0  # this many worker deaths this fast is a crash loop: stop
METRICS_FOLDER = "banyan-metrics-"  # + the supervisor's pid: the folder its processes share their metrics in
UNNAMED_STALE_SECONDS = 86400.0  # a metrics folder named without a pid is taken for stale once this old
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
    logging.getLogger("aiohttp.server").addFilter(malformed_in_one_line)


def malformed_in_one_line(record: logging.LogRecord) -> bool:
    """aiohttp answers a request it cannot parse (a NUL or a bare CR in a header…) with 400 itself,
    and logs it as an error with a traceback: a client's mistake, not the gateway's, so it is one
    warning line that says what was refused."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError) and error.code == 400:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "refused a malformed request with 400: %s", (str(error.message).strip()[:200],)
        record.exc_info, record.exc_text = None, None
    return True


def _fast_loop() -> None:
    """uvloop, a faster event loop, where it is installed."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def _one(settings: Settings, host: str, port: int, reuse_port: bool, access_log: bool) -> None:
    _fast_loop()
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


def _child(run: Callable[[], None], parent: int) -> int:
    """Fork a supervised process that runs `run`, dies with its parent, and exits when `run` returns."""
    pid = os.fork()
    if pid == 0:
        # the supervisor's handlers came with the fork: until the child sets its own, SIGTERM would run
        # the supervisor's stop() here (signalling the siblings) and this process would live on
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before the line above: go at once
            os._exit(0)
        # whatever `run` ends with, the process ends here: the supervisor's code that came with the
        # fork (its loop, its clean-up of the shared metrics folder) must not run in a child
        code = 0
        try:
            run()
        except (SystemExit, KeyboardInterrupt):  # a second SIGTERM while stopping: aiohttp's GracefulExit
            pass
        except BaseException:
            log.exception("a supervised process failed")
            code = 1
        logging.shutdown()
        os._exit(code)
    return pid


def _worker(settings: Settings, host: str, port: int, access_log: bool, parent: int) -> int:
    return _child(lambda: _one(settings, host, port, True, access_log), parent)


def _deliverer(settings: Settings, parent: int) -> int:
    """The process that delivers the outbox's copies and accepted writes for the workers beside it:
    the gateway's app with every resource it needs, and no socket, so no request reaches it."""

    def run() -> None:
        _batch_scheduling()
        _fast_loop()
        asyncio.run(_deliver(settings))

    return _child(run, parent)


def _batch_scheduling() -> None:
    """Linux: this process never preempts one that wakes up (SCHED_BATCH, sched(7)), with the same
    share of the CPU as any. A worker woken by an answer runs at once instead of after the
    deliverer's slice: at 300 dual writes/s the write route's p99 over legacy's went from 2.46–3.15×
    (median 2.66) to 2.32–2.49× (2.44) in five pairs of runs."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


async def _deliver(settings: Settings) -> None:
    """Run the app's lifecycles (the outbox worker among them) until SIGTERM, then close them."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build_app(settings), handle_signals=False)
    runner.app.on_startup.append(_freeze_what_started)
    await runner.setup()
    log.info("delivering the outbox for the workers beside this process")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(settings: Settings, host: str, port: int, workers: int, access_log: bool = True) -> None:
    """Serve on `port` with `workers` processes. With a store and `settings.deliveries` "apart", one
    more process delivers the outbox (the workers ring it through a pipe as they settle a write), so
    no worker's event loop spends time on the copies its consumers are not waiting for."""
    _logging()
    compile_table(settings.routes)  # validate routes before forking, so a bad folder fails once and clearly
    if settings.listen is None:  # where process steps call this gateway: its own port, on loopback
        loopback = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        settings = replace(settings, listen=f"http://{'[' + loopback + ']' if ':' in loopback else loopback}:{port}")
    if settings.store:
        open_store(settings.store).close()  # reachable, and migrated once before the workers start
    parent = os.getpid()
    apart = bool(settings.store) and settings.deliveries == "apart"
    alone = not apart and workers <= 1
    _can_listen(host, port, reuse_port=not alone)
    if alone:
        _one(replace(settings, deliveries="here"), host, port, False, access_log)
        return
    # several processes: one /metrics for them all, whichever worker a scrape reaches
    for gone in clean_stale_metrics():
        log.info("removed the metrics folder %s of a gateway that is gone", gone)
    with tempfile.TemporaryDirectory(prefix=f"{METRICS_FOLDER}{os.getpid()}-") as shared:
        settings = replace(settings, metrics=shared)
        if apart:
            heard, ring = os.pipe()
            os.set_blocking(heard, False)
            os.set_blocking(ring, False)
            serving = replace(settings, doorbell=ring)
            delivering = replace(settings, deliveries="only", doorbell=heard)
            kinds = {
                "worker": (lambda: _worker(serving, host, port, access_log, parent), workers),
                "deliverer": (lambda: _deliverer(delivering, parent), 1),
            }
        else:
            here = replace(settings, deliveries="here")  # every worker delivers the writes it settles
            kinds = {"worker": (lambda: _worker(here, host, port, access_log, parent), workers)}
        if supervise(kinds, shared):
            raise ValueError("the gateway's processes kept stopping, so it stopped: the log above says why")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process has that pid
        return True
    return True


def clean_stale_metrics(folder: str | None = None) -> list[str]:
    """Remove this user's metrics folders whose supervisor is gone: one killed with SIGKILL cannot
    remove its own, and the next gateway would leave it in /tmp for good. Each is named after its
    supervisor's pid; one named without (an older gateway's) only once it is a day old. Returns the
    folders removed."""
    removed = []
    for path in sorted(Path(folder or tempfile.gettempdir()).glob(f"{METRICS_FOLDER}*")):
        try:
            facts = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(facts.st_mode) or facts.st_uid != os.getuid():  # no symlink, nobody else's
            continue
        pid = path.name.removeprefix(METRICS_FOLDER).split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        if not pid.isdigit() and time.time() - facts.st_mtime < UNNAMED_STALE_SECONDS:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _can_listen(host: str, port: int, reuse_port: bool) -> None:
    """ValueError, said once, when the gateway could not listen on host:port (another server has the
    port, or the address is not this machine's): else every worker would fail in turn, and the
    supervisor would take it for a crash loop."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = "stop what holds it, or choose another --port"
        else:
            hint = "--host takes an address or name of this machine, such as 127.0.0.1 or 0.0.0.0"
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})") from None


def supervise(kinds: dict[str, tuple[Callable[[], int], int]], metrics: str | None = None) -> bool:
    """Keep each kind's processes running (kind → how to start one, how many): one that dies is
    started again (a crash loop stops the gateway instead); SIGTERM or Ctrl-C stops them all and
    waits for them to drain. `metrics`: the folder they share their metrics in (a dead process's
    live gauges are taken out of it). True when it stopped them for a crash loop."""
    children = {start(): kind for kind, (start, count) in kinds.items() for _ in range(count)}
    stopping = crashed = False
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
        kind = children.pop(pid, None)
        if metrics is not None and kind is not None:
            process_gone(metrics, pid)
        if stopping or kind is None:
            continue
        log.error("%s %d stopped (%s); starting another", kind, pid, _how(status))
        now = time.monotonic()
        if len(restarts) == RESTARTS_ALLOWED and now - restarts[0] < RESTART_WINDOW:
            log.error("%d processes stopped within %.0f s: stopping the gateway", RESTARTS_ALLOWED, RESTART_WINDOW)
            stop(signal.SIGTERM, None)
            crashed = True
            continue
        restarts.append(now)
        children[kinds[kind][0]()] = kind
    return crashed


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
