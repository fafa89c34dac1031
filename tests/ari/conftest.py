"""Fixtures for the ARI tests: a fake Asterisk on loopback and a client connected to it."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ari_captures import check_shape
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.rest import basic_auth
from fake_ari import FakeAri
from raw_ari import Sockets

APP = "shield"
PHONE_NUMBERS = ("5551234", "5550000", "5550005", "5559999", "5557001", "13800138000", "13900139000")
"""Numbers the tests put into channels: none may reach callshield's log lines."""


@pytest.fixture(autouse=True)
def no_numbers_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture callshield's logs at DEBUG and fail if a phone number shows up in them."""
    caplog.set_level(logging.DEBUG, logger="callshield")
    yield caplog
    leaked = [n for n in PHONE_NUMBERS if n in caplog.text]
    assert not leaked, f"phone numbers in callshield logs: {leaked}"


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    """A started :class:`FakeAri` (user ``shield``, password ``shieldpass``).

    After the test, every event it sent must have the key order of a captured event.
    """
    async with FakeAri() as fake:
        yield fake
    for sent in fake.sent:
        check_shape(sent.event)


@pytest.fixture
async def http(fake_ari: FakeAri) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw aiohttp session with the fake's basic-auth credentials."""
    headers = {"Authorization": basic_auth(fake_ari.username, fake_ari.password)}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


@pytest.fixture
def ari_config(fake_ari: FakeAri) -> AriConfig:
    """Client settings pointing at ``fake_ari``, application ``shield``, short timeouts."""
    return AriConfig(
        url=fake_ari.url,
        username=fake_ari.username,
        password=fake_ari.password,
        app=APP,
        request_timeout=1.0,
        connect_timeout=1.0,
    )


@pytest.fixture
async def ari_client(ari_config: AriConfig) -> AsyncIterator[AriClient]:
    """An :class:`AriClient` on ``fake_ari`` (closed after the test)."""
    async with AriClient(ari_config) as client:
        yield client


@pytest.fixture
async def sockets(http: aiohttp.ClientSession, fake_ari: FakeAri) -> AsyncIterator[Sockets]:
    """Raw events websockets on ``fake_ari``: ``ws = await sockets.open("shield")``."""
    opened = Sockets(http, fake_ari)
    yield opened
    await opened.close()
