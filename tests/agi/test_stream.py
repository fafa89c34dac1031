"""callshield.agi.stream through the server: how the header block arrives, bytes read past it,
the lazily re-armed deadline, and cancellation that is not a deadline.

No timing assertions: time bounds only prove that nothing hangs forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import agi_hostile_peers
import pytest
from callshield.agi import AgiServer, AgiSession, Handler
from callshield.errors import PeerUnavailable
from fake_asterisk import FakeAsterisk, FakeCall, eventually

pytestmark = pytest.mark.usefixtures("loop_errors")


def serve(handler: Handler, *, header_timeout: float = 10.0, command_timeout: float = 10.0) -> AgiServer:
    return AgiServer(
        {"callshield/gate": handler},
        "127.0.0.1",
        0,
        header_timeout=header_timeout,
        command_timeout=command_timeout,
    )


async def raw_peer(port: int, pieces: list[bytes], replies: int) -> list[bytes]:
    """Send ``pieces`` one by one (a pause between them), then answer ``replies`` commands with
    ``200 result=1``; return the command lines received, up to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[bytes] = []
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        async with asyncio.timeout(30):
            while line := await reader.readline():
                commands.append(line)
                if len(commands) <= replies:
                    writer.write(b"200 result=1\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return commands


async def set_one(session: AgiSession) -> None:
    await session.set_variable("SHIELD_RESULT", "BLOCK")


@pytest.mark.parametrize("cut", ["bytewise", "mid-line", "before the blank line"])
async def test_header_block_arriving_in_pieces(cut: str) -> None:
    block = FakeCall().header_block()
    if cut == "bytewise":
        pieces = [block[i : i + 1] for i in range(0, 40)] + [block[40:]]
    elif cut == "mid-line":
        pieces = [block[: len(block) // 2], block[len(block) // 2 :]]
    else:
        pieces = [block[:-1], block[-1:]]
    seen: list[tuple[str, ...]] = []

    async def handler(session: AgiSession) -> None:
        seen.append(session.request.args)
        await set_one(session)

    async with serve(handler) as server:
        commands = await raw_peer(server.port, pieces, replies=1)
    assert seen == [("5551234", "company", "campaign")]
    assert commands == [b'SET VARIABLE "SHIELD_RESULT" "BLOCK"\n']


async def test_crlf_header_block_is_accepted() -> None:
    seen: list[str] = []

    async def handler(session: AgiSession) -> None:
        seen.append(session.request.uniqueid)
        await set_one(session)

    block = FakeCall().header_block().replace(b"\n", b"\r\n")
    async with serve(handler) as server:
        commands = await raw_peer(server.port, [block], replies=1)
    assert seen == ["1795847965.34"]
    assert len(commands) == 1


async def test_lines_sent_with_the_header_block_are_read_as_replies() -> None:
    """A HANGUP notice and a reply in the same segment as the header block are not lost."""
    seen: list[tuple[bool, str | None]] = []

    async def handler(session: AgiSession) -> None:
        value = await session.get_variable("CHANNEL")
        seen.append((session.hung_up, value))
        await set_one(session)

    block = FakeCall().header_block() + b"HANGUP\n200 result=1 (PJSIP/agent2-00000008)\n"
    async with serve(handler) as server:
        commands = await raw_peer(server.port, [block], replies=1)
    assert seen == [(True, "PJSIP/agent2-00000008")]
    assert commands == [b'GET VARIABLE "CHANNEL"\n', b'SET VARIABLE "SHIELD_RESULT" "BLOCK"\n']


async def test_a_short_reply_timeout_after_a_long_one_still_fires() -> None:
    """The one timer of the session, armed for a later deadline, is moved earlier."""
    errors: list[str] = []

    async def handler(session: AgiSession) -> None:
        await session.send("NOOP", reply_timeout=60)
        try:
            await session.send("NOOP", reply_timeout=0.2)
        except PeerUnavailable as exc:
            errors.append(str(exc))

    async with serve(handler, header_timeout=60, command_timeout=60) as server:
        fake = await FakeAsterisk(server.port, mute_from=1).run()
    assert errors == ["no reply to NOOP within 0.2 s"]
    assert fake.closed_by_server and not fake.idle_timed_out


async def test_a_deadline_passing_while_not_reading_does_not_fire() -> None:
    """The header timeout's timer goes off while the handler is busy elsewhere: no effect."""

    async def handler(session: AgiSession) -> None:
        await asyncio.sleep(0.3)  # longer than the header timeout; no read in progress
        await set_one(session)
        await asyncio.sleep(0.3)
        await set_one(session)

    async with serve(handler, header_timeout=0.1) as server:
        fake = await FakeAsterisk(server.port).run()
    assert fake.commands == ['SET VARIABLE "SHIELD_RESULT" "BLOCK"'] * 2
    assert fake.closed_by_server


async def test_cancellation_while_reading_is_not_taken_for_a_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reading = asyncio.Event()
    outcome: list[str] = []

    async def handler(session: AgiSession) -> None:
        reading.set()
        try:
            await set_one(session)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        except PeerUnavailable:
            outcome.append("unavailable")

    server = serve(handler, command_timeout=60)
    await server.start()
    fake = asyncio.create_task(FakeAsterisk(server.port, mute_from=0, idle_timeout=60).run())
    await reading.wait()
    await server.close(grace=0.1)
    done = await fake
    assert outcome == ["cancelled"]
    assert done.closed_by_server and not done.idle_timed_out
    assert "FastAGI session cancelled (server closing)" in caplog.text
    assert "no reply" not in caplog.text


async def test_the_socket_is_closed_once_and_early(caplog: pytest.LogCaptureFixture) -> None:
    """A handler may close itself; the server's close afterwards is a no-op."""
    after_close: list[bool] = []

    async def handler(session: AgiSession) -> None:
        await set_one(session)
        await session.close()
        await session.close()
        after_close.append(True)
        await asyncio.sleep(0.05)

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port).run()
        await eventually(lambda: server.active_sessions == 0)
    assert after_close == [True] and fake.closed_by_server
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: callshield\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"agi_network: yes\nGET",
    ],
    ids=["HTTP without its blank line", "TLS client hello", "bad second line"],
)
async def test_a_peer_that_is_not_asterisk_is_turned_away_at_once(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """No blank line ever comes; the header timeout (60 s) is not what ends it."""
    async with serve(set_one, header_timeout=60) as server:
        outcome = await agi_hostile_peers.send_and_watch(server.port, payload, watch=30)
        await eventually(lambda: server.active_sessions == 0)
    assert outcome.closed_by_server and outcome.received == b""
    assert "is not 'agi_<name>: value'" in caplog.text


async def test_deadlines_of_sessions_at_once_each_come_in_turn() -> None:
    """The server's one deadline timer: each stalled read ends at its own deadline, the first to
    come re-arms the timer for the next, and a session answered in time is not touched."""
    outcome: dict[str, str] = {}

    async def handler(session: AgiSession) -> None:
        limit = session.request.args[0]
        try:
            await session.send("NOOP", reply_timeout=float(limit))
        except PeerUnavailable as exc:
            outcome[limit] = str(exc)
        else:
            outcome[limit] = "answered"

    async with serve(handler, command_timeout=60) as server:
        fakes = await asyncio.gather(
            FakeAsterisk(server.port, FakeCall(args=("0.3",)), mute_from=0).run(),
            FakeAsterisk(server.port, FakeCall(args=("30",))).run(),
            FakeAsterisk(server.port, FakeCall(args=("0.1",)), mute_from=0).run(),
        )
    assert outcome == {
        "0.1": "no reply to NOOP within 0.1 s",
        "0.3": "no reply to NOOP within 0.3 s",
        "30": "answered",
    }
    assert all(fake.closed_by_server and not fake.idle_timed_out for fake in fakes)
