"""How ``callshield serve`` logs: one line per record, to standard error (journald under systemd).

The gate writes one INFO line per decision, on the dial-time path, so a record costs only what the
format prints: no thread, process or asyncio task names and no caller lookup (the stack walk the
logging HOWTO's "Optimization" section tells how to skip), the date and time formatted once per
second, and INFO lines written out in blocks: a WARNING or worse at once (with whatever waited
before it), the rest at least every :data:`FLUSH_INTERVAL` seconds and when logging shuts down.
Operators who want another format or destination configure the ``callshield`` logger with the
standard logging module as usual.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FLUSH_INTERVAL = 0.2
"""Seconds an INFO line may wait in the buffer."""


def configure(level: str) -> None:
    """Set up the root logger at ``level``, to standard error."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):  # Python 3.12+
        logging.logAsyncioTasks = False
    logging._srcfile = None  # no findCaller(): FORMAT has no %(pathname)s
    if logging.getLogger().handlers:
        return  # configured already (as logging.basicConfig would leave it)
    stream = open(  # noqa: SIM115 (lives as long as the process, closed by logging.shutdown)
        sys.stderr.fileno(), "w", buffering=io.DEFAULT_BUFFER_SIZE, encoding="utf-8",
        errors="backslashreplace", closefd=False,
    )  # fmt: skip
    handler = BlockHandler(stream)
    handler.setFormatter(SecondsFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    threading.Thread(target=_flush_forever, args=(handler,), name="log-flush", daemon=True).start()


class SecondsFormatter(logging.Formatter):
    """The default ``asctime`` (``2026-11-28 11:23:24,199``), its date and time formatted once a second."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"


class BlockHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes INFO and below into the stream's buffer, WARNING and up through."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _flush_forever(handler: logging.Handler) -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        handler.flush()  # takes the handler's lock
