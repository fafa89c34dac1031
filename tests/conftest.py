"""Fixtures shared by every test folder: keys, clocks, stores on real files."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from callshield.store.base import ShieldStore
from callshield.store.sqlite import SqliteStore


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The store backends every contract test runs against."""
    return str(request.param)


@pytest.fixture
async def store(backend: str, key: bytes, tmp_path: Path) -> AsyncIterator[ShieldStore]:
    opened = await SqliteStore.open(tmp_path / "shield.db", key)
    try:
        yield opened
    finally:
        await opened.close()
