"""The access log: one JSON line per request, written a batch at a time.

`banyan serve` gives the `banyan.access` logger one `BatchedLines` handler. The gateway then hands
it each line directly (`writer`): building a LogRecord and formatting it "%(message)s" is a tenth
of a passthrough call's cost, and says nothing the line does not. Any other logging set-up (an
application embedding the gateway, a test) is used as configured, through the logger.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TextIO

ACCESS = logging.getLogger("banyan.access")
PLAIN = logging.Formatter("%(message)s")  # the lines are JSON already; `writer` knows this one


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

    def emit(self, record: logging.LogRecord) -> None:  # `handle` holds the lock
        self.buffer.append(self.format(record))
        if len(self.buffer) >= self.limit:
            self.flush()

    def write(self, line: str) -> None:
        """One line as it is, without a LogRecord: the access log's way in (see `writer`)."""
        self.acquire()
        try:
            self.buffer.append(line)
            if len(self.buffer) >= self.limit:
                self.flush()
        finally:
            self.release()

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


def writer(logger: logging.Logger = ACCESS) -> Callable[[str], None] | None:
    """How the gateway writes an access line: None when the access log is off, straight into the
    batch when the logger's one handler is serve's, else through the logger."""
    if not logger.isEnabledFor(logging.INFO):
        return None
    handlers = logger.handlers
    if len(handlers) == 1 and type(handlers[0]) is BatchedLines and not logger.filters and not handlers[0].filters:
        formatter = handlers[0].formatter
        if formatter is PLAIN and not logger.propagate:
            return handlers[0].write
    return logger.info
