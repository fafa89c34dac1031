"""One FastAGI session on asyncio streams: send commands, read replies.

Every command is one round trip: write the line, then read its reply. Commands are never
pipelined: res_agi polls the socket, then reads ONE line with ``fgets`` from a buffered stdio
stream. A second command that arrived in the same segment sits in the stdio buffer while
Asterisk polls the socket again, and is answered only when more bytes arrive.

Failures surface as :mod:`callshield.errors`: :class:`PeerUnavailable` (connection closed, reply
timed out), :class:`PeerProtocolError` (line too long, not a reply), and
:class:`callshield.agi.protocol.AgiCommandError` (Asterisk refused or failed a command). After a
PeerUnavailable or PeerProtocolError the session is out of step with Asterisk: every later
command raises PeerUnavailable at once, and the server closes the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from callshield.agi.protocol import (
    OK_LINE,
    OK_REPLY,
    AgiCommandError,
    AgiReply,
    AgiRequest,
    Command,
    ReplyAssembler,
    decode_line,
    is_hangup,
)
from callshield.agi.stream import AgiStream
from callshield.errors import PeerError, PeerUnavailable

log = logging.getLogger(__name__)

_CLOSED = PeerUnavailable("AGI session closed")
"""Why a closed session refuses commands: quoted by :meth:`AgiSession.send`, never raised itself
(so one instance serves every session)."""


class AgiSession:
    """The handler's view of one FastAGI session: the request, and one method per command.

    Each method sends one command and reads its reply. A ``HANGUP`` notice read on the way sets
    :attr:`hung_up` and the reply is still read: Asterisk answers commands on a dead channel
    (GET/SET VARIABLE, VERBOSE, EXEC work; media commands answer 511).
    """

    def __init__(
        self, request: AgiRequest, stream: AgiStream, *, command_timeout: float, media_timeout: float
    ) -> None:
        self.request = request
        self._stream = stream
        self._command_timeout = command_timeout
        self._media_timeout = media_timeout
        self._hung_up = False
        self._trace = log.isEnabledFor(logging.DEBUG)
        """Log every command and reply code (decided once per session: they are many)."""
        self._broken: PeerError | None = None

    @property
    def hung_up(self) -> bool:
        """True once the channel is known to be gone: Asterisk said ``HANGUP``, or :meth:`hangup`
        succeeded. The session itself stays usable (dead-channel commands still work)."""
        return self._hung_up

    async def send(self, verb: str, *args: str, reply_timeout: float | None = None) -> AgiReply:
        """Send ``verb`` with quoted ``args``; return the reply, whatever its code.

        ``reply_timeout`` (seconds, default the server's command timeout) bounds the wait for the reply.
        Raises ValueError for an unsafe command (nothing is sent), PeerUnavailable or
        PeerProtocolError when the connection fails.
        """
        return await self.send_command(Command(verb, *args), reply_timeout=reply_timeout)

    async def send_command(self, command: Command, *, reply_timeout: float | None = None) -> AgiReply:
        """:meth:`send` for a :class:`Command` formatted already: a handler that sends the same
        few commands over and over formats each once."""
        verb, line = command.verb, command.line
        if self._broken is not None:
            raise PeerUnavailable(f"AGI session no longer usable ({self._broken})")
        limit = self._command_timeout if reply_timeout is None else reply_timeout
        if self._trace:
            log.debug("[%s] >> %s", self.request.uniqueid, verb)
        stream = self._stream
        stream.write(line)
        stream.arm(limit)
        try:
            raw = await stream.read_line()
            reply = OK_REPLY if raw == OK_LINE else await self._read_reply(raw)
        except TimeoutError:
            self._broken = PeerUnavailable(f"no reply to {verb} within {limit:g} s")
            raise self._broken from None
        except PeerError as exc:
            self._broken = exc
            raise
        finally:
            stream.disarm()
        if self._trace:
            log.debug("[%s] << %d", self.request.uniqueid, reply.code)  # results may be digits typed
        return reply

    async def _read_reply(self, raw: bytes) -> AgiReply:
        """From the line ``raw`` on, lines up to the end of the next final reply; HANGUP notices
        and 1xx replies are noted. (``OK_LINE``, the common case, is recognised before.)"""
        assembler = ReplyAssembler()
        while True:
            line = decode_line(raw)
            if is_hangup(line):
                log.debug("[%s] << HANGUP", self.request.uniqueid)
                self._hung_up = True
            elif (reply := assembler.feed(line)) is not None:
                if not 100 <= reply.code < 200:
                    return reply
                assembler = ReplyAssembler()  # interim, e.g. "100 result=0 Trying...": the reply follows
            raw = await self._stream.read_line()

    async def _ok(self, verb: str, *args: str, reply_timeout: float | None = None) -> AgiReply:
        """Send; raise AgiCommandError unless the reply is a 200."""
        reply = await self.send(verb, *args, reply_timeout=reply_timeout)
        if not reply.ok:
            raise AgiCommandError(verb, reply)
        return reply

    async def _number(self, verb: str, *args: str, reply_timeout: float | None = None) -> int:
        """Send; return the integer result; raise AgiCommandError for a failure (negative) result."""
        reply = await self._ok(verb, *args, reply_timeout=reply_timeout)
        result = reply.result_int
        if result is None or result < 0:
            raise AgiCommandError(verb, reply)
        return result

    async def set_variable(self, name: str, value: str) -> None:
        """SET VARIABLE: the dialplan sees ``${name}`` as ``value`` (spaces and quotes kept)."""
        await self.set_variables((Command("SET VARIABLE", name, value),))

    async def set_variables(self, commands: Iterable[Command]) -> None:
        """SET VARIABLE commands formatted already, one after another (see :meth:`set_variable`)."""
        for command in commands:
            reply = await self.send_command(command)
            if reply is not OK_REPLY and not reply.ok:
                raise AgiCommandError(command.verb, reply)

    async def get_variable(self, name: str) -> str | None:
        """GET VARIABLE: the channel variable's value, or None when it is not set."""
        reply = await self._ok("GET VARIABLE", name)
        return reply.value if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        """GET FULL VARIABLE: ``expression`` with ``${...}`` evaluated, e.g. ``${CALLERID(num)}``."""
        reply = await self._ok("GET FULL VARIABLE", expression)
        return reply.value if reply.result == "1" else None

    async def answer(self) -> None:
        """ANSWER the channel."""
        await self._number("ANSWER")

    async def hangup(self) -> None:
        """HANGUP this channel. Asterisk then writes a ``HANGUP`` notice; the session stays open."""
        await self._number("HANGUP")
        self._hung_up = True

    async def stream_file(
        self, name: str, escape_digits: str = "", *, reply_timeout: float | None = None
    ) -> str | None:
        """STREAM FILE: play ``name``; return the escape digit that stopped it, or None.

        Raises AgiCommandError when the file cannot be played (result -1) or the channel is dead
        (511). ``reply_timeout`` defaults to the server's media timeout.
        """
        wait = self._media_timeout if reply_timeout is None else reply_timeout
        code = await self._number("STREAM FILE", name, escape_digits, reply_timeout=wait)
        return chr(code) if code > 0 else None

    async def get_data(self, file: str, timeout_ms: int, max_digits: int) -> str:
        """GET DATA: play ``file`` and collect up to ``max_digits`` digits; ``""`` if none came.

        ``timeout_ms`` is Asterisk's wait for each digit. Raises AgiCommandError on failure or
        hangup (result -1).
        """
        wait = self._media_timeout + max_digits * timeout_ms / 1000
        reply = await self._ok("GET DATA", file, str(timeout_ms), str(max_digits), reply_timeout=wait)
        if reply.result is None or reply.result_int == -1:
            raise AgiCommandError("GET DATA", reply)
        return reply.result

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """WAIT FOR DIGIT: the digit pressed within ``timeout_ms`` (-1: forever), or None."""
        wait = self._media_timeout if timeout_ms < 0 else self._command_timeout + timeout_ms / 1000
        code = await self._number("WAIT FOR DIGIT", str(timeout_ms), reply_timeout=wait)
        return chr(code) if code > 0 else None

    async def exec(self, app: str, options: str = "", *, reply_timeout: float | None = None) -> int:
        """EXEC a dialplan application with its options (``"arg1,arg2"``); return its result.

        Raises AgiCommandError when the application does not exist (-2). ``reply_timeout`` defaults
        to the server's media timeout (an application may play audio or dial).
        """
        wait = self._media_timeout if reply_timeout is None else reply_timeout
        reply = await self._ok("EXEC", app, options, reply_timeout=wait)
        result = reply.result_int
        if result is None or result == -2:
            raise AgiCommandError("EXEC", reply)
        return result

    async def verbose(self, message: str, level: int = 1) -> None:
        """VERBOSE: write ``message`` to Asterisk's verbose log at ``level`` (1-4)."""
        await self._ok("VERBOSE", message, str(level))

    async def close(self) -> None:
        """Close the socket now (the server does it anyway when the handler returns).

        Asterisk continues the dialplan only then: a handler that has nothing left to send
        closes as soon as it is done, and does its bookkeeping after.
        """
        if self._broken is None:
            self._broken = _CLOSED
        await self._stream.close()
