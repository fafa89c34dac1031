"""The guard's events websocket: the full stream of a PBX, read for the few fields the guard uses.

With ``subscribeAll`` a busy PBX sends the guard about 20 events per outbound leg. Most are
dropped by :class:`~callshield.ari.websocket.EventStream`'s type test before any JSON parsing;
the guard wants ``Dial`` only (and ``ApplicationReplaced``), and :class:`GuardStream` goes
further with those:

* A ``Dial`` is first read in the layout Asterisk writes (:func:`leg_start`: its head
  ``{"type":"Dial","timestamp":"...","dialstatus":"RINGING",...``, anchored at the frame's first
  character, and past it the channel model of the specification), for JSON whose objects have
  unique keys (RFC 8259 section 4; jansson, Asterisk's encoder, cannot write a duplicate). A leg's
  start is read so, without decoding; the peer of a ``Dial`` that ends a leg too. A frame laid out
  otherwise is read by :data:`DIAL_HEAD` (the head alone), or :func:`dial_progress`'s byte test,
  exact for any JSON, or decoded.
* ``Dial`` progress frames are dropped without parsing: a new leg is announced by a ``Dial`` with
  an empty ``dialstatus`` (Asterisk publishes the start of a dial with a NULL status, serialised as
  ``""``; progress and the end carry RINGING, PROGRESS, BUSY, NOANSWER, ...). A leg whose start
  the guard missed (it was reconnecting) is found ringing by the channel listing that follows
  every connect, as before; ``ANSWER`` is kept, for a leg answered before that listing.
* Sharing the guard's ringing legs (:attr:`GuardStream.legs`), it also ends the entry of a known
  leg whose ``Dial`` ends (``ANSWER`` or a final status), and drops that frame: it changes nothing
  else for the guard. What is left is about one frame per leg, its start, read into
  :class:`DialSeen` (the guard needs 6 fields of a ``Dial``, not its three full channel
  snapshots). Decoded, only the fields the guard uses are checked; a frame without them (or of
  the wrong types) goes to the full parser, which skips it as malformed.

Other types (those of the guard's hooks) are parsed in full, by the full parser at once when
their type reads as Asterisk writes it. The guard opens this stream unless a hook takes ``Dial``
events (those it reads in full, for both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field

from callshield.ari.events import Event
from callshield.ari.websocket import EventStream

__all__ = [
    "DIAL_ENDS",
    "FINAL_DIALSTATUS",
    "DialSeen",
    "GuardStream",
    "dial_progress",
    "lean_event",
    "leg_start",
    "peer_of",
    "plain_dialstatus",
    "plain_type",
]

KEPT_STATUSES = frozenset({"", "ANSWER"})
"""``Dial`` statuses never dropped unparsed as progress: the start of a leg, and its answer."""
FINAL_DIALSTATUS = frozenset(
    {"NOANSWER", "BUSY", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS"}
)
"""A ``Dial`` with one of these reports the end of a leg that was never answered."""
DIAL_ENDS = FINAL_DIALSTATUS | {"ANSWER"}
"""Statuses after which a leg's dial is over: nothing more of it for the guard to stop."""
_SCAN: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner ``json.loads`` runs (the same decoder settings), without the layers around it."""
DIAL_HEAD = re.compile(r'\{"type":"Dial","timestamp":"[^"\\]*","dialstatus":"([^"\\]*)",')
"""How Asterisk starts every ``Dial``, anchored at the frame's first character (module docstring)."""
_FIRST_ID = re.compile(r'[ \t\n\r]*:[ \t\n\r]*\{[ \t\n\r]*"id"[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')
"""After ``"peer"``: an object whose first key is ``id``, with a string value without escapes."""
_PLAIN_VALUE = re.compile(r'[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')
"""After a key: the colon and a string value without escapes (JSON whitespace only)."""
_LAYOUT = re.compile(
    r'\{"type":"Dial","timestamp":"([^"\\]*)","dialstatus":"([^"\\]*)","forward":"[^"\\]*",'
    r'"dialstring":"([^"\\]*)",(?:"caller":\{"id":"([^"\\]*)",)?'
)
"""A ``Dial`` as Asterisk writes it, up to the caller's id (an origination has no caller: its
``peer`` follows); see :func:`leg_start`."""
_PEER_HEAD = re.compile(r'"peer":\{"id":"([^"\\]*)","name":"([^"\\]*)",')
_PEER_EXTEN = re.compile(r',"dialplan":\{"context":"[^"\\]*","exten":"([^"\\]*)",')
_TYPE_HEAD = re.compile(r'\{"type":"([^"\\]*)",')
"""The event's type as Asterisk writes it, first (anchored: exact, keys being unique)."""
_TAIL = re.compile(r',"asterisk_id":"([^"\\]*)","application":"([^"\\]*)"\}')
"""The end of every event Asterisk writes to an application."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DialSeen(Event):
    """The fields of a ``Dial`` the guard uses (``peer`` is the dialled channel)."""

    peer_id: str
    peer_name: str
    peer_exten: str = field(repr=False)
    """The peer's ``dialplan.exten`` (a ``Dial()`` peer's is the number dialled)."""
    dialstatus: str
    caller_id: str | None
    """The dialling channel; None for an origination (no ``caller``)."""
    dialstring: str | None = field(repr=False)


def _sole_value(frame: str, key: str) -> str | None:
    """The value of ``key`` if it occurs once in ``frame``, as a key with a plain string value."""
    at = frame.find(key)
    if at < 0 or frame.find(key, at + 1) >= 0:
        return None
    start = at + len(key)
    if frame.startswith(':"', start):  # compact, as Asterisk writes it: no pattern needed
        end = frame.find('"', start + 2)
        value = frame[start + 2 : end]
        return value if end >= 0 and "\\" not in value else None
    found = _PLAIN_VALUE.match(frame, start)
    return found.group(1) if found is not None else None


def plain_type(frame: str) -> str | None:
    """The event's ``type`` read without decoding, or None if that is not exact (see below)."""
    return None if "\\" in frame else _sole_value(frame, '"type"')


def dial_progress(frame: str) -> bool:
    """True if ``frame`` is a ``Dial`` whose status is neither empty (a new leg) nor ANSWER.

    Exact, or False (the frame is then parsed): without a backslash anywhere there is no escape,
    so every quote opens or closes a string, and a JSON string equal to ``type`` or
    ``dialstatus`` can only be written as those letters between quotes. So when ``"dialstatus"``
    occurs once, followed by a colon and a string value, it is the event's own key (required by
    the model, present in every Dial Asterisk sends) with that value, wherever it stands among
    the keys and however the JSON is spaced; the same for ``"type"``. Any doubt (a nested key of
    the same name, an escape, a duplicate) keeps the frame.
    """
    status = plain_dialstatus(frame)
    return status is not None and status not in KEPT_STATUSES


def plain_dialstatus(frame: str) -> str | None:
    """A ``Dial``'s ``dialstatus`` read without decoding (exact by the argument of
    :func:`dial_progress`); None if the frame is no ``Dial`` or that is not exact."""
    return _sole_value(frame, '"dialstatus"') if plain_type(frame) == "Dial" else None


def peer_of(frame: str) -> str | None:
    """The id of a ``Dial``'s ``peer`` read without decoding, or None if that is not exact.

    Asterisk writes the channel's ``id`` first: ``"peer":{"id":"..."``. By the argument of
    :func:`dial_progress`, a sole ``"peer"`` followed by a colon and an object is the event's own
    ``peer`` key (the model requires it), and a ``"id"`` key right after its brace is that
    object's; no ``"id"`` anywhere after it rules out a second ``id`` key in the object (the
    decoder would keep the last). Any other layout (``id`` not first, a channel written after
    the peer, spacing inside the brace aside) is None: the frame is decoded.
    """
    if "\\" in frame:
        return None
    at = frame.find('"peer"')
    if at < 0 or frame.find('"peer"', at + 1) >= 0:
        return None
    found = _FIRST_ID.match(frame, at + 6)
    if found is None or frame.find('"id"', found.end()) >= 0:
        return None
    return found.group(1)


def _envelope(obj: dict[str, object]) -> tuple[str, str, str | None] | None:
    """(application, timestamp, asterisk_id) if they have the model's types, else None."""
    application, timestamp, asterisk_id = obj.get("application"), obj.get("timestamp"), obj.get("asterisk_id")
    if not isinstance(application, str) or not isinstance(timestamp, str):
        return None
    if asterisk_id is not None and not isinstance(asterisk_id, str):
        return None
    return application, timestamp, asterisk_id


def _lean_dial(obj: dict[str, object]) -> Event | None:
    peer, caller = obj.get("peer"), obj.get("caller")
    status, dialstring = obj.get("dialstatus"), obj.get("dialstring")
    envelope = _envelope(obj)
    if not isinstance(peer, dict) or not isinstance(status, str) or envelope is None:
        return None
    peer_id, name, dialplan = peer.get("id"), peer.get("name"), peer.get("dialplan")
    if not isinstance(peer_id, str) or not isinstance(name, str) or not isinstance(dialplan, dict):
        return None
    exten = dialplan.get("exten")
    caller_id = caller.get("id") if isinstance(caller, dict) else None
    if (
        not isinstance(exten, str)
        or (caller is not None and not isinstance(caller_id, str))
        or (dialstring is not None and not isinstance(dialstring, str))
    ):
        return None
    return DialSeen(
        application=envelope[0],
        timestamp=envelope[1],
        asterisk_id=envelope[2],
        peer_id=peer_id,
        peer_name=name,
        peer_exten=exten,
        dialstatus=status,
        caller_id=caller_id,
        dialstring=dialstring,
    )


def leg_start(frame: str) -> DialSeen | None:
    """A leg's starting ``Dial`` read in Asterisk's own layout, without decoding; None in any
    other layout (then :func:`lean_event` decodes it).

    Asterisk writes a ``Dial`` as ``{"type","timestamp","dialstatus","forward","dialstring",
    "caller"?,"peer","forwarded"?,"asterisk_id","application"}`` and a channel as ``{"id","name",
    "state","protocol_id","caller":{...},"connected":{...},"accountcode","dialplan":{"context",
    "exten",...},...}`` (captures/*.jsonl). Without a backslash in the frame no string holds a
    quote, so each pattern below matches keys and values, never text inside a string. Anchored at
    the first character, the head is the event's own keys; the tail, ending at the last
    character, is its last two. Between them only the spec's channel model is relied on: no key of
    a channel (nor of its caller, connected or dialplan objects; variables are strings) is a
    ``peer`` holding an object, so the first ``},"peer":{"id":"`` after the caller's id closes the
    caller and opens the event's peer, and a channel holds one ``dialplan``, so the first after the
    peer's name is the peer's. As everywhere here, keys are taken to be unique (RFC 8259).
    """
    head = _LAYOUT.match(frame) if "\\" not in frame else None
    return _start_of(frame, head) if head is not None and head.group(2) == "" else None


def _start_of(frame: str, head: re.Match[str]) -> DialSeen | None:
    """:func:`leg_start` past its head (``frame`` without a backslash)."""
    peer = _peer_of(frame, head)
    if peer is None:
        return None
    exten = _PEER_EXTEN.search(frame, peer.end())
    end = frame.rfind(',"asterisk_id":"')
    tail = _TAIL.match(frame, end) if end > 0 else None
    if exten is None or tail is None or tail.end() != len(frame):
        return None
    return DialSeen(
        application=tail.group(2),
        timestamp=head.group(1),
        asterisk_id=tail.group(1),
        peer_id=peer.group(1),
        peer_name=peer.group(2),
        peer_exten=exten.group(1),
        dialstatus="",
        caller_id=head.group(4),
        dialstring=head.group(3),
    )


def _peer_of(frame: str, head: re.Match[str]) -> re.Match[str] | None:
    """The peer's id and name after a :data:`_LAYOUT` head (see :func:`leg_start`)."""
    at = head.end()
    if head.group(4) is not None:  # a caller: the peer follows it
        at = frame.find('},"peer":{"id":"', at) + 2
        if at < 2:
            return None
    return _PEER_HEAD.match(frame, at)


def _decode(frame: str) -> object:
    """``json.loads(frame)``, straight through the decoder's C scanner when the frame is one JSON
    value from its first character to its last (as Asterisk writes them), else by ``json.loads``."""
    try:
        obj, end = _SCAN(frame, 0)
    except StopIteration:  # no value at 0 (leading whitespace, say): json.loads decides
        end = -1
    return obj if end == len(frame) else json.loads(frame)


def lean_event(frame: str) -> Event | None:
    """:class:`DialSeen` read from ``frame``; None for any other type, or if a field the guard
    uses is missing or of the wrong type (the full parser decides)."""
    try:
        obj = _decode(frame)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return _lean_dial(obj) if obj.get("type") == "Dial" else None


class GuardStream(EventStream):
    """An events websocket that reads ``Dial`` lean (module docstring).

    Open it with ``client.events(..., only_wanted=True, kind=GuardStream)``.
    """

    legs: MutableMapping[str, None] | None = None
    """The guard's ringing outbound legs, when it shares them: the ``Dial`` that ends one of them
    (answered, or a final status) ends its entry here and is dropped (the peer's id read in
    Asterisk's layout as by :func:`leg_start`, or else by :func:`peer_of`); it changes nothing else
    for the guard."""
    progress_dropped = 0
    """``Dial`` progress frames dropped unparsed."""
    known_dropped = 0
    """``Dial`` ends of known legs dropped (their entry ended)."""

    def _parse(self, frame: str) -> Event | None:
        layout = _LAYOUT.match(frame) if "\\" not in frame else None
        if layout is not None:  # as Asterisk writes it
            status: str | None = layout.group(2)
            if status == "":
                start = _start_of(frame, layout)
                return start if start is not None else self._decoded(frame)
        elif (kind := _TYPE_HEAD.match(frame)) is not None and kind[1] != "Dial":
            return super()._parse(frame)  # another type (a hook's), as Asterisk writes it: in full
        elif (head := DIAL_HEAD.match(frame)) is not None:
            status = head.group(1)
        else:  # another layout: the exact byte test (None: no Dial, or in doubt: decoded)
            status = plain_dialstatus(frame)
        if status is None or status == "" or not self._dial_dropped(frame, status, layout):
            return self._decoded(frame)
        return None

    def _decoded(self, frame: str) -> Event | None:
        event = lean_event(frame)
        return event if event is not None else super()._parse(frame)

    def _dial_dropped(self, frame: str, status: str, layout: re.Match[str] | None) -> bool:
        """Whether the ``Dial`` with this (non-empty) ``status`` is dropped unparsed (``layout``:
        its :data:`_LAYOUT` head, when written as Asterisk writes it)."""
        if status not in DIAL_ENDS:
            self.progress_dropped += 1
            return True
        legs = self.legs
        if legs is not None:
            if layout is not None:
                found = _peer_of(frame, layout)
                peer = found.group(1) if found is not None else None
            else:
                peer = peer_of(frame)
            if peer is not None and peer in legs:  # a known leg: its entry ends here
                del legs[peer]
                self.known_dropped += 1
                return True
        if status == "ANSWER":
            return False  # a leg answered before the guard knew it: read (checked)
        self.progress_dropped += 1  # the end of a leg unknown here: nothing to stop
        return True
