"""core/logsetup.py: the service's records skip what its format never prints."""

from __future__ import annotations

import io
import logging

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
