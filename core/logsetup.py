"""How ``callshield serve`` logs: one line per record, to standard error (journald under systemd).

The gate writes one INFO line per decision, on the dial-time path, so the records carry only what
the format prints: no thread, process or asyncio task names and no caller lookup (the stack walk
the logging HOWTO's "Optimization" section tells how to skip). Operators who want another format
or destination configure the ``callshield`` logger with the standard logging module as usual.
"""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, filename: Path | None = None) -> None:
    """Set up the root logger at ``level`` (to ``filename`` instead of standard error if given)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):  # Python 3.12+
        logging.logAsyncioTasks = False
    logging._srcfile = None  # no findCaller(): FORMAT has no %(pathname)s
    if filename is None:
        logging.basicConfig(level=level, format=FORMAT)
    else:
        logging.basicConfig(level=level, format=FORMAT, filename=filename, filemode="w")
