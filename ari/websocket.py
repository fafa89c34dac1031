"""One connection of the ARI events websocket, as an async context manager and async iterator.

An :class:`EventStream` is one websocket: it connects in ``__aenter__`` (or :meth:`connect`),
yields parsed :mod:`~callshield.ari.events` while the socket is up, and never reconnects. When the
socket goes away it raises :class:`~callshield.errors.PeerUnavailable` (closed by Asterisk, TCP
reset, heartbeat lost); when the owner closes it, iteration just ends. A reconnect policy is then
a loop around a fresh stream; after each connect the application must look for channels parked
while it was away (``GET /applications/{app}``: Asterisk does not replay ``StasisStart``)::

    while running:
        try:
            async with client.events() as stream:
                await resync(client)
                async for event in stream:
                    await handle(event)
        except PeerUnavailable:
            await asyncio.sleep(backoff())

Frames that do not parse are logged (without their content) and skipped, counted in
:attr:`EventStream.malformed`; ``strict=True`` raises the PeerProtocolError instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection, Container
from types import TracebackType

import aiohttp
from callshield.ari.events import Event, parse_event
from callshield.ari.rest import describe_client_error
from callshield.errors import AriRequestError, PeerProtocolError, PeerUnavailable
from yarl import URL

logger = logging.getLogger(__name__)

_CLOSED_TYPES = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)
_HANDSHAKE_REASONS = {
    401: "Authentication required (check the ARI username and password)",
    403: "Write access denied (the ARI user is read-only?)",
    404: "Resource not found (check the ARI root URL)",
}


class EventStream:
    """One ARI events websocket. Create it with :meth:`AriClient.events`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        apps: tuple[str, ...],
        *,
        heartbeat: float | None,
        connect_timeout: float,
        wanted: Container[str] | None = None,
        strict: bool = False,
        only_wanted: bool = False,
    ) -> None:
        self.apps = apps
        """The applications this connection registers (``app=a,b``)."""
        self.malformed = 0
        """Frames skipped because they did not parse (non-strict mode)."""
        self._session = session
        self._url = url  # carries api_key: never log or format it
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._wanted = wanted
        self._prefilter = _type_filter(wanted) if only_wanted else None
        """With ``only_wanted``: frames of other types are dropped before any JSON parsing (a busy
        PBX sends the guard thousands of frames a second, most of them ChannelVarset)."""
        self._strict = strict
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._done = False

    def __repr__(self) -> str:
        state = "open" if self.connected else "closed"
        return f"<EventStream apps={','.join(self.apps)} {state}>"

    @property
    def connected(self) -> bool:
        """True while the websocket is open."""
        return self._ws is not None and not self._ws.closed and not self._done

    async def connect(self) -> None:
        """Open the websocket; AriRequestError if refused (401: bad credentials), else PeerUnavailable."""
        if self._ws is not None:
            raise RuntimeError("an EventStream connects once; create a new one to reconnect")
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._ws = await self._session.ws_connect(self._url, heartbeat=self._heartbeat, autoping=True)
        except TimeoutError:
            raise PeerUnavailable(
                f"ARI event websocket: no handshake within {self._connect_timeout:.3g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            reason = _HANDSHAKE_REASONS.get(exc.status, "websocket handshake refused")
            raise AriRequestError("GET", "/events", exc.status, reason) from None
        except aiohttp.ClientError as exc:
            raise PeerUnavailable(f"ARI event websocket: {describe_client_error(exc)}") from None
        logger.info("ARI event websocket connected (apps=%s)", ",".join(self.apps))

    async def close(self) -> None:
        """Close the websocket; a pending or later ``__anext__`` ends the iteration."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    async def __aenter__(self) -> EventStream:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        ws = self._ws
        if ws is None:
            raise RuntimeError("EventStream is not connected: use 'async with' or connect()")
        while not self._done:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                if self._prefilter is not None and not self._prefilter.search(msg.data):
                    continue
                event = self._parse(msg.data)
                if event is not None:
                    return event
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._skip(PeerProtocolError("ARI sent a binary websocket frame"))
            elif msg.type in _CLOSED_TYPES:
                self._done = True
                if not self._closing:
                    await ws.close()
                    raise PeerUnavailable(f"ARI event websocket lost: {_close_reason(msg, ws)}")
        raise StopAsyncIteration

    def _parse(self, frame: str) -> Event | None:
        try:
            return parse_event(frame, self._wanted)
        except PeerProtocolError as exc:
            self._skip(exc)
            return None

    def _skip(self, exc: PeerProtocolError) -> None:
        if self._strict:
            raise exc
        self.malformed += 1
        logger.warning("ARI event frame skipped: %s", exc)


def _type_filter(wanted: Container[str] | None) -> re.Pattern[str] | None:
    """A pattern that finds ``"type":"T"`` for the wanted types T (and Asterisk's MissingParams),
    whatever the spacing (``pretty = yes`` in ari.conf); None when every frame is wanted."""
    if wanted is None or not isinstance(wanted, Collection):
        return None
    names = sorted({*wanted, "MissingParams"})
    return re.compile(r'"type"\s*:\s*"(?:' + "|".join(re.escape(n) for n in names) + r')"')


def _close_reason(msg: aiohttp.WSMessage, ws: aiohttp.ClientWebSocketResponse) -> str:
    if msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, BaseException):
        return describe_client_error(msg.data)
    if ws.close_code is None or ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
        return "connection dropped"
    return f"closed by Asterisk (code {ws.close_code})"
