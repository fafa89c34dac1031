"""The FastAGI header block, parsed into an :class:`AgiRequest` (pure code, no sockets).

Asterisk 22 sends, in this order (``captures/fastagi.jsonl``): ``agi_network``,
``agi_network_script`` (only when the URL has a path), ``agi_request``, ``agi_channel``,
``agi_language``, ``agi_type``, ``agi_uniqueid``, ``agi_version``, ``agi_callerid``,
``agi_calleridname``, ``agi_callingpres``, ``agi_callingani2``, ``agi_callington``,
``agi_callingtns``, ``agi_dnid``, ``agi_rdnis``, ``agi_context``, ``agi_extension``,
``agi_priority``, ``agi_enhanced``, ``agi_accountcode``, ``agi_threadid``, then ``agi_arg_1`` ...
``agi_arg_N``, and a blank line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload
from urllib.parse import parse_qsl, urlsplit

from callshield.errors import PeerProtocolError

_NAME = re.compile(r"agi_[a-z0-9_]+")
_ARG = re.compile(r"agi_arg_([1-9][0-9]*)")
_PREFIX = re.compile(rb"(?:agi_[a-z0-9_]+:[^\n]*\n)*(?:\r|a(?:g(?:i(?:_[a-z0-9_]*(?::[^\n]*)?)?)?)?)?")
"""The start of a header block, cut anywhere (the last line, or a blank ``\\r\\n``, may be incomplete)."""
_PAIR = re.compile(r"^(agi_[a-z0-9_]+): ?([^\n]*)\n", re.MULTILINE)
"""One whole header line: a match per line for a valid block, fewer otherwise."""
_ORDER = (
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
"""The headers Asterisk knows, in the order it writes them (``agi_network_script`` only for a URL
with a path); ``agi_arg_1`` ... ``agi_arg_N`` follow."""
_KNOWN = frozenset(_ORDER)
_USUAL_ARGS = 9
"""Most ``agi_arg_N`` headers the fast path of :func:`parse_block` reads (the gate passes 3)."""
_USUAL_NAMES = tuple(
    _ORDER + tuple(f"agi_arg_{n}" for n in range(1, count + 1)) for count in range(_USUAL_ARGS + 1)
)
"""The header names of a usual block with 0, 1, ... 9 arguments, in order."""


def _usual_block() -> re.Pattern[str]:
    """A whole block as Asterisk writes it for a URL with a path, a group per value: the known
    headers in its order, ``agi_arg_1`` ... ``agi_arg_N`` (N <= _USUAL_ARGS), the blank line.

    Values as :data:`_PAIR` reads them (one space after the colon is not part of the value), but
    possessively (``?+``, ``*+``): each line is read one way only, so a block that fails late costs
    one pass, not a retry of every split of every line before it (2**22 of them for a peer that
    writes two spaces after each colon and spoils the last line).
    """
    args = ""
    for name in reversed(_USUAL_NAMES[-1][len(_ORDER) :]):  # nested: agi_arg_2 only after agi_arg_1 ...
        args = f"(?:{name}: ?+([^\\n]*+)\\n{args})?"
    return re.compile("".join(f"{name}: ?+([^\\n]*+)\\n" for name in _ORDER) + args + "\\n")


_USUAL = _usual_block()

Pairs = tuple[tuple[str, str], ...]

_POSITION = {name: at for at, name in enumerate(_USUAL_NAMES[-1])}
"""Where each header of a usual block is, in its order."""


class _InOrder(Mapping[str, str]):
    """The headers of a usual block, by name: ``values`` in the order of ``names`` (one of
    :data:`_USUAL_NAMES`), not copied into a dict (a request is asked for one or two of them)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: tuple[str, ...]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, name: str) -> str:
        at = _POSITION.get(name, len(self._names))
        if at >= len(self._names):
            raise KeyError(name)
        return self._values[at]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        at = _POSITION.get(name, len(self._names))
        return self._values[at] if at < len(self._names) else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<{len(self._names)} AGI headers>"  # not the values: they may hold numbers


class _Header:
    """An attribute of :class:`AgiRequest` read from its header block: the value, or ``""``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, request: None, owner: type[AgiRequest]) -> _Header: ...
    @overload
    def __get__(self, request: AgiRequest, owner: type[AgiRequest]) -> str: ...
    def __get__(self, request: AgiRequest | None, owner: type[AgiRequest]) -> str | _Header:
        return self if request is None else request.headers.get(self.name, "")


_SHOWN = ("uniqueid", "context", "priority", "language", "channel_type", "version", "threadid")
"""What ``repr`` shows besides the script: nothing that can hold a phone number."""


@dataclass(frozen=True, kw_only=True, repr=False)
class AgiRequest:
    """What Asterisk tells about the call when it opens a FastAGI session.

    Values are the header values as sent (strings; ``unknown`` where Asterisk says so; ``""``
    for a header not sent). Attributes that can hold a phone number are left out of ``repr``:
    log ``uniqueid``, never the channel name (a Local channel's name contains the dialled number).
    """

    script: str = ""
    """Script path without query and surrounding slashes: ``callshield/gate``. Used for routing."""
    query: Pairs = ()
    """Query of the AGI URL (``?x=y``) as ordered pairs."""
    args: tuple[str, ...] = ()
    """``agi_arg_1`` ... ``agi_arg_N``: the dialplan's ``AGI(url,arg1,arg2,...)`` arguments."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Every header of the block by name, as sent (the attributes below read it)."""
    extra: Pairs = ()
    """Headers this module does not know (a later Asterisk may add some), in order."""

    uniqueid = _Header("agi_uniqueid")
    """``agi_uniqueid``: the channel's unique id, e.g. ``1795847965.34``. Safe to log."""
    channel = _Header("agi_channel")
    """``agi_channel``: ``PJSIP/agent2-00000008``, ``Local/5551234@ctx-0000000d;2``."""
    callerid = _Header("agi_callerid")
    """``agi_callerid``: caller id number (the agent's SIP user for an outbound gate)."""
    calleridname = _Header("agi_calleridname")
    """``agi_calleridname``: caller id name."""
    extension = _Header("agi_extension")
    """``agi_extension``: the extension being executed (the dialled number at the gate)."""
    dnid = _Header("agi_dnid")
    """``agi_dnid``: dialled number id, ``unknown`` for Local channels."""
    rdnis = _Header("agi_rdnis")
    """``agi_rdnis``: redirecting number, usually ``unknown``."""
    context = _Header("agi_context")
    """``agi_context``: dialplan context."""
    priority = _Header("agi_priority")
    """``agi_priority``: dialplan priority of the AGI() call."""
    language = _Header("agi_language")
    """``agi_language``: channel language, e.g. ``en``."""
    channel_type = _Header("agi_type")
    """``agi_type``: channel technology, e.g. ``PJSIP``, ``Local``."""
    accountcode = _Header("agi_accountcode")
    """``agi_accountcode``: often empty."""
    callingpres = _Header("agi_callingpres")
    """``agi_callingpres``: caller id presentation."""
    callingani2 = _Header("agi_callingani2")
    """``agi_callingani2``: ANI2 digits."""
    callington = _Header("agi_callington")
    """``agi_callington``: type of number."""
    callingtns = _Header("agi_callingtns")
    """``agi_callingtns``: transit network selector."""
    version = _Header("agi_version")
    """``agi_version``: Asterisk version, e.g. ``22.10.1``."""
    enhanced = _Header("agi_enhanced")
    """``agi_enhanced``: ``0.0`` (``1.0`` for EAGI)."""
    threadid = _Header("agi_threadid")
    """``agi_threadid``: the Asterisk thread running the AGI."""
    network = _Header("agi_network")
    """``agi_network``: ``yes`` for FastAGI."""
    network_script = _Header("agi_network_script")
    """``agi_network_script``: the URL's path and query as sent, e.g. ``callshield/gate?x=y``."""
    request = _Header("agi_request")
    """``agi_request``: the whole AGI URL."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SHOWN)
        return f"AgiRequest(script={self.script!r}, {shown})"

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        return next((v for k, v in self.query if k == name), None)


def parse_header_line(line: str) -> tuple[str, str]:
    """``"agi_channel: PJSIP/x"`` -> ``("agi_channel", "PJSIP/x")``; ``"agi_accountcode: "`` -> ``""``.

    Raises PeerProtocolError when the line is not ``agi_<name>: value`` (the message does not
    repeat the line: it may hold a number).
    """
    name, sep, value = line.partition(":")
    if not sep or not _NAME.fullmatch(name):
        raise PeerProtocolError(f"header line of {len(line)} characters is not 'agi_<name>: value'")
    return name, value[1:] if value.startswith(" ") else value


def _script_and_query(network_script: str | None, request: str) -> tuple[str, Pairs]:
    """Script path and query from ``agi_network_script``, or from ``agi_request`` without it."""
    if network_script is None:
        try:
            parts = urlsplit(request)
        except ValueError as exc:
            raise PeerProtocolError("agi_request is not a URL") from exc
        path, query = parts.path, parts.query
    else:
        path, _, query = network_script.partition("?")
    return path.strip("/"), tuple(parse_qsl(query, keep_blank_values=True)) if query else ()


def _args_and_extra(headers: Sequence[tuple[str, str]], h: dict[str, str]) -> tuple[tuple[str, ...], Pairs]:
    """``agi_arg_1`` ... ``agi_arg_N`` in order (numbered without gaps), and unknown headers."""
    unknown = h.keys() - _KNOWN
    names = [f"agi_arg_{n}" for n in range(1, len(unknown) + 1)]
    if unknown.issuperset(names):  # the usual block: known headers, then agi_arg_1 ... agi_arg_N
        return tuple(h[name] for name in names), ()
    numbered = {int(m[1]): h[k] for k in unknown if (m := _ARG.fullmatch(k)) is not None}
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise PeerProtocolError("agi_arg_N headers are not numbered 1..N")
    args = tuple(numbered[n] for n in range(1, len(numbered) + 1))
    if len(unknown) == len(numbered):
        return args, ()
    return args, tuple((k, v) for k, v in headers if k in unknown and not _ARG.fullmatch(k))


def parse_request(headers: Sequence[tuple[str, str]]) -> AgiRequest:
    """Build the request from the header block's ``(name, value)`` pairs, in wire order.

    Raises PeerProtocolError for a repeated header, gaps in ``agi_arg_N`` or a block without
    ``agi_request``. Missing optional headers become empty strings.
    """
    h = dict(headers)
    if len(h) != len(headers):
        raise PeerProtocolError("header block repeats a header")
    if "agi_request" not in h:
        raise PeerProtocolError("header block has no agi_request")
    script, query = _script_and_query(h.get("agi_network_script"), h["agi_request"])
    args, extra = _args_and_extra(headers, h)
    return AgiRequest(script=script, query=query, args=args, headers=h, extra=extra)


def parse_block(block: bytes) -> AgiRequest:
    """``parse_request(parse_header_block(block))`` in one step: the same request, the same errors.

    The server's path. A block exactly as Asterisk writes it (the known headers in its order,
    ``agi_network_script`` included, then up to 9 ``agi_arg_N``, ``\\n`` line ends) is read by
    one regular expression into the request, without the pairs and checks of the general path;
    any other block (other orders, unknown headers, ``\\r\\n``, malformed lines) takes the
    general path.
    """
    text = block.decode("utf-8", errors="replace")
    match = None if "\r" in text else _USUAL.fullmatch(text)
    if match is None:
        return parse_request(_header_pairs(text))
    values: tuple[str, ...] = match.groups()
    last = match.lastindex or len(_ORDER)  # the last group matched: the last argument's, if any
    names = _USUAL_NAMES[last - len(_ORDER)]
    script, query = _script_and_query(values[1], values[2])
    args = values[len(_ORDER) : len(names)]
    return AgiRequest(script=script, query=query, args=args, headers=_InOrder(names, values))


def parse_header_block(block: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a whole header block, blank line included, in one pass.

    >>> parse_header_block(b"agi_network: yes\\nagi_accountcode: \\n\\n")
    [('agi_network', 'yes'), ('agi_accountcode', '')]

    Lines are read as :func:`parse_header_line` reads them one by one (``\\r\\n`` endings allowed,
    undecodable bytes as U+FFFD); raises PeerProtocolError for the first line that is not a header.
    """
    return _header_pairs(block.decode("utf-8", errors="replace"))


def _header_pairs(text: str) -> list[tuple[str, str]]:
    """:func:`parse_header_block` of the decoded block."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    body = text[:-1]  # every header line with its newline; the blank line's newline dropped
    pairs: list[tuple[str, str]] = _PAIR.findall(body)
    if len(pairs) != body.count("\n"):
        for line in body.split("\n")[:-1]:
            parse_header_line(line)  # raises for the first bad line
        raise PeerProtocolError("header block is not 'agi_<name>: value' lines")
    return pairs


def check_block_start(data: bytes) -> None:
    """Raise PeerProtocolError unless ``data`` can be the start of a header block.

    For a block still arriving: a peer that is not Asterisk (a web client, a scanner) is turned
    away at its first line, without waiting for a blank line it may never send.
    """
    if _PREFIX.fullmatch(data) is None:
        for line in data.split(b"\n"):
            parse_header_line(line.decode("utf-8", errors="replace").removesuffix("\r"))
        raise PeerProtocolError("header block is not 'agi_<name>: value' lines")
