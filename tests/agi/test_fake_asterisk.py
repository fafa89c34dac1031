"""The fake Asterisk against the capture: same header bytes, same replies, same stdio quirk."""

from __future__ import annotations

import asyncio

import agi_capture
import pytest
from callshield.agi.protocol import parse_header_line, parse_request
from fake_asterisk import FakeAsterisk, FakeCall, FakeChannel, split_args


def _captured_call(conn: int) -> FakeCall:
    return FakeCall.from_request(
        parse_request([parse_header_line(line) for line in agi_capture.header_lines(conn)])
    )


@pytest.mark.parametrize("conn", agi_capture.connections())
def test_header_block_byte_for_byte(conn: int) -> None:
    assert _captured_call(conn).header_block() == agi_capture.header_block(conn)


def test_default_call_is_the_gate_with_three_arguments() -> None:
    block = FakeCall().header_block().decode()
    assert block.startswith("agi_network: yes\nagi_network_script: callshield/gate\n")
    assert "agi_request: agi://127.0.0.1:4573/callshield/gate\n" in block
    assert "agi_accountcode: \n" in block
    assert block.endswith("agi_arg_1: 5551234\nagi_arg_2: company\nagi_arg_3: campaign\n\n")


def test_no_network_script_header_for_an_empty_path() -> None:
    assert b"agi_network_script" not in FakeCall(script="").header_block()


@pytest.mark.parametrize("conn", agi_capture.connections())
def test_replies_as_captured(conn: int) -> None:
    """Replay each captured session's commands; the fake answers what Asterisk answered."""
    channel = FakeChannel(_captured_call(conn))
    channel.dead = conn == 6  # conn 6: the channel hung up before the first command
    records = agi_capture.after_header(conn)
    expected = [r.data[:-1] for r in records if r.from_asterisk and r.data != "HANGUP\n"]
    answered = []
    for record in records:
        if record.dir == ">>":
            answered.extend(channel.answer(record.data[:-1]))
            channel.dead = channel.dead or channel.hangup_requested
    assert answered[: len(expected)] == expected


def test_split_args_like_parse_args() -> None:
    assert split_args('GET FULL VARIABLE "${CALLERID(num)}/${EXTEN}"') == [
        "GET",
        "FULL",
        "VARIABLE",
        "${CALLERID(num)}/${EXTEN}",
    ]
    assert split_args('SET VARIABLE X ""') == ["SET", "VARIABLE", "X", ""]
    assert split_args("a\\ b  c\t d") == ["a b", "c", "d"]
    assert split_args('x"y z"w') == ["xy zw"]


def test_dead_channel_refuses_media_but_keeps_variables() -> None:
    channel = FakeChannel(FakeCall(), keypresses="1")
    channel.dead = True
    assert channel.answer('STREAM FILE "beep" "1"') == [
        "511 Command Not Permitted on a dead channel or intercept routine"
    ]
    assert channel.answer('SET VARIABLE "A" "b"') == ["200 result=1"]
    assert channel.answer("EXEC NoOp") == ["200 result=0"]


async def test_pipelined_commands_stall_like_on_asterisk() -> None:
    """Two commands in one segment: only the first is answered until more bytes arrive."""
    replies: list[str] = []
    second_was_late = asyncio.Event()

    async def pipelining_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline() != b"\n":
            pass
        writer.write(b'SET VARIABLE "A" "1"\nSET VARIABLE "B" "2"\n')
        replies.append((await reader.readline()).decode())
        try:
            await asyncio.wait_for(reader.readline(), 0.3)
        except TimeoutError:
            second_was_late.set()
        writer.write(b"NOOP\n")  # any new bytes wake the poll: the buffered command is read now
        replies.append((await reader.readline()).decode())
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(pipelining_server, "127.0.0.1", 0)
    async with server:
        fake = await FakeAsterisk(server.sockets[0].getsockname()[1]).run()
    assert second_was_late.is_set()
    assert replies == ["200 result=1\n", "200 result=1\n"]
    assert fake.variables == {"A": "1", "B": "2"}
