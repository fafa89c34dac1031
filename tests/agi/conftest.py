"""Fixtures for the FastAGI tests.

Helpers are modules of this folder, imported flat (``fake_asterisk``, ``fake_agi_channel``,
``agi_hostile_peers``, ``agi_capture``): this conftest puts the folder on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

PHONE_NUMBERS = ("5551234", "5550000", "5558888", "5559999")
"""Numbers used by the capture and the fakes: none may ever reach a log line in plaintext."""


@pytest.fixture(autouse=True)
def no_numbers_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture callshield's logs at DEBUG, and fail the test if a phone number appears in them."""
    caplog.set_level(logging.DEBUG, logger="callshield")
    yield caplog
    leaked = [n for n in PHONE_NUMBERS if n in caplog.text]
    assert not leaked, f"phone numbers in the log: {leaked}\n{caplog.text}"


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """Collect what reaches the event loop's exception handler; the test fails if anything does.

    That catches "Task exception was never retrieved", "Task was destroyed but it is pending"
    and exceptions in transport callbacks.
    """
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert errors == []
