"""`banyan serve`: its access log (JSON lines, a batch at a time, nothing lost on a normal stop), its
event loop and its supervisor."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.access_log import PLAIN, BatchedLines, writer
from gateway.consumers import Consumer
from gateway.policies import CONSUMER, CORRELATION_ID, ENTITY, ROUTE_NAME, SPAN, access_line
from gateway.tracing import Span


def _record(n: int) -> logging.LogRecord:
    return logging.LogRecord("banyan.access", logging.INFO, __file__, 1, json.dumps({"n": n}), None, None)


def test_lines_wait_for_a_full_batch_or_the_timer() -> None:
    stream = io.StringIO()
    handler = BatchedLines(stream, lines=3, seconds=60)
    for n in range(2):
        handler.handle(_record(n))
    assert stream.getvalue() == ""  # buffered: no write per request
    handler.handle(_record(2))
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2]
    handler.close()


def test_the_timer_writes_a_quiet_moment_out() -> None:
    stream = io.StringIO()
    handler = BatchedLines(stream, lines=100, seconds=0.05)
    handler.handle(_record(7))
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == '{"n": 7}\n'
    handler.close()


def test_closing_writes_what_is_buffered_in_order() -> None:
    stream = io.StringIO()
    handler = BatchedLines(stream, lines=1000, seconds=60)
    for n in range(50):
        handler.handle(_record(n))
    handler.close()
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == list(range(50))


@pytest.mark.parametrize(
    "path, route, entity, consumer",
    [
        ("/v1/ACME-DE/orders", "order-create", "ACME-DE", "shop"),
        ('/v1/"quoted"\\back/é€😀/\u0007', None, None, None),  # what a hostile path may carry
    ],
)
def test_an_access_line_is_the_json_object_of_its_fields(
    path: str, route: str | None, entity: str | None, consumer: str | None
) -> None:
    request = make_mocked_request("POST", "/")
    request = request.clone(rel_url=path)
    request[CORRELATION_ID] = "c-1"
    if route is not None:
        request[ROUTE_NAME], request[ENTITY] = route, str(entity)
        request[CONSUMER] = Consumer(name=str(consumer), key_sha256="0" * 64)
        request[SPAN] = Span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    line = access_line(request, 201, time.perf_counter())
    fields = json.loads(line)
    assert line == json.dumps(fields)  # exactly what json.dumps writes, key order included
    assert list(fields) == [
        "correlation_id",
        "method",
        "path",
        "route",
        "entity",
        "consumer",
        "status",
        "ms",
        "trace_id",
    ]
    assert (fields["path"], fields["route"], fields["consumer"], fields["status"]) == (
        request.path,
        route,
        consumer,
        201,
    )
    assert fields["trace_id"] == ("0af7651916cd43dd8448eb211c80319c" if route else None)


def test_the_gateway_writes_straight_into_serves_batch_and_otherwise_through_the_logger() -> None:
    logger = logging.getLogger("banyan.test-access")
    logger.propagate, logger.handlers = False, []
    logger.setLevel(logging.WARNING)
    assert writer(logger) is None  # the access log is off
    logger.setLevel(logging.INFO)
    stream = io.StringIO()
    batched = BatchedLines(stream, lines=1, seconds=60)
    batched.setFormatter(PLAIN)
    logger.addHandler(batched)
    write = writer(logger)
    assert write == batched.write
    write('{"n": 1}')
    assert stream.getvalue() == '{"n": 1}\n'
    batched.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # someone formats the lines: use it
    assert writer(logger) == logger.info
    logger.removeHandler(batched)
    batched.close()


def test_what_the_gateway_built_at_start_is_left_out_of_full_collections() -> None:
    import asyncio
    import gc

    from aiohttp import web

    from gateway.serve import _freeze_what_started

    assert gc.get_freeze_count() == 0
    try:
        asyncio.run(_freeze_what_started(web.Application()))
        assert gc.get_freeze_count() > 1000  # the interpreter, pytest and the gateway's modules
    finally:
        gc.unfreeze()


def test_the_loop_lag_histogram_sees_a_stall_of_the_loop() -> None:
    import asyncio

    from gateway.metrics import Metrics

    metrics = Metrics()

    async def main() -> None:
        watch = asyncio.ensure_future(metrics.watch_loop(every=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # something holds the loop
        await asyncio.sleep(0.05)
        watch.cancel()

    asyncio.run(main())
    rendered = metrics.render().decode()
    count = float(
        next(
            line.split()[-1] for line in rendered.splitlines() if line.startswith("banyan_event_loop_lag_seconds_count")
        )
    )
    worst = float(
        next(
            line.split()[-1]
            for line in rendered.splitlines()
            if line.startswith('banyan_event_loop_lag_seconds_bucket{le="0.1"}')
        )
    )
    assert count >= 3 and worst < count  # one observation was over 0.1 s: the 0.3 s the loop was held


def test_a_process_serving_nobody_keeps_its_lag_out_and_still_sets_its_gauges() -> None:
    import asyncio

    from gateway.metrics import Metrics

    metrics, set_ = Metrics(), []

    async def main() -> None:
        watch = asyncio.ensure_future(metrics.watch_loop(every=0.01, gauges=lambda: set_.append(1), lag=False))
        await asyncio.sleep(0.1)
        watch.cancel()

    asyncio.run(main())
    assert "banyan_event_loop_lag_seconds_count 0.0" in metrics.render().decode() and set_


def test_a_crash_loop_stops_the_supervisor_which_says_so() -> None:
    import os
    import signal

    from gateway.serve import _child, supervise

    def crash() -> None:
        raise RuntimeError("a worker that cannot start")

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        parent = os.getpid()
        assert supervise({"worker": (lambda: _child(crash, parent), 1)}) is True
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])


def test_a_killed_supervisors_metrics_folder_goes_when_the_next_gateway_starts(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no moment to remove the folder its workers share their metrics
    in; the next gateway to serve on the machine removes it, and leaves a live gateway's alone."""
    import os
    import signal
    import subprocess
    import sys

    from tests.gateway.conftest import SERVED, serve_process

    environment = {"TMPDIR": str(tmp_path)}
    routes = str(tmp_path / "routes")
    Path(routes).mkdir()
    (Path(routes) / "none.yaml").write_text("routes: []\n")
    serving = ("--routes", routes, "--insecure-no-auth", "--workers", "2")
    with serve_process(*serving, env=environment) as url:
        supervisor = SERVED[url]
        [left] = list(tmp_path.glob("banyan-metrics-*"))
        assert left.name.startswith(f"banyan-metrics-{supervisor.pid}-")
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=10)
        # the workers die with it (PR_SET_PDEATHSIG); the folder stays
        os.killpg(supervisor.pid, signal.SIGKILL)
    assert left.is_dir()
    unnamed = tmp_path / "banyan-metrics-k2v9x1"  # an older gateway's, made a moment ago: kept
    unnamed.mkdir()
    with serve_process(*serving, env=environment) as url:
        now = sorted(path.name for path in tmp_path.glob("banyan-metrics-*"))
        assert left.name not in now and unnamed.name in now and len(now) == 2
        # a second gateway beside it leaves the live one's folder alone
        second = subprocess.run(
            [sys.executable, "-c", "from gateway.serve import clean_stale_metrics as c; print(c())"],
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert second.stdout.strip() == "[]"
