"""The Stasis application's events websocket: ``StasisStart`` read for what a verdict needs.

A verdict needs the channel's id and the ``Stasis()`` arguments. The channel snapshot (ten fields
and three nested objects, about half the cost of reading the event) is wanted only later, by the
keypad capture of an allowed call or by an opt-out offer, or not at all (a blocked call).
:class:`GateStream` decodes a ``StasisStart`` frame once and returns a :class:`GateStart` that
keeps the snapshot as decoded JSON, read into a :class:`~callshield.ari.models.Channel` by
:meth:`GateStart.channel` when asked.

Only the fields a verdict uses are checked first (:func:`gate_start`); a frame without them, or
with the wrong types, goes to the full parser, which skips it as malformed and names the field,
as before. A snapshot that turns out malformed when asked raises PeerProtocolError then, to the
capture or opt-out that asked: the call already has its verdict. Every other event type is read
by the full parser, from the same decoded object (no second decode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callshield.ari.events import Event, decode_frame, parse_object
from callshield.ari.jsonfields import JsonObject
from callshield.ari.models import Channel, parse_channel
from callshield.ari.websocket import EventStream
from callshield.errors import PeerProtocolError

__all__ = ["GateStart", "GateStream", "gate_start"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GateStart(Event):
    """A ``StasisStart``: the channel's id and the ``Stasis(app,ARG1,...)`` arguments."""

    channel_id: str
    args: tuple[str, ...] = field(repr=False)
    """May carry the number dialled: never shown."""
    snapshot: JsonObject = field(repr=False, compare=False)
    """The event's ``channel`` object as decoded, read by :meth:`channel`."""

    def channel(self) -> Channel:
        """The channel snapshot; PeerProtocolError names its first bad field."""
        return parse_channel(self.snapshot, "StasisStart.channel")


def gate_start(obj: JsonObject) -> GateStart | None:
    """A decoded ``StasisStart`` as a :class:`GateStart`, or None if a field a verdict uses (the
    channel's id, the arguments, the envelope) is missing or of the wrong type."""
    channel, args = obj.get("channel"), obj.get("args")
    application, timestamp, asterisk_id = obj.get("application"), obj.get("timestamp"), obj.get("asterisk_id")
    if type(channel) is not dict or type(args) is not list:
        return None
    channel_id = channel.get("id")
    if (
        type(channel_id) is not str
        or type(application) is not str
        or type(timestamp) is not str
        or (asterisk_id is not None and type(asterisk_id) is not str)
        or not all(type(arg) is str for arg in args)
    ):
        return None
    return GateStart(
        application=application,
        timestamp=timestamp,
        asterisk_id=asterisk_id,
        channel_id=channel_id,
        args=tuple(args),
        snapshot=channel,
    )


class GateStream(EventStream):
    """An events websocket that reads ``StasisStart`` as :class:`GateStart` (module docstring)."""

    def _parse(self, frame: str) -> Event | None:
        try:
            obj = decode_frame(frame)
            if obj.get("type") == "StasisStart":
                start = gate_start(obj)
                if start is not None:
                    return start
            return parse_object(obj, self._wanted)
        except PeerProtocolError as exc:
            self._skip(exc)
            return None
