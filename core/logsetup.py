"""How ``callshield serve`` logs: one line per record, to standard error (journald under systemd).

The gate writes one INFO line per decision, on the dial-time path, so a record costs only what the
format prints: no thread, process or asyncio task names and no caller lookup (the stack walk the
logging HOWTO's "Optimization" section tells how to skip), the date and time formatted once per
second, and INFO lines written out in blocks: a WARNING or worse at once (with whatever waited
before it), the rest at least every :data:`FLUSH_INTERVAL` seconds and when logging shuts down.
The per-decision lines themselves go through :class:`InfoLine`, which writes the same line into
the same buffer without the logging machinery's per-record work when nothing else listens.
Operators who want another format or destination configure the ``callshield`` logger with the
standard logging module as usual.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Mapping
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
        return self.stamp(record.created, int(record.msecs))

    def stamp(self, created: float, msecs: int) -> str:
        """``asctime`` of a record made at ``created`` (``msecs``: its milliseconds, as LogRecord
        computes them)."""
        second = int(created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._second = second
        return f"{self._text},{msecs:03d}"


class BlockHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes INFO and below into the stream's buffer, WARNING and up through."""

    _stamper: SecondsFormatter | None = None
    """The formatter when it prints exactly :data:`FORMAT` (then :meth:`write_info` may be used)."""

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        super().setFormatter(fmt)
        exact = isinstance(fmt, SecondsFormatter) and fmt._fmt == FORMAT and fmt.datefmt is None
        self._stamper = fmt if exact and isinstance(fmt, SecondsFormatter) else None

    def write_info(self, name: str, message: str) -> bool:
        """Write the INFO line :data:`FORMAT` makes of ``message`` from logger ``name``, as
        :meth:`emit` would; False (nothing written) if this handler does not print :data:`FORMAT`,
        or if the write failed (the caller then takes the standard path, which reports it: like
        any logging call, this never raises into the code that logs)."""
        stamper = self._stamper
        if stamper is None or self.level > logging.INFO or self.filters:
            return False
        created = time.time()
        line = f"{stamper.stamp(created, int((created - int(created)) * 1000))} INFO {name}: {message}\n"
        try:
            with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
                self.stream.write(line)
        except Exception:
            return False
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class InfoLine:
    """``logger.info(msg, *args)`` for the lines written on the dial-time path (one per decision).

    The standard path builds a LogRecord with some twenty attributes and walks the logger and
    handler filters, locks and a Formatter pass: 3.7 µs a line on a warm loop, against 1.6 µs
    here, and more inside a busy service, where a decision's own Python costs about as much. When
    the line's only destination is :func:`configure`'s handler (no filter and no other handler on
    the way up, INFO enabled), this formats the same line and hands it to
    :meth:`BlockHandler.write_info`: the same bytes in the same buffer, in the same order with the
    other records. Anything else (an operator's own logging setup, pytest's ``caplog``) gets a
    plain ``logger.info``.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def __call__(self, msg: str, *args: object) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = _only_block_handler(logger)
        if handler is not None and not (len(args) == 1 and isinstance(args[0], Mapping)):
            try:
                message = msg % args if args else msg  # as LogRecord.getMessage
            except (TypeError, ValueError):
                message = None  # the standard path reports the mismatch
            if message is not None and handler.write_info(logger.name, message):
                return
        logger.info(msg, *args, stacklevel=2)


def _only_block_handler(logger: logging.Logger) -> BlockHandler | None:
    """The :class:`BlockHandler` that alone would receive ``logger``'s records, unfiltered, or None."""
    found: BlockHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, BlockHandler):
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def _flush_forever(handler: logging.Handler) -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        handler.flush()  # takes the handler's lock
