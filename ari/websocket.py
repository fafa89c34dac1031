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

REST over the websocket (Asterisk 20.14, 21.9, 22.4 and later): :meth:`EventStream.request` sends
a ``RESTRequest`` frame (``{"type":"RESTRequest","request_id":"7","method":"DELETE",
"uri":"channels/1.2?reason_code=21"}``) and waits for the ``RESTResponse`` with the same
``request_id``. Answers are read by whoever iterates the stream, so a request is answered only
while someone does; they are recognised before any event parsing, resolve their request and are
never yielded. Asterisk sends them through the application's event filter: an application that
filters events must allow ``RESTResponse``. Older versions never answer: the request times out.
Errors are those of the HTTP path (:mod:`callshield.ari.rest`): AriRequestError for an error
status, PeerUnavailable for no answer in time or a lost websocket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Collection, Container
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from callshield.ari.events import Event, decode_frame, parse_event
from callshield.ari.jsonfields import get_int, get_opt_str, get_str
from callshield.ari.rest import Params, check_status, describe_client_error, relative_uri
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
REST_RESPONSE = "RESTResponse"
_REST_MARK = '"RESTResponse"'
"""In every ``RESTResponse`` frame (its ``type``), whatever the layout; rare in event frames."""


@dataclass(frozen=True, slots=True)
class RestResponse:
    """A ``RESTResponse``: Asterisk's answer, on the events websocket, to a ``RESTRequest``."""

    transaction_id: str
    """Echoed from the request ("" when it had none)."""
    request_id: str
    """Echoed from the request ("" when it had none, or when Asterisk could not read it)."""
    status_code: int
    reason_phrase: str
    uri: str
    """The request's resource, without its query string."""
    content_type: str | None = None
    message_body: str | None = field(default=None, repr=False)
    """The answer's JSON document as text (an error's ``{"message": ...}``); None when empty."""


def rest_response(frame: str) -> RestResponse | None:
    """The frame's ``RESTResponse``; None if the frame is not one (another type, not JSON: the
    event parser reports it), PeerProtocolError if a field is missing or of the wrong type."""
    try:
        obj = decode_frame(frame)
    except PeerProtocolError:
        return None
    if obj.get("type") != REST_RESPONSE:
        return None
    return RestResponse(
        transaction_id=get_str(obj, "transaction_id", REST_RESPONSE),
        request_id=get_str(obj, "request_id", REST_RESPONSE),
        status_code=get_int(obj, "status_code", REST_RESPONSE),
        reason_phrase=get_str(obj, "reason_phrase", REST_RESPONSE),
        uri=get_str(obj, "uri", REST_RESPONSE),
        content_type=get_opt_str(obj, "content_type", REST_RESPONSE),
        message_body=get_opt_str(obj, "message_body", REST_RESPONSE),
    )


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
        request_timeout: float = 2.0,
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
        self._request_timeout = request_timeout
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._done = False
        self._pending: dict[str, asyncio.Future[RestResponse]] | None = None
        """REST requests waiting for their answer, by ``request_id``; None until the first is sent
        (until then no frame is looked at for an answer)."""
        self._request_ids = itertools.count(1)

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
        self._fail_pending("closed")
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
                data = msg.data
                if self._prefilter is not None:  # one search: a wanted type, or an answer
                    kind = self._prefilter.search(data)
                    if kind is None or (kind[1] == REST_RESPONSE and self._answered(data)):
                        continue
                elif self._pending is not None and _REST_MARK in data and self._answered(data):
                    continue
                event = self._parse(data)
                if event is not None:
                    return event
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._skip(PeerProtocolError("ARI sent a binary websocket frame"))
            elif msg.type in _CLOSED_TYPES:
                self._done = True
                self._fail_pending("lost")
                if not self._closing:
                    await ws.close()
                    raise PeerUnavailable(f"ARI event websocket lost: {_close_reason(msg, ws)}")
        raise StopAsyncIteration

    async def request(
        self, method: str, path: str, params: Params | None = None, *, time_limit: float | None = None
    ) -> tuple[int, str]:
        """One ARI REST request over this websocket (module docstring): ``(status, body)`` of a
        success answer. ``path`` as for :meth:`RestTransport.request` (quoted, from the ARI root);
        no answer within ``time_limit`` s (default: the client's request timeout) is PeerUnavailable.
        """
        limit = self._request_timeout if time_limit is None else time_limit
        ws = self._ws
        if ws is None or not self.connected:
            raise PeerUnavailable(f"ARI {method} {path} over the event websocket: not connected")
        if self._pending is None:
            self._pending = {}
        request_id = str(next(self._request_ids))
        uri = relative_uri(path, params)
        frame = json.dumps({"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri})
        answer: asyncio.Future[RestResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):  # the send too: a peer that stops reading blocks it
                await ws.send_str(frame)
                response = await answer
        except TimeoutError:
            logger.debug("ARI %s %s over the event websocket: no answer within %.3g s", method, path, limit)
            raise PeerUnavailable(
                f"ARI {method} {path} over the event websocket: no answer within {limit:.3g} s"
            ) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            reason = describe_client_error(exc)
            raise PeerUnavailable(f"ARI {method} {path} over the event websocket failed: {reason}") from None
        finally:
            self._pending.pop(request_id, None)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug(
                "ARI %s %s -> %d over the event websocket (%.2f ms)",
                method,
                path,
                response.status_code,
                elapsed_ms,
            )
        body = response.message_body or ""
        check_status(method, path, response.status_code, body)
        return response.status_code, body

    def _answered(self, frame: str) -> bool:
        """True if ``frame`` is a ``RESTResponse``: it resolves the request waiting for it, if any."""
        try:
            response = rest_response(frame)
        except PeerProtocolError as exc:
            self._skip(exc)
            return True
        if response is None:
            return False
        waiting = self._pending.pop(response.request_id, None) if self._pending is not None else None
        if waiting is None:
            logger.debug("ARI RESTResponse for no request waiting (answered after its time limit?)")
        elif not waiting.done():
            waiting.set_result(response)
        return True

    def _fail_pending(self, why: str) -> None:
        """Every request still waiting gets PeerUnavailable: its answer can no longer come."""
        if not self._pending:
            return
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(PeerUnavailable(f"ARI event websocket {why} before the answer"))
        self._pending.clear()

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
    """A pattern that finds ``"type":"T"`` for the wanted types T (and Asterisk's MissingParams,
    and ``RESTResponse``: answers to this stream's requests), whatever the spacing (``pretty =
    yes`` in ari.conf), the type found as its group 1; None when every frame is wanted."""
    if wanted is None or not isinstance(wanted, Collection):
        return None
    names = sorted({*wanted, "MissingParams", REST_RESPONSE})
    return re.compile(r'"type"\s*:\s*"(' + "|".join(re.escape(n) for n in names) + r')"')


def _close_reason(msg: aiohttp.WSMessage, ws: aiohttp.ClientWebSocketResponse) -> str:
    if msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, BaseException):
        return describe_client_error(msg.data)
    if ws.close_code is None or ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
        return "connection dropped"
    return f"closed by Asterisk (code {ws.close_code})"
