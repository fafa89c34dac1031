"""core/logsetup.py: the service's records skip what its format never prints."""

from __future__ import annotations

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
