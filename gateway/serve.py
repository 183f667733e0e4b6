"""Run the gateway: one process, or N processes sharing one port (SO_REUSEPORT), draining on shutdown."""

from __future__ import annotations

import logging
import os
import signal
import sys

from aiohttp import web

from cutover.store import open_store
from gateway.app import Settings, build_app, compile_table

SHUTDOWN_SECONDS = 15.0  # in-flight requests get this long to finish on SIGTERM or Ctrl-C


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
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
