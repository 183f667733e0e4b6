"""Run the gateway: one process, or N processes sharing one port (SO_REUSEPORT), draining on shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import TextIO

from aiohttp import web

from cutover.store import open_store
from gateway.app import Settings, build_app, compile_table

SHUTDOWN_SECONDS = 15.0  # in-flight requests get this long to finish on SIGTERM or Ctrl-C


class BatchedLines(logging.Handler):
    """Log lines written a batch at a time: one write for up to `lines` records or `seconds`, instead
    of a write and a flush per request. A process killed outright loses at most that last moment of
    access log; a normal stop (and logging's exit hook) writes what is buffered."""

    def __init__(self, stream: TextIO, lines: int = 512, seconds: float = 0.25) -> None:
        super().__init__()
        self.stream, self.limit, self.seconds = stream, lines, seconds
        self.buffer: list[str] = []
        self._stop = threading.Event()
        threading.Thread(target=self._tick, name="access-log", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.append(self.format(record))
        if len(self.buffer) >= self.limit:
            self.flush()

    def flush(self) -> None:
        self.acquire()  # the lock `handle` holds around `emit`: the tick thread and requests take turns
        try:
            lines, self.buffer = self.buffer, []
            if lines:
                with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr: nothing to do
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
        finally:
            self.release()

    def _tick(self) -> None:
        while not self._stop.wait(self.seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


def _logging() -> None:
    # Nothing we log shows the caller, thread or process, so logging need not look them up on every
    # record: the logging HOWTO's "Optimization" settings, worth a tenth of a request per access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedLines(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("banyan.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _one(settings: Settings, host: str, port: int, reuse_port: bool, access_log: bool) -> None:
    try:
        import uvloop  # a faster event loop where it is installed

        uvloop.install()
    except ImportError:
        pass
    if not access_log:
        logging.getLogger("banyan.access").setLevel(logging.WARNING)
    web.run_app(
        build_app(settings),
        host=host,
        port=port,
        reuse_port=reuse_port,
        shutdown_timeout=SHUTDOWN_SECONDS,
        access_log=None,
        print=None,
    )


def serve(settings: Settings, host: str, port: int, workers: int, access_log: bool = True) -> None:
    _logging()
    compile_table(settings.routes)  # validate routes before forking, so a bad folder fails once and clearly
    if settings.store:
        open_store(settings.store).close()  # reachable, and migrated once before the workers start
    if workers <= 1:
        _one(settings, host, port, False, access_log)
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            _one(settings, host, port, True, access_log)
            os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)
