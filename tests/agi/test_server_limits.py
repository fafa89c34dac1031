"""callshield.agi.server against hostile peers, under concurrency, and at shutdown.

No timing assertions: time bounds only prove that nothing hangs forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import agi_hostile_peers
import pytest
from agi_hostile_peers import PeerOutcome
from callshield.agi import AgiServer, AgiSession
from callshield.errors import PeerUnavailable
from fake_asterisk import FakeAsterisk, eventually

pytestmark = pytest.mark.usefixtures("loop_errors")


async def gate(session: AgiSession) -> None:
    await session.set_variable("SHIELD_RESULT", "BLOCK")


def serve(header_timeout: float = 10.0, handler: Callable[[AgiSession], Awaitable[None]] = gate) -> AgiServer:
    return AgiServer({"callshield/gate": handler}, "127.0.0.1", 0, header_timeout=header_timeout)


def problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records at ERROR or above, or with a traceback: hostile peers must cause none."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


HOSTILE: dict[str, tuple[Callable[[int], Awaitable[PeerOutcome]], str]] = {
    "1 MB line": (agi_hostile_peers.huge_line, "line longer than 8192 bytes"),
    "garbage bytes": (agi_hostile_peers.garbage, "is not 'agi_<name>: value'"),
    "HTTP request": (agi_hostile_peers.http_request, "is not 'agi_<name>: value'"),
    "non-UTF-8": (agi_hostile_peers.non_utf8, "is not 'agi_<name>: value'"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_peer_is_logged_and_disconnected(name: str, caplog: pytest.LogCaptureFixture) -> None:
    peer, message = HOSTILE[name]
    async with serve() as server:
        outcome = await peer(server.port)
        await eventually(lambda: server.active_sessions == 0)
        fake = await FakeAsterisk(server.port).run()  # the server still serves
    assert outcome.closed_by_server
    assert outcome.received == b""
    assert [r.levelname for r in caplog.records if message in r.getMessage()] == ["WARNING"]
    assert not problems(caplog)
    assert fake.variables == {"SHIELD_RESULT": "BLOCK"}


async def test_half_header_then_close_ends_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async with serve() as server:
        await agi_hostile_peers.half_header_then_close(server.port)
        await eventually(lambda: server.active_sessions == 0)
    assert "left before the end of the AGI header block" in caplog.text
    assert not problems(caplog)


async def test_stalled_peer_is_closed_after_the_header_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(header_timeout=0.2) as server:
        outcome = await agi_hostile_peers.half_header_then_stall(server.port, watch=30)
    assert outcome.closed_by_server and outcome.received == b""
    assert "no complete AGI header block within 0.2 s" in caplog.text
    assert not problems(caplog)


async def test_stalled_peer_does_not_delay_another_session() -> None:
    async with serve(header_timeout=60) as server:
        stalled = asyncio.create_task(agi_hostile_peers.half_header_then_stall(server.port, watch=60))
        await eventually(lambda: server.active_sessions == 1)
        fake = await FakeAsterisk(server.port).run()
        assert not stalled.done()  # the stalled peer is still connected, still waiting
        assert fake.variables == {"SHIELD_RESULT": "BLOCK"} and fake.closed_by_server
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled


async def test_many_concurrent_sessions_leave_no_task_behind() -> None:
    async with serve() as server:
        hostile = [
            asyncio.create_task(agi_hostile_peers.half_header_then_close(server.port)) for _ in range(10)
        ]
        fakes = await asyncio.gather(*(FakeAsterisk(server.port).run() for _ in range(50)))
        await asyncio.gather(*hostile)
        await eventually(lambda: server.active_sessions == 0)
    assert all(f.variables == {"SHIELD_RESULT": "BLOCK"} and f.closed_by_server for f in fakes)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_close_lets_sessions_in_flight_finish() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_gate(session: AgiSession) -> None:
        started.set()
        await release.wait()
        await session.set_variable("SHIELD_RESULT", "ALLOW")

    server = serve(handler=slow_gate)
    await server.start()
    fake = asyncio.create_task(FakeAsterisk(server.port).run())
    await started.wait()
    port = server.port
    closing = asyncio.create_task(server.close(grace=30))
    await asyncio.sleep(0.05)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert not closing.done()
    release.set()
    await closing
    assert (await fake).variables == {"SHIELD_RESULT": "ALLOW"}
    assert server.active_sessions == 0


async def test_close_cancels_sessions_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def stuck(session: AgiSession) -> None:
        started.set()
        await asyncio.Event().wait()

    server = serve(handler=stuck)
    await server.start()
    fake = asyncio.create_task(FakeAsterisk(server.port, idle_timeout=60).run())
    await started.wait()
    await server.close(grace=0.1)
    done = await fake
    assert done.closed_by_server and not done.idle_timed_out
    assert server.active_sessions == 0
    assert "cancelling 1 FastAGI sessions" in caplog.text


async def test_session_is_unusable_after_the_handler_returned() -> None:
    kept: list[AgiSession] = []

    async def leaky(session: AgiSession) -> None:
        kept.append(session)

    async with serve(handler=leaky) as server:
        await FakeAsterisk(server.port).run()
    with pytest.raises(PeerUnavailable, match="closed"):
        await kept[0].set_variable("SHIELD_RESULT", "BLOCK")


async def test_start_on_a_busy_port_raises_peer_unavailable() -> None:
    async with serve() as first:
        second = AgiServer({}, "127.0.0.1", first.port)
        with pytest.raises(PeerUnavailable, match="cannot listen"):
            await second.start()
    await second.close()  # closing a server that never started is a no-op


async def test_start_twice_is_refused_and_close_is_idempotent() -> None:
    server = serve()
    await server.start()
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await asyncio.gather(server.close(), server.close())
    await server.close()
