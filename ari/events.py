"""Parse ARI websocket event frames into typed, frozen events. Pure: no I/O, no clock.

One text frame of ``/ari/events`` is one JSON ``Message``; :func:`parse_event` turns it into one of
the classes below. Every other type becomes a small :class:`UnknownEvent` (envelope only), so the
full stream of a busy PBX (``subscribeAll=true``: ~80 events per call, 54 of them ChannelVarset)
costs one ``json.loads`` and little else per frame; ``wanted`` also skips building typed events a
consumer ignores (``parse_event(frame, wanted={"StasisStart"})``).

Fields and optionality are those of ``events.json`` (ARI 10): a field the model marks optional is
``X | None``. Malformed JSON, a missing required field or a wrong type raises
:class:`~callshield.errors.PeerProtocolError`; its message names the event type and the field but
never a value (extensions, numbers and dial strings are personal data; they are also kept out of
every ``repr``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import TypedDict

from callshield.ari.jsonfields import (
    JsonObject,
    as_object,
    get_int,
    get_opt_bool,
    get_opt_int,
    get_opt_str,
    get_str,
    get_str_list,
)
from callshield.ari.models import Bridge, Channel, get_bridge, get_channel, get_opt_channel
from callshield.errors import PeerProtocolError


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Envelope common to every ARI event (``Message`` + ``Event`` models)."""

    application: str
    """The application receiving the event (one socket may carry several: ``app=a,b``)."""
    timestamp: str
    """When Asterisk created the event (ARI ``Date`` string; see ``models.parse_ari_time``)."""
    asterisk_id: str | None
    """The Asterisk instance (entity id) that raised the event; optional in the model."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(Event):
    """Any event type callshield does not parse (or did not ask for): envelope only."""

    type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(Event):
    """A channel entered the application: ``Stasis(app,ARG1,...)`` gives ``args``."""

    args: tuple[str, ...] = field(repr=False)
    channel: Channel
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(Event):
    """A channel left the application (continue, hangup, or moved away)."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(Event):
    """A channel was created (seen for foreign channels only with subscribeAll)."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(Event):
    """A channel is gone. ``cause`` is the Q.850 cause; ``tech_cause`` e.g. the SIP status."""

    cause: int
    cause_txt: str
    channel: Channel
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(Event):
    """``channel.state`` changed (e.g. Ringing, Up)."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDialplan(Event):
    """The channel is about to run ``dialplan_app(dialplan_app_data)``."""

    channel: Channel
    dialplan_app: str
    dialplan_app_data: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(Event):
    """A variable was set; ``channel`` is None for a global variable."""

    variable: str
    value: str = field(repr=False)
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(Event):
    """A DTMF digit (0-9, A-E, # or *) ended. RFC 4733 digits may arrive twice ~65 ms apart."""

    digit: str
    duration_ms: int
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(Event):
    """A hangup was requested. With ``soft`` the cause is a soft-hangup flag, not Q.850."""

    channel: Channel
    cause: int | None = None
    soft: bool | None = None
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Event):
    """Dial progress: ``peer`` is the dialled channel; ``caller`` is absent for originations."""

    peer: Channel
    dialstatus: str
    """Empty when the dial starts, then RINGING, ANSWER, NOANSWER, BUSY, CANCEL, ..."""
    caller: Channel | None = None
    dialstring: str | None = field(default=None, repr=False)
    forward: str | None = field(default=None, repr=False)
    forwarded: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCreated(Event):
    """A bridge was created."""

    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(Event):
    """A bridge was destroyed."""

    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(Event):
    """A channel entered a bridge; ``bridge.channels`` already lists it."""

    bridge: Bridge
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(Event):
    """A channel left a bridge; ``bridge.channels`` no longer lists it."""

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationReplaced(Event):
    """Another websocket registered the same application name; this one gets no more events."""


class _Envelope(TypedDict):
    application: str
    timestamp: str
    asterisk_id: str | None


def _stasis_start(o: JsonObject, e: _Envelope) -> Event:
    w = "StasisStart"
    return StasisStart(
        **e,
        args=get_str_list(o, "args", w),
        channel=get_channel(o, "channel", w),
        replace_channel=get_opt_channel(o, "replace_channel", w),
    )


def _channel_destroyed(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelDestroyed"
    return ChannelDestroyed(
        **e,
        cause=get_int(o, "cause", w),
        cause_txt=get_str(o, "cause_txt", w),
        tech_cause=get_opt_int(o, "tech_cause", w),
        channel=get_channel(o, "channel", w),
    )


def _channel_dialplan(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelDialplan"
    return ChannelDialplan(
        **e,
        channel=get_channel(o, "channel", w),
        dialplan_app=get_str(o, "dialplan_app", w),
        dialplan_app_data=get_str(o, "dialplan_app_data", w),
    )


def _channel_varset(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelVarset"
    return ChannelVarset(
        **e,
        variable=get_str(o, "variable", w),
        value=get_str(o, "value", w),
        channel=get_opt_channel(o, "channel", w),
    )


def _channel_dtmf(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelDtmfReceived"
    return ChannelDtmfReceived(
        **e,
        digit=get_str(o, "digit", w),
        duration_ms=get_int(o, "duration_ms", w),
        channel=get_channel(o, "channel", w),
    )


def _channel_hangup_request(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelHangupRequest"
    return ChannelHangupRequest(
        **e,
        cause=get_opt_int(o, "cause", w),
        soft=get_opt_bool(o, "soft", w),
        tech_cause=get_opt_int(o, "tech_cause", w),
        channel=get_channel(o, "channel", w),
    )


def _dial(o: JsonObject, e: _Envelope) -> Event:
    w = "Dial"
    return Dial(
        **e,
        peer=get_channel(o, "peer", w),
        dialstatus=get_str(o, "dialstatus", w),
        caller=get_opt_channel(o, "caller", w),
        dialstring=get_opt_str(o, "dialstring", w),
        forward=get_opt_str(o, "forward", w),
        forwarded=get_opt_channel(o, "forwarded", w),
    )


def _entered_bridge(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelEnteredBridge"
    return ChannelEnteredBridge(**e, bridge=get_bridge(o, w), channel=get_opt_channel(o, "channel", w))


def _left_bridge(o: JsonObject, e: _Envelope) -> Event:
    w = "ChannelLeftBridge"
    return ChannelLeftBridge(**e, bridge=get_bridge(o, w), channel=get_channel(o, "channel", w))


_Parser = Callable[[JsonObject, _Envelope], Event]

_PARSERS: dict[str, _Parser] = {
    "StasisStart": _stasis_start,
    "StasisEnd": lambda o, e: StasisEnd(**e, channel=get_channel(o, "channel", "StasisEnd")),
    "ChannelCreated": lambda o, e: ChannelCreated(**e, channel=get_channel(o, "channel", "ChannelCreated")),
    "ChannelDestroyed": _channel_destroyed,
    "ChannelStateChange": lambda o, e: ChannelStateChange(
        **e, channel=get_channel(o, "channel", "ChannelStateChange")
    ),
    "ChannelDialplan": _channel_dialplan,
    "ChannelVarset": _channel_varset,
    "ChannelDtmfReceived": _channel_dtmf,
    "ChannelHangupRequest": _channel_hangup_request,
    "Dial": _dial,
    "BridgeCreated": lambda o, e: BridgeCreated(**e, bridge=get_bridge(o, "BridgeCreated")),
    "BridgeDestroyed": lambda o, e: BridgeDestroyed(**e, bridge=get_bridge(o, "BridgeDestroyed")),
    "ChannelEnteredBridge": _entered_bridge,
    "ChannelLeftBridge": _left_bridge,
    "ApplicationReplaced": lambda o, e: ApplicationReplaced(**e),
}

EVENT_TYPES: frozenset[str] = frozenset(_PARSERS)
"""The ``type`` values :func:`parse_event` turns into typed events (all others: UnknownEvent)."""


def decode_frame(frame: str | bytes) -> JsonObject:
    """The JSON object of one websocket text frame; PeerProtocolError if it is not one."""
    try:
        raw: object = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise PeerProtocolError(f"ARI event frame is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except (UnicodeDecodeError, ValueError):
        raise PeerProtocolError("ARI event frame is not valid UTF-8 JSON") from None
    return as_object(raw, "ARI event frame")


def parse_event(frame: str | bytes, wanted: Container[str] | None = None) -> Event:
    """Parse one websocket text frame into an :class:`Event`.

    ``wanted``: if given, only these types are fully parsed; the others (and every type not in
    :data:`EVENT_TYPES`) come back as :class:`UnknownEvent` without their payload being read.
    """
    return parse_object(decode_frame(frame), wanted)


def parse_object(obj: JsonObject, wanted: Container[str] | None = None) -> Event:
    """:func:`parse_event` of a frame already decoded by :func:`decode_frame`."""
    etype = get_str(obj, "type", "Message")
    if etype == "MissingParams":
        missing = ", ".join(get_str_list(obj, "params", "MissingParams"))
        raise PeerProtocolError(f"ARI refused the event websocket: missing parameters: {missing}")
    envelope: _Envelope = {
        "application": get_str(obj, "application", etype),
        "timestamp": get_str(obj, "timestamp", etype),
        "asterisk_id": get_opt_str(obj, "asterisk_id", etype),
    }
    parser = _PARSERS.get(etype)
    if parser is None or (wanted is not None and etype not in wanted):
        return UnknownEvent(**envelope, type=etype)
    return parser(obj, envelope)
