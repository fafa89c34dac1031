"""core/logsetup.py: the service's records skip what its format never prints."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest
from callshield import logsetup


def test_records_carry_no_thread_process_or_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for flag in ("logThreads", "logProcesses", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))  # restored after the test
    logsetup.configure("INFO")
    with caplog.at_level(logging.INFO, logger="callshield.test"):
        logging.getLogger("callshield.test").info("decision %s", "+86138****8000")
    (record,) = caplog.records
    assert record.getMessage() == "decision +86138****8000"
    assert (record.threadName, record.processName, record.process) == (None, None, None)
    assert record.funcName == "(unknown function)"  # no stack walk per record


def test_seconds_formatter_prints_what_the_default_one_does() -> None:
    plain, cached = logging.Formatter(logsetup.FORMAT), logsetup.SecondsFormatter(logsetup.FORMAT)
    for created in (1_764_329_004.199, 1_764_329_004.2, 1_764_329_005.0, 1_764_329_005.999, 1_764_329_004.5):
        record = logging.makeLogRecord(
            {"name": "callshield.x", "msg": "m", "levelno": 20, "levelname": "INFO"}
        )
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert cached.format(record) == plain.format(record)


class Stream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_block_handler_flushes_warnings_at_once_and_info_when_asked() -> None:
    stream = Stream()
    handler = logsetup.BlockHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    info = logging.makeLogRecord({"msg": "decided", "levelno": logging.INFO, "levelname": "INFO"})
    warning = logging.makeLogRecord({"msg": "lost", "levelno": logging.WARNING, "levelname": "WARNING"})
    handler.handle(info)
    assert (stream.getvalue(), stream.flushes) == ("INFO decided\n", 0)
    handler.handle(warning)
    assert (stream.getvalue(), stream.flushes) == ("INFO decided\nWARNING lost\n", 1)
    handler.flush()
    assert stream.flushes == 2


@pytest.fixture
def own_logger(monkeypatch: pytest.MonkeyPatch) -> tuple[logging.Logger, Stream]:
    """A logger whose records go to a BlockHandler with serve's formatter alone, at a fixed time.

    It does not propagate (pytest's handlers sit on the root logger); pytest also attaches its
    handler to non-propagating loggers when a test phase starts, so :func:`alone` takes it off
    again in the test body.
    """
    monkeypatch.setattr(time, "time", lambda: 1_764_329_004.1995)  # also LogRecord's clock
    stream = Stream()
    handler = logsetup.BlockHandler(stream)
    handler.setFormatter(logsetup.SecondsFormatter(logsetup.FORMAT))
    logger = logging.getLogger("callshield.test.infoline")
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    return logger, stream


def alone(logger: logging.Logger) -> None:
    """Leave only the fixture's BlockHandler on ``logger`` (see :func:`own_logger`)."""
    logger.handlers[:] = [h for h in logger.handlers if isinstance(h, logsetup.BlockHandler)]


def no_records(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("the standard path made a LogRecord")

    monkeypatch.setattr(logger, "makeRecord", refuse)


def test_info_line_writes_what_logger_info_writes(
    own_logger: tuple[logging.Logger, Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = own_logger
    alone(logger)
    logger.info("gate %s %s channel=%s", "+86138****8000", "ALLOW", "1795849090.0")
    no_records(logger, monkeypatch)  # from here on, only the direct path can write
    logsetup.InfoLine(logger)("gate %s %s channel=%s", "+86138****8000", "ALLOW", "1795849090.0")
    logsetup.InfoLine(logger)("no arguments, 100% literal")
    first, second, third = stream.getvalue().splitlines()
    assert first == second
    stamp, _, rest = first.partition(" INFO ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,199", stamp)  # local time, as logging's
    assert rest == "callshield.test.infoline: gate +86138****8000 ALLOW channel=1795849090.0"
    assert third.endswith("callshield.test.infoline: no arguments, 100% literal")
    assert stream.flushes == 0  # INFO waits for the block


def test_info_line_takes_the_standard_path_when_anything_else_listens(
    own_logger: tuple[logging.Logger, Stream], caplog: pytest.LogCaptureFixture
) -> None:
    logger, stream = own_logger
    alone(logger)
    info = logsetup.InfoLine(logger)
    logger.addFilter(lambda record: "secret" not in record.getMessage())
    info("keep %s", "this")
    info("drop %s", "secret")  # the logger's filter still applies
    logger.filters.clear()
    logger.propagate = True  # now pytest's handler on the root logger hears it too
    with caplog.at_level(logging.INFO, logger="callshield.test.infoline"):
        info("heard %s", "by caplog")
    assert [r.getMessage() for r in caplog.records] == ["heard by caplog"]
    assert caplog.records[0].funcName == "test_info_line_takes_the_standard_path_when_anything_else_listens"
    written = [line.partition(": ")[2] for line in stream.getvalue().splitlines()]
    assert written == ["keep this", "heard by caplog"]


def test_info_line_honours_the_level_and_another_format(
    own_logger: tuple[logging.Logger, Stream], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, stream = own_logger
    alone(logger)
    info = logsetup.InfoLine(logger)
    logger.setLevel(logging.WARNING)
    info("not written %s", 1)
    logger.setLevel(logging.INFO)
    logger.handlers[0].setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    info("written %s", 2)
    info("%d is not a number", "x")  # a bad format: reported by logging, never raised
    assert stream.getvalue() == "INFO|written 2\n"
    assert "Message: '%d is not a number'" in capsys.readouterr().err


class Broken(Stream):
    def write(self, text: str) -> int:
        raise OSError("stderr is gone")


def test_info_line_never_raises_when_the_stream_fails(
    own_logger: tuple[logging.Logger, Stream], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, _ = own_logger
    alone(logger)
    logger.handlers[0].setStream(Broken())  # type: ignore[attr-defined]
    logsetup.InfoLine(logger)("decided %s", "+86138****8000")  # no exception: logging's report
    assert "stderr is gone" in capsys.readouterr().err
