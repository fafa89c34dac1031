"""What Asterisk 22's res_agi does with FastAGI, as pure code: the header block it sends and
the reply it gives to each command line. The TCP side is in :mod:`fake_asterisk`.

Built from ``captures/fastagi.jsonl`` (header order and format, reply formats, the 510 and 520
texts, dead-channel behaviour) and from res_agi's command table (which commands run on a dead
channel, and answer 511 otherwise).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from callshield.agi.protocol import AgiRequest

HEADER_ORDER = (
    "agi_network",
    "agi_network_script",
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)
"""The order Asterisk 22 sends the headers in, before ``agi_arg_1`` ... ``agi_arg_N``."""

DEAD_NOT_PERMITTED = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE = {
    "SET VARIABLE": ["Sets a variable to the current channel."],
    "GET DATA": [
        "Stream the given file, and receive DTMF data.",
        "Returns the digits received from the channel at the other end.",
    ],
}
SOUNDS = frozenset(
    {
        "beep",
        "beeperr",
        "optout-prompt",
        "optout-confirm",
        "goodbye",
        "vm-press",
        "digits/9",
        "auth-thankyou",
        "vm-goodbye",
    }
)
"""Sound files the fake PBX has (Asterisk core sounds used by callshield's defaults among them)."""
APPS = frozenset({"noop", "playback", "wait", "set"})

Reply = list[str] | None
"""Reply lines without newlines, or None for "bad syntax" (answered with a 520 block)."""


@dataclass(frozen=True)
class FakeCall:
    """The channel as Asterisk describes it in the header block (defaults: the capture's conn 1,
    called with ``AGI(agi://127.0.0.1:4573/callshield/gate,5551234,company,campaign)``)."""

    script: str = "callshield/gate"
    args: tuple[str, ...] = ("5551234", "company", "campaign")
    agi_host: str = "127.0.0.1:4573"
    channel: str = "PJSIP/agent2-00000008"
    language: str = "en"
    channel_type: str = "PJSIP"
    uniqueid: str = "1795847965.34"
    version: str = "22.10.1"
    callerid: str = "agent2"
    calleridname: str = "Agent"
    callingpres: str = "0"
    callingani2: str = "0"
    callington: str = "0"
    callingtns: str = "0"
    dnid: str = "5551234"
    rdnis: str = "unknown"
    context: str = "agents-agi"
    extension: str = "5551234"
    priority: str = "2"
    enhanced: str = "0.0"
    accountcode: str = ""
    threadid: str = "140712535230144"
    variables: tuple[tuple[str, str], ...] = field(default=())

    def headers(self) -> list[tuple[str, str]]:
        """``(name, value)`` in Asterisk's order; no ``agi_network_script`` for an empty path."""
        values = {
            "agi_network": "yes",
            "agi_network_script": self.script,
            "agi_request": f"agi://{self.agi_host}/{self.script}",
            "agi_type": self.channel_type,
        }
        out = []
        for name in HEADER_ORDER:
            value = values.get(name, getattr(self, name.removeprefix("agi_"), None))
            if isinstance(value, str) and (name != "agi_network_script" or value):
                out.append((name, value))
        return out + [(f"agi_arg_{n}", arg) for n, arg in enumerate(self.args, 1)]

    def header_block(self) -> bytes:
        """The header block as Asterisk writes it: ``name: value\\n`` lines and a blank line."""
        return "".join(f"{name}: {value}\n" for name, value in self.headers()).encode() + b"\n"

    @classmethod
    def from_request(cls, request: AgiRequest) -> FakeCall:
        """The call that makes Asterisk send the header block ``request`` was parsed from."""
        return cls(
            script=request.network_script,
            args=request.args,
            agi_host=urlsplit(request.request).netloc,
            **{name: getattr(request, name) for name in _COPIED},
        )


_COPIED = (
    "channel",
    "language",
    "channel_type",
    "uniqueid",
    "version",
    "callerid",
    "calleridname",
    "callingpres",
    "callingani2",
    "callington",
    "callingtns",
    "dnid",
    "rdnis",
    "context",
    "extension",
    "priority",
    "enhanced",
    "accountcode",
    "threadid",
)


def split_args(line: str) -> list[str]:
    """Split a command line into words the way res_agi's ``parse_args`` does.

    Spaces and tabs separate words outside double quotes; a quote toggles quoting (and starts a
    word, possibly empty); a backslash makes the next character literal.
    """
    words: list[str] = []
    in_word = quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                words.append("")
                in_word = True
        elif ch in " \t" and not quoted and not escaped:
            in_word = False
        elif ch == "\\" and not escaped:
            escaped = True
        else:
            if not in_word:
                words.append("")
                in_word = True
            words[-1] += ch
            escaped = False
    return words


class FakeChannel:
    """A channel running FastAGI: its variables and res_agi's answer to each command line.

    ``keypresses`` are the digits the caller will press, consumed by STREAM FILE (if an escape
    digit), WAIT FOR DIGIT and GET DATA (``#`` ends input; running out means a timeout).
    """

    def __init__(self, call: FakeCall, keypresses: Iterable[str] = "") -> None:
        self.call = call
        self.variables: dict[str, str] = dict(call.variables)
        self.keypresses: deque[str] = deque(keypresses)
        self.dead = False
        self.hangup_requested = False
        self.peer_hung_up: str | None = None
        """The other channel ``HANGUP <name>`` ended (only the bridged peer is known here)."""
        self.answered = False
        self.played: list[str] = []
        self.executed: list[tuple[str, str]] = []
        self.verbose: list[str] = []
        self._commands: list[tuple[tuple[str, ...], Callable[[list[str]], Reply], bool]] = [
            (("GET", "FULL", "VARIABLE"), self._get_full_variable, True),
            (("WAIT", "FOR", "DIGIT"), self._wait_for_digit, False),
            (("SET", "VARIABLE"), self._set_variable, True),
            (("GET", "VARIABLE"), self._get_variable, True),
            (("STREAM", "FILE"), self._stream_file, False),
            (("GET", "DATA"), self._get_data, False),
            (("VERBOSE",), self._verbose, True),
            (("ANSWER",), self._answer, False),
            (("HANGUP",), self._hangup, False),
            (("EXEC",), self._exec, True),
            (("NOOP",), lambda args: ["200 result=0"], True),
            (("GOSUB",), lambda args: ["100 result=0 Trying...", "200 result=0 Gosub complete"], False),
        ]

    def answer(self, line: str) -> list[str]:
        """res_agi's reply lines (without newlines) to one command line."""
        words = split_args(line)
        upper = tuple(w.upper() for w in words)
        for verb, run, runs_dead in self._commands:
            if upper[: len(verb)] != verb:
                continue
            if self.dead and not runs_dead:
                return [DEAD_NOT_PERMITTED]
            reply = run(words[len(verb) :])
            if reply is not None:
                return reply
            usage = USAGE.get(" ".join(verb), ["(usage text)"])
            return ["520-Invalid command syntax.  Proper usage follows:", *usage, "520 End of proper usage."]
        return ["510 Invalid or unknown command"]

    def lookup(self, name: str) -> str | None:
        """A channel variable or one of the few built-ins the fake knows."""
        builtins = {
            "CHANNEL": self.call.channel,
            "UNIQUEID": self.call.uniqueid,
            "EXTEN": self.call.extension,
            "CONTEXT": self.call.context,
            "CALLERID(num)": self.call.callerid,
            "CALLERID(name)": self.call.calleridname,
        }
        return self.variables.get(name, builtins.get(name))

    def substitute(self, expression: str) -> str:
        """``${NAME}`` replaced by its value (empty when unset), as GET FULL VARIABLE does."""
        out, rest = "", expression
        while (start := rest.find("${")) >= 0 and (end := rest.find("}", start)) >= 0:
            out += rest[:start] + (self.lookup(rest[start + 2 : end]) or "")
            rest = rest[end + 1 :]
        return out + rest

    def _set_variable(self, args: list[str]) -> Reply:
        if len(args) != 2:
            return None
        self.variables[args[0]] = args[1]
        return ["200 result=1"]

    def _get_variable(self, args: list[str]) -> Reply:
        if len(args) != 1:
            return None
        value = self.lookup(args[0])
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _get_full_variable(self, args: list[str]) -> Reply:
        return [f"200 result=1 ({self.substitute(args[0])})"] if len(args) in (1, 2) else None

    def _verbose(self, args: list[str]) -> Reply:
        if len(args) not in (1, 2):
            return None
        self.verbose.append(args[0])
        return ["200 result=1"]

    def _answer(self, args: list[str]) -> Reply:
        if args:
            return None
        self.answered = True
        return ["200 result=0"]

    def _hangup(self, args: list[str]) -> Reply:
        if len(args) > 1:
            return None
        if args and args[0] != self.call.channel:
            if args[0] != self.variables.get("BRIDGEPEER"):
                return ["200 result=-1"]  # no such channel
            self.peer_hung_up = args[0]
            return ["200 result=1"]
        self.hangup_requested = True
        return ["200 result=1"]

    def _stream_file(self, args: list[str]) -> Reply:
        if len(args) not in (2, 3):
            return None
        if args[0] not in SOUNDS:
            return ["200 result=-1 endpos=0"]
        self.played.append(args[0])
        if self.keypresses and self.keypresses[0] in args[1]:
            return [f"200 result={ord(self.keypresses.popleft())} endpos=1600"]
        return ["200 result=0 endpos=8000"]

    def _get_data(self, args: list[str]) -> Reply:
        if not 1 <= len(args) <= 3:
            return None
        self.played.append(args[0])
        max_digits = int(args[2]) if len(args) == 3 else 1024
        digits, timed_out = "", False
        while len(digits) < max_digits:
            if not self.keypresses:
                timed_out = True
                break
            if (digit := self.keypresses.popleft()) == "#":
                break
            digits += digit
        return [f"200 result={digits} (timeout)" if timed_out else f"200 result={digits}"]

    def _wait_for_digit(self, args: list[str]) -> Reply:
        if len(args) != 1:
            return None
        return [f"200 result={ord(self.keypresses.popleft())}" if self.keypresses else "200 result=0"]

    def _exec(self, args: list[str]) -> Reply:
        if len(args) not in (1, 2):
            return None
        self.executed.append((args[0], args[1] if len(args) == 2 else ""))
        return ["200 result=0" if args[0].lower() in APPS else "200 result=-2"]
