"""The ARI password and api_key never reach a log line, a repr or an exception (with its traceback)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import replace

import pytest
from callshield.ari.client import AriClient, AriConfig
from callshield.errors import CallShieldError
from fake_ari import FakeAri

SECRET = "s3cr3t-Pa55w0rd"


def _rendered(exc: BaseException) -> str:
    """Everything a log handler would print for ``exc`` (message, chain, traceback)."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


async def _failures(fake: FakeAri, config: AriConfig) -> list[CallShieldError]:
    failures: list[CallShieldError] = []

    async def expect(attempt: object) -> None:
        assert asyncio.iscoroutine(attempt)
        with pytest.raises(CallShieldError) as caught:
            await attempt
        failures.append(caught.value)

    async with AriClient(replace(config, password="wrong-" + SECRET)) as wrong:
        await expect(wrong.list_channels())
        await expect(wrong.events().connect())
    async with AriClient(replace(config, request_timeout=0.1)) as client:
        fake.add_fault(path="/channels", hang=True)
        await expect(client.list_channels())
        fake.add_fault(path="/events", status=500)
        await expect(client.events().connect())
        stream = client.events()
        await stream.connect()
        await fake.wait_connected(config.app)
        await fake.drop_websockets()
        await expect(stream.__anext__())
    await fake.close()
    async with AriClient(config) as client:
        await expect(client.get_application())
        await expect(client.events().connect())
    return failures


async def test_secrets_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: callshield's and aiohttp's
    async with FakeAri(password=SECRET) as fake:
        config = AriConfig(fake.url, fake.username, SECRET, app="shield", connect_timeout=0.5)
        failures = await _failures(fake, config)
        assert repr(config).count(SECRET) == 0
        async with AriClient(config) as client:
            assert SECRET not in repr(client) and SECRET not in repr(client.events())
    assert len(failures) == 7
    for failure in failures:
        assert SECRET not in _rendered(failure), _rendered(failure)
    assert caplog.records, "the client logs its failures"
    assert SECRET not in caplog.text
    for recorded in fake.requests:
        assert SECRET not in repr(recorded)
