"""The guard's events websocket: the full stream of a PBX, read for the few fields the guard uses.

With ``subscribeAll`` a busy PBX sends the guard about 20 events per outbound leg. Most are
dropped by :class:`~callshield.ari.websocket.EventStream`'s type test before any JSON parsing;
:class:`GuardStream` goes further with what is left:

* ``Dial`` progress frames are dropped without parsing (:func:`dial_progress`): a new leg is
  announced by a ``Dial`` with an empty ``dialstatus`` (Asterisk publishes the start of a dial
  with a NULL status, serialised as ``""``; progress and the end carry RINGING, PROGRESS, BUSY,
  NOANSWER, ...). A leg whose start the guard missed (it was reconnecting) is found ringing by
  the channel listing that follows every connect, as before; ``ANSWER`` is kept, for a leg
  answered before that listing. The test is exact or it keeps the frame: :func:`dial_progress`.
* ``Dial`` and ``ChannelDestroyed`` become :class:`DialSeen` and :class:`ChannelGone`, read
  from the decoded JSON field by field (the guard needs 6 fields of a ``Dial``, not its three
  full channel snapshots; of a ``ChannelDestroyed``, the channel id, read without decoding by
  :func:`gone_of` when that is exact). Only the fields the guard uses are checked; a frame
  without them (or of the wrong types) goes to the full parser, which skips it as malformed.
* Sharing the guard's legs (:attr:`GuardStream.legs`), it also drops the ``ANSWER`` of a leg the
  guard knows and the ``ChannelDestroyed`` of any other channel, by their ids read without
  decoding (:func:`peer_of`; a sole ``"id"`` as in :func:`gone_of`; exact or the frame is read
  as above): they change nothing for the guard. What is left is about two frames per leg, its
  start (decoded at once when laid out as Asterisk writes one) and its end.

Other types are parsed in full. The guard opens this stream only when it has no hooks (they get
full events).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from callshield.ari.events import Event
from callshield.ari.websocket import EventStream

__all__ = [
    "ChannelGone",
    "DialSeen",
    "GuardStream",
    "dial_progress",
    "gone_of",
    "lean_event",
    "peer_of",
    "plain_type",
]

KEPT_STATUSES = frozenset({"", "ANSWER"})
"""``Dial`` statuses never dropped unparsed: the start of a leg, and its answer."""
_SCAN: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner ``json.loads`` runs (the same decoder settings), without the layers around it."""
_STARTS_LEG = re.compile(r'\{"type":"Dial","timestamp":"[^"]*","dialstatus":"",')
"""How Asterisk starts the ``Dial`` of a new leg: a hint only (such frames are decoded)."""
_FIRST_ID = re.compile(r'[ \t\n\r]*:[ \t\n\r]*\{[ \t\n\r]*"id"[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')
"""After ``"peer"``: an object whose first key is ``id``, with a string value without escapes."""
_PLAIN_VALUE = re.compile(r'[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"')
"""After a key: the colon and a string value without escapes (JSON whitespace only)."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelGone(Event):
    """A ``ChannelDestroyed``, reduced to the channel id."""

    channel_id: str


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
    return plain_type(frame) == "Dial" and _progress(frame)


def _progress(frame: str) -> bool:
    status = _sole_value(frame, '"dialstatus"')
    return status is not None and status not in KEPT_STATUSES


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


def gone_of(frame: str) -> ChannelGone | None:
    """A ``ChannelDestroyed`` frame read without decoding it, or None (then it is decoded)."""
    return _gone(frame, _sole_value(frame, '"id"')) if plain_type(frame) == "ChannelDestroyed" else None


def _gone(frame: str, channel_id: str | None) -> ChannelGone | None:
    """Exact by the argument of :func:`dial_progress`: ``id`` is a key of the channel only (not of
    the event, nor of its caller, connected or dialplan objects), so a sole ``"id"`` is the
    channel's; ``application``, ``timestamp`` and ``asterisk_id`` are keys of the event only."""
    application = _sole_value(frame, '"application"')
    timestamp = _sole_value(frame, '"timestamp"')
    if channel_id is None or application is None or timestamp is None:
        return None
    asterisk_id = _sole_value(frame, '"asterisk_id"')
    if asterisk_id is None and '"asterisk_id"' in frame:
        return None  # there, but not a sole plain string: let the decoder decide
    return ChannelGone(
        application=application, timestamp=timestamp, asterisk_id=asterisk_id, channel_id=channel_id
    )


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


def _lean_destroyed(obj: dict[str, object]) -> Event | None:
    channel = obj.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    envelope = _envelope(obj)
    if not isinstance(channel_id, str) or envelope is None:
        return None
    application, timestamp, asterisk_id = envelope
    return ChannelGone(
        application=application, timestamp=timestamp, asterisk_id=asterisk_id, channel_id=channel_id
    )


def _decode(frame: str) -> object:
    """``json.loads(frame)``, straight through the decoder's C scanner when the frame is one JSON
    value from its first character to its last (as Asterisk writes them), else by ``json.loads``."""
    try:
        obj, end = _SCAN(frame, 0)
    except StopIteration:  # no value at 0 (leading whitespace, say): json.loads decides
        end = -1
    return obj if end == len(frame) else json.loads(frame)


def lean_event(frame: str) -> Event | None:
    """:class:`DialSeen` or :class:`ChannelGone` read from ``frame``; None for any other type,
    or if a field the guard uses is missing or of the wrong type (the full parser decides)."""
    try:
        obj = _decode(frame)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "Dial":
        return _lean_dial(obj)
    return _lean_destroyed(obj) if kind == "ChannelDestroyed" else None


class GuardStream(EventStream):
    """An events websocket that reads ``Dial`` and ``ChannelDestroyed`` lean (module docstring).

    Open it with ``client.events(..., only_wanted=True, kind=GuardStream)``.
    """

    legs: Container[str] | None = None
    """The guard's outbound legs, when it shares them: an ``ANSWER`` of one of them (already
    known) and the end of any other channel change nothing for the guard, and are dropped when
    the id reads exactly (:func:`peer_of`, :func:`gone_of`)."""
    progress_dropped = 0
    """``Dial`` progress frames dropped unparsed."""
    known_dropped = 0
    """Frames dropped because of :attr:`legs`."""

    def _parse(self, frame: str) -> Event | None:
        if _STARTS_LEG.match(frame):  # decoded at once: right whatever the frame turns out to be
            return self._decoded(frame)
        kind = plain_type(frame)
        if kind == "Dial":
            if self._dial_dropped(frame):
                return None
        elif kind == "ChannelDestroyed":
            channel_id = _sole_value(frame, '"id"')
            if channel_id is not None and self.legs is not None and channel_id not in self.legs:
                self.known_dropped += 1
                return None
            gone = _gone(frame, channel_id)
            if gone is not None:
                return gone
        return self._decoded(frame)

    def _decoded(self, frame: str) -> Event | None:
        event = lean_event(frame)
        return event if event is not None else super()._parse(frame)

    def _dial_dropped(self, frame: str) -> bool:
        status = _sole_value(frame, '"dialstatus"')
        if status is not None and status not in KEPT_STATUSES:
            self.progress_dropped += 1
            return True
        if status == "ANSWER" and self.legs is not None and peer_of(frame) in self.legs:
            self.known_dropped += 1
            return True
        return False
