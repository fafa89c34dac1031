"""A fake Asterisk 22 FastAGI client over real TCP on 127.0.0.1.

It connects to the server under test, sends the header block byte for byte in Asterisk's format
(:class:`FakeCall`), answers commands as res_agi does (:class:`FakeChannel`), and records what
happened: the variables set, every command line, and whether and when the server closed the
socket. Options inject a ``HANGUP`` notice (right after the header block, or between a given
command and its reply), an EOF instead of a reply, or silence.

Like res_agi, it reads commands through a stdio-like buffer: after each command it waits for the
socket to become readable again before taking the next line from the buffer, even if one is
already there. Pipelined commands therefore stall, as they do on a real Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from fake_agi_channel import FakeCall, FakeChannel, split_args

__all__ = ["FakeAsterisk", "FakeCall", "FakeChannel", "eventually", "split_args"]


class FakeAsterisk:
    """One FastAGI session as Asterisk runs it. ``await fake.run()`` returns when it is over.

    - ``header``: bytes to send instead of ``call.header_block()``;
    - ``keypresses``: digits the caller presses (see :class:`FakeChannel`);
    - ``hangup_on_connect``: the channel hangs up right after the header block;
    - ``hangup_before_reply``: index of the command whose reply is preceded by ``HANGUP``;
    - ``close_before_reply``: index of the command answered by closing the socket instead;
    - ``mute_from``: index of the first command never answered;
    - ``idle_timeout``: seconds of silence after which the fake gives up and closes itself.
    """

    def __init__(
        self,
        port: int,
        call: FakeCall | None = None,
        *,
        header: bytes | None = None,
        keypresses: Iterable[str] = "",
        hangup_on_connect: bool = False,
        hangup_before_reply: int | None = None,
        close_before_reply: int | None = None,
        mute_from: int | None = None,
        idle_timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.call = call or FakeCall()
        self.channel = FakeChannel(self.call, keypresses)
        self.header = self.call.header_block() if header is None else header
        self.hangup_on_connect = hangup_on_connect
        self.hangup_before_reply = hangup_before_reply
        self.close_before_reply = close_before_reply
        self.mute_from = mute_from
        self.idle_timeout = idle_timeout
        self.commands: list[str] = []
        """Every command line received, without its newline."""
        self.sent: list[str] = []
        """Every line written after the header block (replies and HANGUP notices)."""
        self.closed_by_server = False
        self.idle_timed_out = False
        self.eof_at: float | None = None
        """Loop time at which the server's close was seen."""
        self.last_reply_at: float | None = None
        self._hangup_sent = False

    @property
    def variables(self) -> dict[str, str]:
        """The channel variables as Asterisk stored them."""
        return self.channel.variables

    async def run(self) -> FakeAsterisk:
        """Connect, send the header block, answer commands until either side closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(self.header)
            if self.hangup_on_connect:
                self._notify_hangup(writer)
            await self._serve(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stdio = bytearray()
        while await self._poll(reader, stdio):
            while b"\n" not in stdio:
                if not await self._poll(reader, stdio):
                    return
            line, _, rest = bytes(stdio).partition(b"\n")
            stdio[:] = rest
            if not await self._command(line.decode("utf-8", errors="replace"), writer):
                return

    async def _poll(self, reader: asyncio.StreamReader, stdio: bytearray) -> bool:
        """Wait for the socket to be readable; add what arrived to ``stdio``. False at the end."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                chunk = await reader.read(4096)
        except TimeoutError:
            self.idle_timed_out = True
            return False
        except ConnectionError:
            chunk = b""
        if not chunk:
            self.closed_by_server = True
            self.eof_at = asyncio.get_running_loop().time()
            return False
        stdio += chunk
        return True

    async def _command(self, line: str, writer: asyncio.StreamWriter) -> bool:
        """Answer one command line; False to end the session from this side."""
        index = len(self.commands)
        self.commands.append(line)
        if index == self.hangup_before_reply:
            self._notify_hangup(writer)
        if index == self.close_before_reply:
            return False
        if self.mute_from is not None and index >= self.mute_from:
            return True
        self._write(writer, self.channel.answer(line))
        self.last_reply_at = asyncio.get_running_loop().time()
        if self.channel.hangup_requested:
            self._notify_hangup(writer)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return True

    def _notify_hangup(self, writer: asyncio.StreamWriter) -> None:
        """The channel hung up: write ``HANGUP`` once; from now on it is a dead channel."""
        self.channel.dead = True
        if not self._hangup_sent:
            self._hangup_sent = True
            self._write(writer, ["HANGUP"])

    def _write(self, writer: asyncio.StreamWriter, lines: list[str]) -> None:
        self.sent.extend(lines)
        writer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds; fail after about ``within`` seconds (a bound, not a measure)."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition still false after {within} s")
