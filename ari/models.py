"""ARI resource models callshield reads, parsed from decoded JSON. Pure: no I/O.

Field names and optionality follow the Swagger models of ARI 10 (Asterisk 22):
``Channel``, ``CallerID`` and ``DialplanCEP`` from ``channels.json``, ``Bridge`` from
``bridges.json``, ``Application`` from ``applications.json``, ``Playback`` from
``playbacks.json``. Only the fields callshield uses are kept; none is invented.

``Date`` fields stay the strings Asterisk sends (``2026-11-28T06:38:51.793+0000``): most are never
looked at, so they are not converted on the hot path; :func:`parse_ari_time` converts one on demand.

Personal data (extensions, caller/connected numbers, channel names of Local channels, application
data) is left out of every ``repr`` so that logging a model never leaks a phone number.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from callshield.ari.jsonfields import (
    JsonObject,
    get_int,
    get_obj,
    get_opt_obj,
    get_opt_str,
    get_str,
    get_str_list,
)
from callshield.errors import PeerProtocolError


@dataclass(frozen=True, slots=True)
class CallerID:
    """Caller identification (``CallerID``): both fields are required, often empty."""

    name: str = field(repr=False)
    number: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DialplanCEP:
    """Dialplan location (``DialplanCEP``): context, extension, priority and current application."""

    context: str
    exten: str = field(repr=False)
    priority: int
    app_name: str
    app_data: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel snapshot (``Channel``), as carried by events and returned by ``GET /channels``."""

    id: str
    """Unique id (AMI ``Uniqueid``): the key for every REST call on the channel."""
    name: str = field(repr=False)
    """E.g. ``PJSIP/agent1-00000000``; Local channels carry the dialled number in it."""
    state: str
    """One of Down, Rsrved, OffHook, Dialing, Ring, Ringing, Up, Busy, Dialing Offhook, Pre-ring, Unknown."""
    protocol_id: str = field(repr=False)
    """SIP Call-ID for chan_pjsip; empty for Local channels."""
    caller: CallerID
    connected: CallerID
    accountcode: str
    dialplan: DialplanCEP
    creationtime: str
    language: str


@dataclass(frozen=True, slots=True)
class Bridge:
    """A bridge (``Bridge``): ``channels`` lists the ids of the channels in it."""

    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    creator: str
    name: str
    channels: tuple[str, ...]
    creationtime: str
    video_mode: str | None = None


@dataclass(frozen=True, slots=True)
class Application:
    """A Stasis application (``Application``) and what it is subscribed to."""

    name: str
    channel_ids: tuple[str, ...]
    """Channels parked in the application or explicitly subscribed to."""
    bridge_ids: tuple[str, ...]
    endpoint_ids: tuple[str, ...]
    device_names: tuple[str, ...]
    events_allowed: tuple[str, ...]
    """Event types of the allow filter (``[{"type": ...}]`` on the wire); empty means all."""
    events_disallowed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Playback:
    """A playback operation (``Playback``) as answered by ``POST /channels/{id}/play``."""

    id: str
    media_uri: str
    target_uri: str
    state: str
    language: str | None = None
    next_media_uri: str | None = None


def parse_caller_id(obj: JsonObject, where: str) -> CallerID:
    """Parse a ``CallerID`` object."""
    return CallerID(name=get_str(obj, "name", where), number=get_str(obj, "number", where))


def parse_dialplan(obj: JsonObject, where: str = "DialplanCEP") -> DialplanCEP:
    """Parse a ``DialplanCEP`` object."""
    return DialplanCEP(
        context=get_str(obj, "context", where),
        exten=get_str(obj, "exten", where),
        priority=get_int(obj, "priority", where),
        app_name=get_str(obj, "app_name", where),
        app_data=get_str(obj, "app_data", where),
    )


def parse_channel(obj: JsonObject, where: str = "Channel") -> Channel:
    """Parse a ``Channel`` object; PeerProtocolError names the first bad field."""
    channel = _well_formed_channel(obj)
    return channel if channel is not None else _checked_channel(obj, where)


def _well_formed_channel(obj: JsonObject) -> Channel | None:
    """The common case in one go (every field there, with its type); None for anything else,
    which :func:`_checked_channel` then reads field by field to name the first bad one.

    A channel comes with every event of a call: this is several times cheaper than the checked
    path, and accepts exactly what it accepts.
    """
    try:
        caller, connected, dialplan = obj["caller"], obj["connected"], obj["dialplan"]
        if type(caller) is not dict or type(connected) is not dict or type(dialplan) is not dict:
            return None
        texts: tuple[str, ...] = (  # type: ignore[assignment]  # the join below checks them
            obj["id"], obj["name"], obj["state"], obj["protocol_id"], obj["accountcode"],
            obj["creationtime"], obj["language"], caller["name"], caller["number"], connected["name"],
            connected["number"], dialplan["context"], dialplan["exten"], dialplan["app_name"],
            dialplan["app_data"],
        )  # fmt: skip
        "".join(texts)  # TypeError unless every one is a string
        priority = dialplan["priority"]
    except (KeyError, TypeError):
        return None
    if type(priority) is not int:
        return None
    return Channel(
        texts[0],
        texts[1],
        texts[2],
        texts[3],
        CallerID(texts[7], texts[8]),
        CallerID(texts[9], texts[10]),
        texts[4],
        DialplanCEP(texts[11], texts[12], priority, texts[13], texts[14]),
        texts[5],
        texts[6],
    )


def _checked_channel(obj: JsonObject, where: str) -> Channel:
    return Channel(
        id=get_str(obj, "id", where),
        name=get_str(obj, "name", where),
        state=get_str(obj, "state", where),
        protocol_id=get_str(obj, "protocol_id", where),
        caller=parse_caller_id(get_obj(obj, "caller", where), where + ".caller"),
        connected=parse_caller_id(get_obj(obj, "connected", where), where + ".connected"),
        accountcode=get_str(obj, "accountcode", where),
        dialplan=parse_dialplan(get_obj(obj, "dialplan", where), where + ".dialplan"),
        creationtime=get_str(obj, "creationtime", where),
        language=get_str(obj, "language", where),
    )


def parse_bridge(obj: JsonObject, where: str = "Bridge") -> Bridge:
    """Parse a ``Bridge`` object."""
    return Bridge(
        id=get_str(obj, "id", where),
        technology=get_str(obj, "technology", where),
        bridge_type=get_str(obj, "bridge_type", where),
        bridge_class=get_str(obj, "bridge_class", where),
        creator=get_str(obj, "creator", where),
        name=get_str(obj, "name", where),
        channels=get_str_list(obj, "channels", where),
        creationtime=get_str(obj, "creationtime", where),
        video_mode=get_opt_str(obj, "video_mode", where),
    )


def get_channel(obj: JsonObject, key: str, where: str) -> Channel:
    """A required nested ``Channel`` field (e.g. ``StasisStart.channel``)."""
    value = get_obj(obj, key, where)
    return _well_formed_channel(value) or _checked_channel(value, f"{where}.{key}")


def get_opt_channel(obj: JsonObject, key: str, where: str) -> Channel | None:
    """An optional nested ``Channel`` field (e.g. ``Dial.caller``)."""
    value = get_opt_obj(obj, key, where)
    if value is None:
        return None
    return _well_formed_channel(value) or _checked_channel(value, f"{where}.{key}")


def get_bridge(obj: JsonObject, where: str) -> Bridge:
    """The required ``bridge`` field of a bridge event."""
    return parse_bridge(get_obj(obj, "bridge", where), where + ".bridge")


def _filter_types(obj: JsonObject, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise PeerProtocolError(f"{where}.{key} must be a list")
    types: list[str] = []
    for item in value:
        if not isinstance(item, dict):
            raise PeerProtocolError(f"{where}.{key} must be a list of objects")
        types.append(get_str(item, "type", f"{where}.{key}[]"))
    return tuple(types)


def parse_application(obj: JsonObject, where: str = "Application") -> Application:
    """Parse an ``Application`` object."""
    return Application(
        name=get_str(obj, "name", where),
        channel_ids=get_str_list(obj, "channel_ids", where),
        bridge_ids=get_str_list(obj, "bridge_ids", where),
        endpoint_ids=get_str_list(obj, "endpoint_ids", where),
        device_names=get_str_list(obj, "device_names", where),
        events_allowed=_filter_types(obj, "events_allowed", where),
        events_disallowed=_filter_types(obj, "events_disallowed", where),
    )


def parse_playback(obj: JsonObject, where: str = "Playback") -> Playback:
    """Parse a ``Playback`` object."""
    return Playback(
        id=get_str(obj, "id", where),
        media_uri=get_str(obj, "media_uri", where),
        target_uri=get_str(obj, "target_uri", where),
        state=get_str(obj, "state", where),
        language=get_opt_str(obj, "language", where),
        next_media_uri=get_opt_str(obj, "next_media_uri", where),
    )


_ARI_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}[+-]\d\d:?\d\d", re.ASCII)
"""An ARI ``Date``: Asterisk writes milliseconds and a ``+zzzz`` offset."""


def parse_ari_time(text: str) -> datetime:
    """Convert an ARI ``Date`` (``2026-11-28T06:38:51.793+0000``) to an aware datetime.

    >>> parse_ari_time("2026-11-28T06:38:51.793+0000").isoformat()
    '2026-11-28T06:38:51.793000+00:00'
    """
    if _ARI_TIME.fullmatch(text):  # the form of ``strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")``,
        with contextlib.suppress(ValueError):  # 0.6 us instead of 5.3 (a month 13 still refused)
            return datetime.fromisoformat(text)
    raise PeerProtocolError("ARI timestamp is not in the form YYYY-MM-DDTHH:MM:SS.mmm+zzzz")
