"""A typed asyncio client for the part of ARI (Asterisk 22, ARI 10) that callshield uses.

:class:`AriClient` owns one :class:`aiohttp.ClientSession` (keep-alive, HTTP basic auth) for all
REST calls and opens event websockets (:meth:`AriClient.events`), one :class:`EventStream` per
connection. It has no reconnect policy and no Stasis logic: see :mod:`callshield.ari.websocket`
for the loop an application writes around it::

    config = AriConfig("http://127.0.0.1:8088/ari", "shield", password, app="shield")
    async with AriClient(config) as ari, ari.events() as stream:
        async for event in stream:
            if isinstance(event, StasisStart):
                await ari.set_channel_vars(event.channel.id, {"SHIELD_VERDICT": "allow"})
                await ari.continue_in_dialplan(event.channel.id)

The HTTP session is created on first use, so a client may be built outside the event loop.

Errors (from :mod:`callshield.errors`): ``AriRequestError`` for an error status (``is_gone`` for
the normal 404/409 races), ``PeerUnavailable`` for connection failures and timeouts,
``PeerProtocolError`` for answers that do not match the ARI models. Passwords and api keys never
appear in logs, ``repr`` or exception messages.

Per-call cost: every method is one HTTP round trip (:meth:`AriClient.hangup` and
:meth:`AriClient.ping` can go over an events websocket instead: ``over=stream``, see
:mod:`callshield.ari.websocket`, no HTTP request at all). To set several variables at once use
:meth:`AriClient.set_channel_vars` (``POST /channels/{id}/variables``, ARI since Asterisk
20.20/22.10/23.4): the gate's "3 variables + continue" is then 2 round trips instead of 4.
``continue`` itself takes no variables.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from callshield.ari.jsonfields import as_object, get_str
from callshield.ari.models import (
    Application,
    Channel,
    Playback,
    parse_application,
    parse_channel,
    parse_playback,
)
from callshield.ari.rest import Params, RestTransport, basic_auth, decode_json, segment
from callshield.ari.websocket import EventStream
from callshield.errors import ConfigError, PeerProtocolError
from yarl import URL

logger = logging.getLogger(__name__)

HangupReason = Literal[
    "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated",
    "normal_unspecified", "number_incomplete", "codec_mismatch", "interworking", "failure",
    "answered_elsewhere",
]  # fmt: skip
"""The ``reason`` values ``DELETE /channels/{id}`` accepts (allowableValues of the spec)."""


@dataclass(frozen=True, slots=True)
class AriConfig:
    """How to reach ARI. ``url`` is the ARI root, e.g. ``http://127.0.0.1:8088/ari``."""

    url: str
    username: str
    password: str = field(repr=False)
    app: str
    """The Stasis application name used when a method is not given one."""
    request_timeout: float = 2.0
    """Seconds allowed for one REST round trip (connect + answer)."""
    connect_timeout: float = 5.0
    """Seconds allowed for the websocket handshake."""
    ws_heartbeat: float | None = 10.0
    """Websocket ping interval; a missing pong drops the stream (None: no pings)."""
    keepalive_timeout: float = 10.0
    """Idle seconds before a pooled HTTP connection is closed; keep it below Asterisk's
    ``session_keep_alive`` (http.conf, 15 s by default) so a reused connection is never one the
    server is just closing."""
    max_connections: int = 16


class AriClient:
    """REST calls and event websockets of one ARI server; an async context manager."""

    def __init__(self, config: AriConfig) -> None:
        root = URL(config.url)
        if root.scheme not in ("http", "https") or not root.host:
            raise ConfigError("ARI url must be http(s)://host:port/ari")
        self.config = config
        self._rest = RestTransport(
            str(root),
            basic_auth(config.username, config.password),
            config.request_timeout,
            max_connections=config.max_connections,
            keepalive_timeout=config.keepalive_timeout,
        )
        ws_scheme = "wss" if root.scheme == "https" else "ws"
        self._ws_root = root.with_scheme(ws_scheme).joinpath("events")
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<AriClient {self.config.url} app={self.config.app}>"

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every open event stream and the HTTP session."""
        for stream in list(self._streams):
            await stream.close()
        await self._rest.close()

    # -- events -------------------------------------------------------------------------------

    def events(
        self,
        apps: Sequence[str] | None = None,
        *,
        subscribe_all: bool = False,
        wanted: Container[str] | None = None,
        strict: bool = False,
        only_wanted: bool = False,
        kind: type[EventStream] = EventStream,
    ) -> EventStream:
        """A new, not yet connected, events websocket: ``async with client.events() as s``.

        ``apps`` defaults to ``[config.app]``; ``subscribe_all`` asks for every channel's events;
        ``wanted`` limits which event types are parsed (see :func:`~callshield.ari.events.parse_event`);
        ``only_wanted`` drops the other frames before any JSON parsing instead of yielding them as
        ``UnknownEvent`` (for the guard, which sees the whole PBX's event stream); ``kind`` is the
        class of the stream (a subclass that reads some frames its own way, as the guard's does).
        """
        names = tuple(apps) if apps is not None else (self.config.app,)
        query = {"app": ",".join(names), "api_key": f"{self.config.username}:{self.config.password}"}
        if subscribe_all:
            query["subscribeAll"] = "true"
        stream = kind(
            self._rest.session,
            self._ws_root.with_query(query),
            names,
            heartbeat=self.config.ws_heartbeat,
            connect_timeout=self.config.connect_timeout,
            request_timeout=self.config.request_timeout,
            wanted=wanted,
            strict=strict,
            only_wanted=only_wanted,
        )
        self._streams.add(stream)
        return stream

    # -- channels -----------------------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        """``GET /channels``: every active channel."""
        data = await self._json("GET", "/channels")
        if not isinstance(data, list):
            raise PeerProtocolError("ARI GET /channels did not answer a list")
        return [parse_channel(as_object(item, "Channel")) for item in data]

    async def get_channel(self, channel_id: str) -> Channel:
        """``GET /channels/{id}``; 404 (AriRequestError.is_gone) if the channel is gone."""
        path = f"/channels/{segment(channel_id)}"
        return parse_channel(as_object(await self._json("GET", path), "Channel"))

    async def set_channel_var(self, channel_id: str, variable: str, value: str | None = None) -> None:
        """``POST /channels/{id}/variable`` (``value`` None unsets it).

        409 once the channel left Stasis, 404 once it is gone (both ``is_gone``).
        """
        params = {"variable": variable} if value is None else {"variable": variable, "value": value}
        await self._rest.request("POST", f"/channels/{segment(channel_id)}/variable", params=params)

    async def set_channel_vars(self, channel_id: str, variables: Mapping[str, str]) -> None:
        """``POST /channels/{id}/variables`` with a JSON body: several variables, one round trip.

        New in ARI of Asterisk 20.20.0 / 22.10.0 / 23.4.0; older servers answer 404 or 405.
        """
        body = {"variables": dict(variables)}
        await self._rest.request("POST", f"/channels/{segment(channel_id)}/variables", body=body)

    async def get_channel_var(self, channel_id: str, variable: str) -> str:
        """``GET /channels/{id}/variable``: the value (404 if unset or the channel is gone)."""
        path = f"/channels/{segment(channel_id)}/variable"
        data = await self._json("GET", path, {"variable": variable})
        return get_str(as_object(data, "Variable"), "value", "Variable")

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """``POST /channels/{id}/continue``: leave Stasis, resume the dialplan.

        Without arguments: the next priority. ``label`` supersedes ``priority`` and is looked up in
        ``context``/``extension`` (default: the current ones; a given context defaults the
        extension to ``s``). ``StasisEnd`` often arrives before this call returns.
        """
        params: dict[str, str] = {}
        if context is not None:
            params["context"] = context
        if extension is not None:
            params["extension"] = extension
        if priority is not None:
            params["priority"] = str(priority)
        if label is not None:
            params["label"] = label
        await self._rest.request("POST", f"/channels/{segment(channel_id)}/continue", params=params or None)

    async def hangup(
        self,
        channel_id: str,
        *,
        reason_code: int | None = None,
        reason: HangupReason | None = None,
        over: EventStream | None = None,
    ) -> None:
        """``DELETE /channels/{id}``: hang up with a Q.850 ``reason_code`` (e.g. 21) or a ``reason``;
        ``over`` an events websocket of this client: sent on it (REST over the websocket)."""
        if reason_code is not None and reason is not None:
            raise ValueError("hangup takes reason_code or reason, not both")
        params = _drop_none(reason_code=None if reason_code is None else str(reason_code), reason=reason)
        path = f"/channels/{segment(channel_id)}"
        if over is not None:
            await over.request("DELETE", path, params or None)
        else:
            await self._rest.request("DELETE", path, params=params or None)

    async def answer(self, channel_id: str) -> None:
        """``POST /channels/{id}/answer``."""
        await self._rest.request("POST", f"/channels/{segment(channel_id)}/answer")

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        lang: str | None = None,
        playback_id: str | None = None,
    ) -> Playback:
        """``POST /channels/{id}/play``: play ``sound:...`` URIs (several are played in turn)."""
        uris = media if isinstance(media, str) else ",".join(media)
        params = {"media": uris, **_drop_none(lang=lang, playbackId=playback_id)}
        data = await self._json("POST", f"/channels/{segment(channel_id)}/play", params)
        return parse_playback(as_object(data, "Playback"))

    async def snoop(
        self,
        channel_id: str,
        *,
        app: str | None = None,
        whisper: Literal["none", "both", "out", "in"] = "out",
        spy: Literal["none", "both", "out", "in"] = "none",
        app_args: Sequence[str] = (),
    ) -> Channel:
        """``POST /channels/{id}/snoop``: a Snoop channel in Stasis (``app``, ``app_args``) whose
        playbacks are whispered to ``channel_id``: how the app talks to a channel in a Dial bridge."""
        params = {"app": app or self.config.app, "whisper": whisper, "spy": spy}
        if app_args:
            params["appArgs"] = ",".join(app_args)
        data = await self._json("POST", f"/channels/{segment(channel_id)}/snoop", params)
        return parse_channel(as_object(data, "Channel"))

    # -- asterisk -----------------------------------------------------------------------------

    async def ping(self, *, over: EventStream | None = None, time_limit: float | None = None) -> None:
        """``GET /asterisk/ping`` (``over``: on that events websocket), answered within
        ``time_limit`` s (default: the request timeout); the answer's content is not read."""
        if over is not None:
            await over.request("GET", "/asterisk/ping", time_limit=time_limit)
        else:
            await self._rest.request("GET", "/asterisk/ping", time_limit=time_limit)

    # -- applications -------------------------------------------------------------------------

    async def get_application(self, app: str | None = None) -> Application:
        """``GET /applications/{app}``: ``channel_ids`` lists channels parked in it."""
        data = await self._json("GET", self._app_path(app))
        return parse_application(as_object(data, "Application"))

    async def subscribe(self, event_source: str | Sequence[str], app: str | None = None) -> Application:
        """``POST /applications/{app}/subscription?eventSource=channel:{id}`` (or bridge:, ...)."""
        return await self._subscription("POST", event_source, app)

    async def unsubscribe(self, event_source: str | Sequence[str], app: str | None = None) -> Application:
        """``DELETE /applications/{app}/subscription``; 422 once the channel is gone."""
        return await self._subscription("DELETE", event_source, app)

    async def set_event_filter(
        self,
        *,
        allowed: Sequence[str] | None = None,
        disallowed: Sequence[str] | None = None,
        app: str | None = None,
    ) -> Application:
        """``PUT /applications/{app}/eventFilter``: let Asterisk drop event types server-side.

        ``allowed=[]`` allows everything; a list given replaces that list, None leaves it as is.
        """
        body: dict[str, list[dict[str, str]]] = {}
        if allowed is not None:
            body["allowed"] = [{"type": name} for name in allowed]
        if disallowed is not None:
            body["disallowed"] = [{"type": name} for name in disallowed]
        path = self._app_path(app) + "/eventFilter"
        _, raw = await self._rest.request("PUT", path, body=body)
        return parse_application(as_object(decode_json(raw, "PUT", path), "Application"))

    # -- helpers ------------------------------------------------------------------------------

    def _app_path(self, app: str | None) -> str:
        return f"/applications/{segment(app or self.config.app)}"

    async def _subscription(
        self, method: str, event_source: str | Sequence[str], app: str | None
    ) -> Application:
        sources = event_source if isinstance(event_source, str) else ",".join(event_source)
        data = await self._json(method, self._app_path(app) + "/subscription", {"eventSource": sources})
        return parse_application(as_object(data, "Application"))

    async def _json(self, method: str, path: str, params: Params | None = None) -> object:
        _, raw = await self._rest.request(method, path, params=params)
        return decode_json(raw, method, path)


def _drop_none(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}
