"""How `banyan serve` writes its access log: JSON lines, a batch at a time, nothing lost on a normal stop."""

from __future__ import annotations

import io
import json
import logging
import time

from gateway.serve import BatchedLines


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
