"""callshield.agi.server and session against the fake Asterisk and hostile peers, on 127.0.0.1.

No timing assertions: time bounds only prove that nothing hangs forever.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from callshield.agi import AgiCommandError, AgiReply, AgiServer, AgiSession, Handler
from callshield.errors import PeerUnavailable
from fake_asterisk import FakeAsterisk, FakeCall, eventually

pytestmark = pytest.mark.usefixtures("loop_errors")

GATE_VARIABLES = {"SHIELD_RESULT": "BLOCK", "SHIELD_REASON": 'on the "shield" list', "SHIELD_UNTIL": ""}


async def gate(session: AgiSession) -> None:
    """What the gate does on the wire: three SET VARIABLE, then return."""
    for name, value in GATE_VARIABLES.items():
        await session.set_variable(name, value)


def serve(
    handler: Handler,
    script: str = "callshield/gate",
    *,
    header_timeout: float = 10.0,
    command_timeout: float = 10.0,
    max_line: int = 8192,
) -> AgiServer:
    """A server on an ephemeral port with one route."""
    return AgiServer(
        {script: handler},
        "127.0.0.1",
        0,
        header_timeout=header_timeout,
        command_timeout=command_timeout,
        max_line=max_line,
    )


def problems(caplog: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[logging.LogRecord]:
    """Log records at ``level`` or above, or with a traceback."""
    return [r for r in caplog.records if r.levelno >= level or r.exc_info]


async def test_gate_variables_arrive_and_the_socket_closes() -> None:
    seen = []

    async def handler(session: AgiSession) -> None:
        seen.append(session.request)
        await gate(session)

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, idle_timeout=60).run()
    assert fake.variables == GATE_VARIABLES
    assert fake.commands == [
        'SET VARIABLE "SHIELD_RESULT" "BLOCK"',
        'SET VARIABLE "SHIELD_REASON" "on the \\"shield\\" list"',
        'SET VARIABLE "SHIELD_UNTIL" ""',
    ]
    assert fake.closed_by_server and not fake.idle_timed_out
    (request,) = seen
    assert (request.script, request.args, request.extension, request.uniqueid) == (
        "callshield/gate",
        ("5551234", "company", "campaign"),
        "5551234",
        "1795847965.34",
    )


async def test_socket_closed_as_soon_as_the_handler_returns() -> None:
    returned_at: list[float] = []

    async def handler(session: AgiSession) -> None:
        await session.set_variable("SHIELD_RESULT", "ALLOW")
        returned_at.append(asyncio.get_running_loop().time())

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, idle_timeout=60).run()
    assert fake.closed_by_server and fake.eof_at is not None
    assert fake.eof_at - returned_at[0] < 10  # far below the 60 s the fake would wait


async def test_hangup_between_command_and_reply() -> None:
    hung_up: list[bool] = []

    async def handler(session: AgiSession) -> None:
        for name, value in GATE_VARIABLES.items():
            await session.set_variable(name, value)
            hung_up.append(session.hung_up)

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, hangup_before_reply=1).run()
    assert hung_up == [False, True, True]
    assert fake.variables == GATE_VARIABLES
    assert fake.sent == ["200 result=1", "HANGUP", "200 result=1", "200 result=1"]
    assert fake.closed_by_server


async def test_hangup_before_the_first_command() -> None:
    seen: list[tuple[str | None, bool]] = []

    async def handler(session: AgiSession) -> None:
        seen.append((await session.get_variable("CHANNEL"), session.hung_up))
        await session.set_variable("SHIELD_RESULT", "BLOCK")

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, hangup_on_connect=True).run()
    assert seen == [("PJSIP/agent2-00000008", True)]
    assert fake.variables == {"SHIELD_RESULT": "BLOCK"}
    assert fake.closed_by_server


async def test_hangup_then_eof_instead_of_a_reply(caplog: pytest.LogCaptureFixture) -> None:
    """The capture's conn 5: HANGUP, then the socket closes with a command pending."""
    errors: list[Exception] = []

    async def handler(session: AgiSession) -> None:
        try:
            await session.get_variable("CHANNEL")
        except PeerUnavailable as exc:
            errors.append(exc)
        with pytest.raises(PeerUnavailable, match="no longer usable"):
            await session.set_variable("SHIELD_RESULT", "BLOCK")

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, hangup_before_reply=0, close_before_reply=0).run()
        await eventually(lambda: server.active_sessions == 0)
    assert len(errors) == 1
    assert fake.sent == ["HANGUP"]
    assert not problems(caplog)


async def test_eof_mid_handler_is_logged_quietly(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(gate) as server:
        fake = await FakeAsterisk(server.port, close_before_reply=1).run()
        await eventually(lambda: server.active_sessions == 0)
    assert fake.variables == {"SHIELD_RESULT": "BLOCK"}
    assert "Asterisk went away" in caplog.text
    assert not problems(caplog, logging.WARNING)


async def test_510_520_and_interim_100_keep_the_session_in_step() -> None:
    replies: list[AgiReply] = []
    channel: list[str | None] = []

    async def handler(session: AgiSession) -> None:
        replies.append(await session.send("THIS IS NOT A COMMAND"))
        replies.append(await session.send("SET VARIABLE"))
        replies.append(await session.send("GET DATA"))
        replies.append(await session.send("GOSUB", "sub-x", "s", "1"))
        channel.append(await session.get_variable("CHANNEL"))

    async with serve(handler) as server:
        await FakeAsterisk(server.port).run()
    unknown, bad_syntax, two_line_usage, after_interim = replies
    assert unknown == AgiReply(code=510, text="Invalid or unknown command")
    assert (bad_syntax.code, bad_syntax.usage) == (520, "Sets a variable to the current channel.")
    assert (two_line_usage.code, two_line_usage.usage.count("\n")) == (520, 1)
    assert after_interim == AgiReply(code=200, result="0", text="Gosub complete")
    assert channel == ["PJSIP/agent2-00000008"]


async def test_the_optout_dialog_commands() -> None:
    got: dict[str, object] = {}

    async def optout(session: AgiSession) -> None:
        await session.answer()
        got["pressed"] = await session.stream_file("optout-prompt", "12")
        got["confirm"] = await session.get_data("optout-confirm", 3000, 1)
        got["more"] = await session.get_data("beep", 100, 4)
        got["none"] = await session.wait_for_digit(100)
        got["full"] = await session.get_full_variable("${CALLERID(num)}/${EXTEN}")
        got["unset"] = await session.get_variable("NOT_SET")
        got["exec"] = await session.exec("Playback", "goodbye")
        await session.verbose("opt-out recorded", 3)
        await session.hangup()
        got["hung_up"] = session.hung_up

    async with serve(optout, "callshield/optout") as server:
        fake = await FakeAsterisk(server.port, FakeCall(script="callshield/optout"), keypresses="11#").run()
    assert got == {
        "pressed": "1",
        "confirm": "1",
        "more": "",
        "none": None,
        "full": "agent2/5551234",
        "unset": None,
        "exec": 0,
        "hung_up": True,
    }
    assert fake.channel.answered and fake.channel.dead
    assert fake.channel.played == ["optout-prompt", "optout-confirm", "beep"]
    assert fake.channel.executed == [("Playback", "goodbye")]
    assert fake.channel.verbose == ["opt-out recorded"]
    assert fake.sent[-2:] == ["200 result=1", "HANGUP"]


@pytest.mark.parametrize(
    ("dead", "call"),
    [(True, "stream_file"), (False, "stream_missing_file"), (False, "exec_missing_app")],
)
async def test_failed_commands_raise_command_errors(dead: bool, call: str) -> None:
    codes: list[tuple[int, str | None]] = []

    async def handler(session: AgiSession) -> None:
        with pytest.raises(AgiCommandError) as info:
            if call == "stream_file":
                await session.stream_file("beep")
            elif call == "stream_missing_file":
                await session.stream_file("no-such-sound")
            else:
                await session.exec("NoSuchApp")
        codes.append((info.value.reply.code, info.value.reply.result))
        await session.set_variable("AFTER", "still in step")

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, hangup_on_connect=dead).run()
    expected = {
        "stream_file": (511, None),
        "stream_missing_file": (200, "-1"),
        "exec_missing_app": (200, "-2"),
    }
    assert codes == [expected[call]]
    assert fake.variables == {"AFTER": "still in step"}


async def test_unknown_script_is_closed_without_a_command(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(gate) as server:
        fake = await FakeAsterisk(server.port, FakeCall(script="callshield/nope?n=5551234")).run()
    assert fake.commands == []
    assert fake.closed_by_server
    assert [r.levelname for r in caplog.records if "no handler" in r.getMessage()] == ["WARNING"]


async def test_routes_ignore_surrounding_slashes() -> None:
    async with AgiServer({"/callshield/gate/": gate}, "127.0.0.1", 0) as server:
        fake = await FakeAsterisk(server.port, FakeCall(script="/callshield/gate")).run()
    assert fake.variables == GATE_VARIABLES


async def test_handler_exception_closes_the_socket_and_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(session: AgiSession) -> None:
        await session.set_variable("SHIELD_RESULT", "BLOCK")
        raise RuntimeError(f"lookup failed for {session.request.extension}")

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, idle_timeout=60).run()
    assert fake.closed_by_server and not fake.idle_timed_out
    (record,) = problems(caplog)
    assert record.levelname == "ERROR"
    assert "RuntimeError: lookup failed for 55****34" in record.getMessage()
    assert "test_server.py" in record.getMessage()  # the traceback's frames are logged


async def test_unsafe_value_is_refused_before_anything_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(session: AgiSession) -> None:
        await session.set_variable("SHIELD_REASON", "x\nEXEC System reboot")

    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port).run()
    assert fake.commands == []
    assert fake.closed_by_server
    assert "line break" in caplog.text


async def test_reply_timeout_ends_the_session(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[PeerUnavailable] = []

    async def handler(session: AgiSession) -> None:
        try:
            await session.set_variable("SHIELD_RESULT", "BLOCK")
        except PeerUnavailable as exc:
            errors.append(exc)
            raise

    async with serve(handler, command_timeout=0.2) as server:
        fake = await FakeAsterisk(server.port, mute_from=0).run()
    assert fake.closed_by_server
    assert "no reply to SET VARIABLE" in str(errors[0])
    assert not problems(caplog, logging.WARNING)


async def test_latin1_caller_name_is_accepted() -> None:
    names: list[str] = []

    async def handler(session: AgiSession) -> None:
        names.append(session.request.calleridname)
        await gate(session)

    header = FakeCall().header_block().replace(b"calleridname: Agent", b"calleridname: Agn\xe8s")
    async with serve(handler) as server:
        fake = await FakeAsterisk(server.port, header=header).run()
    assert names == ["Agn\ufffds"]
    assert fake.variables == GATE_VARIABLES


async def test_line_length_limit_is_exact() -> None:
    async with serve(gate, max_line=300) as server:
        name = "x" * (300 - len("agi_calleridname: "))
        fits = await FakeAsterisk(server.port, FakeCall(calleridname=name)).run()
        too_long = await FakeAsterisk(server.port, FakeCall(calleridname=name + "x")).run()
    assert fits.variables == GATE_VARIABLES
    assert too_long.commands == [] and too_long.closed_by_server


async def test_commands_after_the_handler_closed_the_session_are_refused() -> None:
    """Nothing reaches Asterisk after the close; every session says why, each with its own error."""
    errors: list[PeerUnavailable] = []

    async def handler(session: AgiSession) -> None:
        await session.set_variable("SHIELD_RESULT", "ALLOW")
        await session.close()
        with pytest.raises(PeerUnavailable, match=r"no longer usable \(AGI session closed\)") as info:
            await session.set_variable("SHIELD_REASON", "late")
        errors.append(info.value)

    async with serve(handler) as server:
        fakes = [await FakeAsterisk(server.port).run() for _ in range(2)]
    assert [fake.commands for fake in fakes] == [['SET VARIABLE "SHIELD_RESULT" "ALLOW"']] * 2
    assert all(fake.closed_by_server for fake in fakes)
    assert len(errors) == 2 and errors[0] is not errors[1]
