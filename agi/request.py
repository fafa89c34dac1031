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
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from callshield.errors import PeerProtocolError

_NAME = re.compile(r"agi_[a-z0-9_]+")
_ARG = re.compile(r"agi_arg_([1-9][0-9]*)")
_KNOWN = frozenset(
    (
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
)

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class AgiRequest:
    """What Asterisk tells about the call when it opens a FastAGI session.

    Values are the header values as sent (strings; ``unknown`` where Asterisk says so). Fields
    that can hold a phone number are left out of ``repr``: log ``uniqueid``, never the channel
    name (a Local channel's name contains the dialled number).
    """

    script: str = ""
    """Script path without query and surrounding slashes: ``callshield/gate``. Used for routing."""
    query: Pairs = field(default=(), repr=False)
    """Query of the AGI URL (``?x=y``) as ordered pairs."""
    args: tuple[str, ...] = field(default=(), repr=False)
    """``agi_arg_1`` ... ``agi_arg_N``: the dialplan's ``AGI(url,arg1,arg2,...)`` arguments."""
    uniqueid: str = ""
    """``agi_uniqueid``: the channel's unique id, e.g. ``1795847965.34``. Safe to log."""
    channel: str = field(default="", repr=False)
    """``agi_channel``: ``PJSIP/agent2-00000008``, ``Local/5551234@ctx-0000000d;2``."""
    callerid: str = field(default="", repr=False)
    """``agi_callerid``: caller id number (the agent's SIP user for an outbound gate)."""
    calleridname: str = field(default="", repr=False)
    """``agi_calleridname``: caller id name."""
    extension: str = field(default="", repr=False)
    """``agi_extension``: the extension being executed (the dialled number at the gate)."""
    dnid: str = field(default="", repr=False)
    """``agi_dnid``: dialled number id, ``unknown`` for Local channels."""
    rdnis: str = field(default="", repr=False)
    """``agi_rdnis``: redirecting number, usually ``unknown``."""
    context: str = ""
    """``agi_context``: dialplan context."""
    priority: str = ""
    """``agi_priority``: dialplan priority of the AGI() call."""
    language: str = ""
    """``agi_language``: channel language, e.g. ``en``."""
    channel_type: str = ""
    """``agi_type``: channel technology, e.g. ``PJSIP``, ``Local``."""
    accountcode: str = ""
    """``agi_accountcode``: often empty."""
    callingpres: str = ""
    """``agi_callingpres``: caller id presentation."""
    callingani2: str = ""
    """``agi_callingani2``: ANI2 digits."""
    callington: str = ""
    """``agi_callington``: type of number."""
    callingtns: str = ""
    """``agi_callingtns``: transit network selector."""
    version: str = ""
    """``agi_version``: Asterisk version, e.g. ``22.10.1``."""
    enhanced: str = ""
    """``agi_enhanced``: ``0.0`` (``1.0`` for EAGI)."""
    threadid: str = ""
    """``agi_threadid``: the Asterisk thread running the AGI."""
    network: str = ""
    """``agi_network``: ``yes`` for FastAGI."""
    network_script: str = field(default="", repr=False)
    """``agi_network_script``: the URL's path and query as sent, e.g. ``callshield/gate?x=y``."""
    request: str = field(default="", repr=False)
    """``agi_request``: the whole AGI URL."""
    extra: Pairs = field(default=(), repr=False)
    """Headers this module does not know (a later Asterisk may add some), in order."""

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
    return path.strip("/"), tuple(parse_qsl(query, keep_blank_values=True))


def _args(headers: dict[str, str]) -> tuple[str, ...]:
    """``agi_arg_1`` ... ``agi_arg_N`` in order; they must be numbered without gaps."""
    numbered = {int(m[1]): v for k, v in headers.items() if (m := _ARG.fullmatch(k)) is not None}
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise PeerProtocolError("agi_arg_N headers are not numbered 1..N")
    return tuple(numbered[n] for n in range(1, len(numbered) + 1))


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
    extra = tuple((k, v) for k, v in headers if k not in _KNOWN and not _ARG.fullmatch(k))
    return AgiRequest(
        script=script,
        query=query,
        args=_args(h),
        uniqueid=h.get("agi_uniqueid", ""),
        channel=h.get("agi_channel", ""),
        callerid=h.get("agi_callerid", ""),
        calleridname=h.get("agi_calleridname", ""),
        extension=h.get("agi_extension", ""),
        dnid=h.get("agi_dnid", ""),
        rdnis=h.get("agi_rdnis", ""),
        context=h.get("agi_context", ""),
        priority=h.get("agi_priority", ""),
        language=h.get("agi_language", ""),
        channel_type=h.get("agi_type", ""),
        accountcode=h.get("agi_accountcode", ""),
        callingpres=h.get("agi_callingpres", ""),
        callingani2=h.get("agi_callingani2", ""),
        callington=h.get("agi_callington", ""),
        callingtns=h.get("agi_callingtns", ""),
        version=h.get("agi_version", ""),
        enhanced=h.get("agi_enhanced", ""),
        threadid=h.get("agi_threadid", ""),
        network=h.get("agi_network", ""),
        network_script=h.get("agi_network_script", ""),
        request=h["agi_request"],
        extra=extra,
    )
