"""State of the fake Asterisk: channels, bridges, applications, sockets, and event routing.

JSON shapes (key names, key order, which optional keys appear) are copied from the captures in
``../shared/asterisk/captures``: a channel snapshot is exactly the ten keys Asterisk 22 sends, and
every event is ``{..., "type", "timestamp", ..., "asterisk_id", "application"}`` as recorded.

Routing follows Asterisk: an event about channel C reaches application A when C is parked in A
(in Stasis), A subscribed to ``channel:C`` (or to the bridge), or A's websocket asked for
``subscribeAll``; ``StasisStart``/``StasisEnd`` go only to the application concerned. The app's
event filter (``PUT /applications/{app}/eventFilter``) applies last. One copy per application,
so a socket opened with ``app=a,b`` may get the same event twice (``application`` differs).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    28: "Invalid number format (addr incomplete)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}
# chan_pjsip answers an unanswered INVITE with these SIP statuses (ChannelDestroyed.tech_cause).
SIP_STATUS_FOR_CAUSE = {1: 404, 17: 486, 18: 408, 19: 480, 21: 403, 28: 484, 34: 503, 38: 500}


def ari_time() -> str:
    """Now, in ARI's ``Date`` format: ``2026-11-28T06:38:51.793+0000``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass(frozen=True, slots=True)
class Continued:
    """Where ``continue`` sent a channel, resolved like Asterisk (priority None: by label)."""

    context: str
    extension: str
    priority: int | None
    label: str | None = None


@dataclass
class FakeChannel:
    """A channel of the fake PBX. Snapshot fields first, then what tests inspect."""

    id: str
    name: str
    state: str = "Ring"
    protocol_id: str = ""
    caller_name: str = ""
    caller_number: str = ""
    connected_name: str = ""
    connected_number: str = ""
    accountcode: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    creationtime: str = field(default_factory=ari_time)
    language: str = "en"
    variables: dict[str, str] = field(default_factory=dict)
    """Variables set over ARI (and by :meth:`FakeAri.varset`)."""
    stasis_app: str | None = None
    """The application the channel is parked in, or None."""
    stasis_args: tuple[str, ...] = ()
    stasis_status: str | None = None
    """STASISSTATUS as the dialplan would see it: SUCCESS after leaving, FAILED if no app."""
    continued: Continued | None = None
    hangup_cause: int | None = None
    destroyed: bool = False
    subscribers: set[str] = field(default_factory=set)
    """Applications explicitly subscribed with ``eventSource=channel:{id}``."""
    bridge_id: str | None = None
    dialed_by: str | None = None
    """For a Dial peer: the calling channel's id ('' for an origination without caller)."""
    dialstring: str | None = None
    snooping: tuple[str, str, str] | None = None
    """For a Snoop channel: (spied channel id, spy, whisper)."""

    def snapshot(self) -> dict[str, object]:
        """The ``Channel`` JSON, keys in Asterisk's order."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.connected_name, "number": self.connected_number},
            "accountcode": self.accountcode,
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": self.creationtime,
            "language": self.language,
        }


@dataclass
class FakeBridge:
    """A bridge (a ``Dial()`` bridge by default: basic class, no creator)."""

    id: str
    channels: list[str] = field(default_factory=list)
    technology: str = "simple_bridge"
    bridge_type: str = "mixing"
    bridge_class: str = "basic"
    creator: str = ""
    name: str = ""
    creationtime: str = field(default_factory=ari_time)
    video_mode: str = "none"
    subscribers: set[str] = field(default_factory=set)
    destroyed: bool = False

    def snapshot(self) -> dict[str, object]:
        """The ``Bridge`` JSON, keys in Asterisk's order."""
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": self.bridge_class,
            "creator": self.creator,
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": self.creationtime,
            "video_mode": self.video_mode,
        }


@dataclass(eq=False)
class Socket:
    """One events websocket connection."""

    ws: web.WebSocketResponse
    request: web.Request
    apps: tuple[str, ...]
    subscribe_all: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    open: bool = True


@dataclass
class AppState:
    """A Stasis application: active while a websocket holds it."""

    name: str
    socket: Socket | None = None
    events_allowed: list[str] = field(default_factory=list)
    events_disallowed: list[str] = field(default_factory=list)
    endpoint_ids: list[str] = field(default_factory=list)
    device_names: list[str] = field(default_factory=list)

    def wants(self, event_type: str) -> bool:
        """The application's event filter (disallowed wins; empty allowed means all)."""
        if event_type in self.events_disallowed:
            return False
        return not self.events_allowed or event_type in self.events_allowed


@dataclass(frozen=True, slots=True)
class SentEvent:
    """An event frame the fake wrote to a websocket; ``seq`` orders it against requests."""

    seq: int
    application: str
    event: dict[str, object]

    @property
    def type(self) -> str:
        """The event's ``type``."""
        return str(self.event["type"])


class World:
    """All state of the fake PBX, and delivery of events to websockets."""

    def __init__(self, asterisk_id: str) -> None:
        self.asterisk_id = asterisk_id
        self.channels: dict[str, FakeChannel] = {}
        self.bridges: dict[str, FakeBridge] = {}
        self.apps: dict[str, AppState] = {}
        self.sockets: list[Socket] = []
        self.sent: list[SentEvent] = []
        self.rest_responses: list[SentEvent] = []
        """``RESTResponse`` frames written (REST over the websocket), apart from the events."""
        self.seq = itertools.count(1)
        self._ids = itertools.count(1)

    def new_channel_id(self) -> str:
        """A uniqueid in Asterisk's form: ``<epoch>.<counter>``."""
        return f"{int(time.time())}.{next(self._ids)}"

    def live_channel(self, channel_id: str) -> FakeChannel | None:
        """The channel if it exists and is not destroyed."""
        channel = self.channels.get(channel_id)
        return None if channel is None or channel.destroyed else channel

    def app_active(self, name: str) -> bool:
        """True while a websocket holds the application."""
        state = self.apps.get(name)
        return state is not None and state.socket is not None

    def app_exists(self, name: str) -> bool:
        """Registered: active, or inactive but still holding parked channels."""
        if self.app_active(name):
            return True
        return name in self.apps and any(c.stasis_app == name for c in self._live())

    def app_json(self, name: str) -> dict[str, object]:
        """The ``Application`` JSON."""
        state = self.apps[name]
        channel_ids = [c.id for c in self._live() if c.stasis_app == name or name in c.subscribers]
        bridge_ids = [b.id for b in self.bridges.values() if not b.destroyed and name in b.subscribers]
        return {
            "name": name,
            "channel_ids": channel_ids,
            "bridge_ids": bridge_ids,
            "endpoint_ids": list(state.endpoint_ids),
            "device_names": list(state.device_names),
            "events_allowed": [{"type": t} for t in state.events_allowed],
            "events_disallowed": [{"type": t} for t in state.events_disallowed],
        }

    def _live(self) -> Iterable[FakeChannel]:
        return (c for c in self.channels.values() if not c.destroyed)

    async def emit(
        self,
        event_type: str,
        body: Mapping[str, object],
        *,
        lead: Mapping[str, object] | None = None,
        channels: Iterable[FakeChannel] = (),
        bridge: FakeBridge | None = None,
        only_app: str | None = None,
    ) -> None:
        """Build the event (``lead`` keys go before ``type``, as captured) and deliver it."""
        event = {**(lead or {}), "type": event_type, "timestamp": ari_time(), **body}
        event["asterisk_id"] = self.asterisk_id
        involved = list(channels)
        for socket, app in self._recipients(event_type, involved, bridge, only_app):
            copy = {**event, "application": app}
            await self.send(socket, app, copy, self.sent)

    def _recipients(
        self,
        event_type: str,
        channels: list[FakeChannel],
        bridge: FakeBridge | None,
        only_app: str | None,
    ) -> list[tuple[Socket, str]]:
        found: list[tuple[Socket, str]] = []
        for socket in self.sockets:
            for app in socket.apps:
                state = self.apps[app]
                if not socket.open or state.socket is not socket or not state.wants(event_type):
                    continue
                if only_app is not None:
                    wanted = app == only_app
                else:
                    wanted = socket.subscribe_all or _subscribed(app, channels, bridge)
                if wanted:
                    found.append((socket, app))
        return found

    async def send(self, socket: Socket, app: str, event: dict[str, object], log: list[SentEvent]) -> None:
        """Write ``event`` to ``socket`` (for ``app``) and note it in ``log`` once written."""
        frame = json.dumps(event, separators=(",", ":"))
        async with socket.lock:
            if not socket.open or socket.ws.closed:
                return
            try:
                await socket.ws.send_str(frame)
            except ConnectionError:
                socket.open = False
                return
        log.append(SentEvent(next(self.seq), app, event))


def _subscribed(app: str, channels: list[FakeChannel], bridge: FakeBridge | None) -> bool:
    if bridge is not None and app in bridge.subscribers:
        return True
    return any(c.stasis_app == app or app in c.subscribers for c in channels)
