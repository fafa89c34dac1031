"""The FastAGI wire format as pure code: no sockets, no asyncio, no clock (the h11 way).

Asterisk -> callshield, as captured from Asterisk 22 (``captures/fastagi.jsonl``)::

    agi_network: yes                    one "name: value" line per header ...
    agi_request: agi://127.0.0.1:4573/callshield/gate
    agi_accountcode:                    ... (an empty value keeps the space after the colon)
    agi_arg_1: 5551234
                                        ... and a blank line ends the block

    200 result=1 (PJSIP/agent2-00000008)        one reply per command
    200 result=0 endpos=1234
    510 Invalid or unknown command
    520-Invalid command syntax.  Proper usage follows:
    Sets a variable to the current channel.
    520 End of proper usage.
    HANGUP                                      the channel hung up (any time, even before a reply)

callshield -> Asterisk: one command per line, ``SET VARIABLE "NAME" "two words"``.

The request lives in :mod:`callshield.agi.request`; this module holds replies and commands and
re-exports the request API so that the whole wire format can be imported from one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callshield.agi.request import (
    AgiRequest,
    parse_block,
    parse_header_block,
    parse_header_line,
    parse_request,
)
from callshield.errors import PeerError, PeerProtocolError

__all__ = [
    "HANGUP_LINE",
    "MAX_COMMAND_BYTES",
    "OK_LINE",
    "OK_REPLY",
    "AgiCommandError",
    "AgiReply",
    "AgiRequest",
    "Command",
    "ReplyAssembler",
    "decode_line",
    "format_command",
    "is_hangup",
    "parse_block",
    "parse_header_block",
    "parse_header_line",
    "parse_reply",
    "parse_request",
    "quote",
]

HANGUP_LINE = "HANGUP"
"""The bare line Asterisk writes when the channel hangs up; not a reply to any command."""

MAX_COMMAND_BYTES = 2047
"""Longest command line, newline included, that Asterisk reads as one command.

res_agi reads commands into a 2048-byte buffer (``AGI_BUF_LEN``) with ``fgets``: the rest of a
longer line would be read as a *second command*, so a long value could smuggle one in.
"""

MAX_BLOCK_LINES = 200
"""Most lines accepted inside one multi-line (``520-``) reply."""

_STATUS = re.compile(r"(\d{3})(?:([ -])(.*))?", re.DOTALL)
_RESULT = re.compile(r"result=(\S*)")
_FIELD = re.compile(r"\s+(\w+)=(\S*)")
_FIELDS_ONLY = re.compile(r"(?:\s+\w+=\S*)*\s*")
_VERB = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
_VERBS = frozenset(
    ("SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "EXEC", "ANSWER", "HANGUP")
)
"""Verbs callshield itself sends, known to be well formed."""


@dataclass(frozen=True, kw_only=True)
class AgiReply:
    """One reply of Asterisk to one command."""

    code: int
    """Status code: 200 done, 510 unknown command, 511 not permitted on a dead channel,
    520 bad syntax, 503 out of memory (1xx are interim and never returned by a session)."""
    result: str | None = None
    """Text after ``result=`` (``"1"``, ``"-1"``, digits from GET DATA, ``""``), None if absent."""
    value: str | None = field(default=None, repr=False)
    """Text in parentheses after the result: GET VARIABLE's value, ``timeout``, ``dtmf``, ...
    May be personal data (a caller's number), hence hidden from repr."""
    fields: tuple[tuple[str, str], ...] = ()
    """``key=value`` pairs after the result, e.g. ``(("endpos", "1234"),)``."""
    text: str = ""
    """Free text of the status line: ``Invalid or unknown command``, ``Trying...``, ..."""
    usage: str = ""
    """For a multi-line 520 reply: the usage text between the first and the last line."""

    @property
    def ok(self) -> bool:
        """True for a 200 reply (the command ran; see ``result`` for how it went)."""
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        """``result`` as an int, or None when it is absent or not an integer (GET DATA digits are)."""
        if self.result is None or not re.fullmatch(r"-?\d+", self.result):
            return None
        return int(self.result)

    def get(self, name: str) -> str | None:
        """The value of the ``name=value`` field ``name`` (e.g. ``endpos``), or None."""
        return next((v for k, v in self.fields if k == name), None)


OK_LINE = b"200 result=1\n"
"""The most common reply on the wire (SET VARIABLE's), recognised without parsing."""
OK_REPLY = AgiReply(code=200, result="1")
"""``OK_LINE`` parsed (replies are immutable, so one instance serves every session)."""


class AgiCommandError(PeerError):
    """Asterisk refused or failed a command: 510, 511, 520, 503, or a failure ``result``.

    ``verb`` is the command (``SET VARIABLE``) without its arguments, which may be personal data;
    ``reply`` is Asterisk's answer.
    """

    def __init__(self, verb: str, reply: AgiReply) -> None:
        detail = f" ({reply.text})" if reply.text else ""
        super().__init__(f"{verb} answered {reply.code} result={reply.result}{detail}")
        self.verb = verb
        self.reply = reply


def decode_line(raw: bytes) -> str:
    """One line off the wire as text: without its ``\\n`` (and a ``\\r`` before it).

    Undecodable bytes become U+FFFD: Asterisk passes caller names through byte for byte, and a
    Latin-1 name must not make the gate fail. Structure is checked by the parsers, not here.
    """
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def is_hangup(line: str) -> bool:
    """True for the bare ``HANGUP`` notice Asterisk writes when the channel hangs up."""
    return line == HANGUP_LINE


def _split_status(line: str) -> tuple[int, str, str]:
    """``"520-Invalid ..."`` -> ``(520, "-", "Invalid ...")``."""
    match = _STATUS.fullmatch(line)
    if match is None:
        raise PeerProtocolError(f"reply line of {len(line)} characters has no status code")
    return int(match[1]), match[2] or " ", match[3] or ""


def _take_value(tail: str) -> tuple[str | None, str]:
    """Split ``" (value) endpos=1"`` into ``("value", " endpos=1")``.

    The value may itself hold parentheses (a channel variable can), so the closing one is the last
    that is followed only by ``key=value`` fields; failing that, the first.
    """
    body = tail.lstrip(" ")
    first = body.find(")")
    if not body.startswith("(") or first < 0:
        return None, tail
    end = body.rfind(")")
    while end >= first:
        if _FIELDS_ONLY.fullmatch(body, end + 1):
            return body[1:end], body[end + 1 :]
        end = body.rfind(")", 0, end)
    return body[1:first], body[first + 1 :]


def _parse_body(code: int, rest: str) -> AgiReply:
    """The part of a status line after the code: ``result=1 (value) endpos=3 free text``."""
    match = _RESULT.match(rest)
    if match is None:
        return AgiReply(code=code, text=rest.strip())
    value, tail = _take_value(rest[match.end() :])
    fields: list[tuple[str, str]] = []
    while (pair := _FIELD.match(tail)) is not None:
        fields.append((pair[1], pair[2]))
        tail = tail[pair.end() :]
    return AgiReply(code=code, result=match[1], value=value, fields=tuple(fields), text=tail.strip())


def parse_reply(line: str) -> AgiReply:
    """Parse a one-line reply.

    >>> parse_reply("200 result=1 (two words)").value
    'two words'
    >>> parse_reply("200 result=0 endpos=1234").get("endpos")
    '1234'
    >>> parse_reply("510 Invalid or unknown command").text
    'Invalid or unknown command'

    Raises PeerProtocolError for a line that is not a reply, or that opens a multi-line reply
    (use :class:`ReplyAssembler` for those).
    """
    code, sep, rest = _split_status(line)
    if sep == "-":
        raise PeerProtocolError(f"{code}- opens a multi-line reply")
    return _parse_body(code, rest)


class ReplyAssembler:
    """Assembles one reply from the lines that follow a command.

    Feed it lines (``HANGUP`` notices filtered out beforehand); ``feed`` returns the reply once
    complete, or None while a multi-line block (``520-`` ... ``520 ...``) is still open.
    """

    def __init__(self, max_block_lines: int = MAX_BLOCK_LINES) -> None:
        self._max_block_lines = max_block_lines
        self._opening: tuple[int, str] | None = None
        self._block: list[str] = []

    def feed(self, line: str) -> AgiReply | None:
        """Take the next line; return the complete reply, or None if more lines are needed."""
        if self._opening is None:
            code, sep, rest = _split_status(line)
            if sep == " ":
                return _parse_body(code, rest)
            self._opening = (code, rest)
            return None
        code, rest = self._opening
        if line.startswith(f"{code} ") or line == str(code):
            reply = _parse_body(code, rest)
            return AgiReply(code=code, result=reply.result, text=reply.text, usage="\n".join(self._block))
        if len(self._block) >= self._max_block_lines:
            raise PeerProtocolError(f"multi-line {code} reply longer than {self._max_block_lines} lines")
        self._block.append(line)
        return None


def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's ``parse_args`` unquotes it.

    >>> quote('say "hi"')
    '"say \\\\"hi\\\\""'

    Raises ValueError for a line break or NUL: that would end the command and start another.
    The message never repeats the argument (it may be personal data).
    """
    if "\n" in arg or "\r" in arg or "\x00" in arg:  # three scans in C: cheaper than a regex call
        raise ValueError("AGI argument contains a line break or NUL byte")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Command:
    """One command, formatted and checked once (:func:`format_command`), to be sent any number
    of times: ``line`` is the bytes sent, ``verb`` what errors and logs name."""

    __slots__ = ("line", "verb")

    def __init__(self, verb: str, *args: str) -> None:
        self.verb = verb
        self.line = format_command(verb, *args)

    def __repr__(self) -> str:
        return f"Command({self.verb!r})"  # not the arguments: they may be personal data


def format_command(verb: str, *args: str) -> bytes:
    """One command line: the verb as is, every argument quoted, ``\\n`` at the end.

    >>> format_command("SET VARIABLE", "SHIELD_REASON", "two words")
    b'SET VARIABLE "SHIELD_REASON" "two words"\\n'

    Raises ValueError for a verb that is not words of letters, an unsafe argument (see
    :func:`quote`), or a line longer than :data:`MAX_COMMAND_BYTES`.
    """
    if verb not in _VERBS and not _VERB.fullmatch(verb):
        raise ValueError("AGI command verb must be words of letters separated by single spaces")
    line = (" ".join([verb, *map(quote, args)]) + "\n").encode("utf-8")
    if len(line) > MAX_COMMAND_BYTES:
        raise ValueError(f"{verb} command is {len(line)} bytes; Asterisk reads at most {MAX_COMMAND_BYTES}")
    return line
