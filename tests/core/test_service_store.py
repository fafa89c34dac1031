"""``callshield serve`` waits for a store that is not up yet (PostgreSQL after a reboot) instead of
exiting; it gives up at once on errors that waiting would not mend."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from callshield import service
from callshield.ari.connection import Backoff
from callshield.errors import ConfigError, StoreCorrupt, StoreUnavailable
from callshield.store.base import ShieldStore
from callshield.store.sqlite import SqliteStore

QUICK = (0.01, 0.02)
"""First wait and cap of the retries, in seconds."""
DOWN = "store postgresql://shield@db/callshield is unavailable: Connection refused"


Opener = Callable[[str, bytes], Awaitable[ShieldStore]]


def flaky(tmp_path: Path, failures: list[Exception]) -> tuple[list[str], Opener]:
    """An ``open_store`` that raises ``failures`` in turn, then opens a real SQLite store."""
    tried: list[str] = []

    async def open_store(location: str, key: bytes) -> ShieldStore:
        tried.append(location)
        if failures:
            raise failures.pop(0)
        return await SqliteStore.open(tmp_path / "shield.db", key)

    return tried, open_store


async def test_an_unavailable_store_is_waited_for_and_each_reason_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[Exception] = [StoreUnavailable(DOWN) for _ in range(3)]
    failures.append(StoreUnavailable("store x: no schema"))
    tried, open_store = flaky(tmp_path, failures)
    monkeypatch.setattr(service, "open_store", open_store)
    with caplog.at_level(logging.INFO, logger="callshield.service"):
        store = await service.open_store_patiently(
            "postgresql://db", os.urandom(32), asyncio.Event(), Backoff(0.01, 0.02)
        )
    assert store is not None
    await store.close()
    assert len(tried) == 5
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [e.split(";")[0] for e in errors] == [DOWN, "store x: no schema"]  # once per reason
    assert caplog.records[-1].getMessage() == "the store answers; starting the gate"


async def test_a_stop_while_waiting_ends_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down: list[Exception] = [StoreUnavailable(DOWN)] * 1000
    tried, open_store = flaky(tmp_path, down)
    monkeypatch.setattr(service, "open_store", open_store)
    stop = asyncio.Event()
    patient = service.open_store_patiently("postgresql://db", os.urandom(32), stop, Backoff(*QUICK))
    waiting = asyncio.create_task(patient)
    await asyncio.sleep(0.1)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) is None
    assert 2 <= len(tried) < 20  # tried again, with waits that grow to the cap


@pytest.mark.parametrize(
    "error", [ConfigError("store x refused the login"), StoreCorrupt("store x is damaged")]
)
async def test_errors_that_waiting_would_not_mend_are_raised_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    tried, open_store = flaky(tmp_path, [error])
    monkeypatch.setattr(service, "open_store", open_store)
    with pytest.raises(type(error)):
        await service.open_store_patiently(
            "postgresql://db", os.urandom(32), asyncio.Event(), Backoff(0.01, 0.02)
        )
    assert len(tried) == 1
