"""HTTP and websocket front of the fake ARI server: auth, faults, spec validation, recording.

Order of checks, as in res_ari.c: authentication (401 for everything without valid basic auth or
``api_key``), then injected faults, then routing against the spec (404/405), then parameter
validation (400), then the handler (501 when the fake does not model the operation).
Text frames a client sends on an events websocket are REST requests (:mod:`fake_ari_wsrest`),
routed, validated and handled by the same :meth:`HttpFront.invoke`.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from fake_ari_apps import APPLICATION_HANDLERS
from fake_ari_rest import ASTERISK_HANDLERS, CHANNEL_HANDLERS, Call, Handler, Reply, error
from fake_ari_spec import AriSpec, Operation, Route, RouteError
from fake_ari_world import AppState, Socket
from fake_ari_wsrest import WsRest

if TYPE_CHECKING:
    from fake_ari import FakeAri

HANDLERS: dict[tuple[str, str], Handler] = {**CHANNEL_HANDLERS, **APPLICATION_HANDLERS, **ASTERISK_HANDLERS}
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake answered. ``seq`` orders it against :class:`SentEvent`s."""

    seq: int
    method: str
    path: str
    """Relative to ``/ari`` and percent-decoded, as in the captures: ``/channels/1.2/continue``."""
    params: dict[str, str]
    """Query (and form) parameters; ``api_key`` is replaced by ``<redacted>``."""
    body: object
    status: int
    """The HTTP status answered; 101 for a websocket, 0 if the fake never answered (a fault)."""
    response: object
    """The JSON answered (None for an empty body)."""
    via: str = "http"
    """``http``, or ``websocket`` for a ``RESTRequest`` sent on an events websocket."""


@dataclass
class Fault:
    """Misbehaviour injected into matching requests (``FakeAri.add_fault``).

    ``path`` is an fnmatch pattern relative to ``/ari`` (``/channels/*/continue``). Exactly one
    effect applies, in this order: ``disconnect`` (close the TCP connection, no answer), ``hang``
    (never answer until the fake closes), ``status`` (answer it with ``{"message": message}``),
    else just ``delay`` seconds before normal handling. ``times=None`` applies it forever.
    Requests that get no answer are recorded with status 0.
    """

    method: str | None = None
    path: str = "*"
    status: int | None = None
    message: str = "Internal Server Error"
    delay: float = 0.0
    hang: bool = False
    disconnect: bool = False
    times: int | None = 1
    via: str | None = None
    """Only requests over ``http`` or over the ``websocket`` (REST over the websocket: ``hang`` is
    no answer, ``disconnect`` cuts the websocket); None: both."""
    hits: int = 0

    def take(self, method: str, path: str, via: str = "http") -> bool:
        """True (and counted) if the fault applies to this request."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.via is not None and self.via != via:
            return False
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        self.hits += 1
        return True


def _decode_basic(header: str) -> tuple[str, str] | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def _respond(status: int, payload: object, headers: dict[str, str] | None = None) -> web.Response:
    if payload is None:
        return web.Response(status=status, headers=headers)
    text = json.dumps(payload, separators=(",", ":"))
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)


class HttpFront:
    """Routes aiohttp requests under ``/ari`` to the spec, the handlers and the websockets."""

    def __init__(self, fake: FakeAri, spec: AriSpec) -> None:
        self.fake = fake
        self.spec = spec
        self.release = asyncio.Event()
        self.registered = asyncio.Event()
        self.ws_rest = WsRest(self)

    def application(self) -> web.Application:
        """The aiohttp application serving ``/ari/...``."""
        app = web.Application()
        app.router.add_route("*", "/ari/{tail:.*}", self.dispatch)
        return app

    def _authenticated(self, request: web.Request, params: dict[str, str]) -> bool:
        header = request.headers.get("Authorization")
        expected = (self.fake.username, self.fake.password)
        if header is not None:
            return _decode_basic(header) == expected
        return params.get("api_key") == ":".join(expected)

    def record(
        self, method: str, path: str, params: dict[str, str], body: object, reply: Reply, *, via: str = "http"
    ) -> None:
        """Add a :class:`RecordedRequest` to ``FakeAri.requests``."""
        shown = {k: (REDACTED if k == "api_key" else v) for k, v in params.items()}
        seq = next(self.fake.world.seq)
        self.fake.requests.append(RecordedRequest(seq, method, path, shown, body, reply[0], reply[1], via))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Handle one request under ``/ari``."""
        raw_path = request.raw_path.partition("?")[0][len("/ari") :]
        path = unquote(raw_path)
        params = dict(request.query.items())
        if request.content_type == "application/x-www-form-urlencoded":
            params = {**{k: str(v) for k, v in (await request.post()).items()}, **params}
        if not self._authenticated(request, params):
            reply = error(401, "Authentication required")
            self.record(request.method, path, params, None, reply)
            realm = {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'}
            return _respond(*reply, headers=realm)
        faulted = await self._apply_faults(request, path, params)
        if faulted is not None:
            return faulted
        route = self.spec.match(request.method, raw_path)
        if isinstance(route, RouteError):
            self.record(request.method, path, params, None, (route.status, {"message": route.message}))
            return _respond(route.status, {"message": route.message}, dict(route.headers))
        if route.operation.websocket:
            return await self._websocket(request, route, params)
        return await self._rest(request, route, path, params)

    async def fault(self, method: str, path: str, via: str) -> Fault | None:
        """The first fault that answers for this request (``disconnect``, ``hang``, ``status``),
        after the ``delay`` of every fault that applies up to it; None: handled normally."""
        for fault in self.fake.faults:
            if not fault.take(method, path, via):
                continue
            if fault.disconnect or fault.hang:
                return fault
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return fault
        return None

    async def _apply_faults(
        self, request: web.Request, path: str, params: dict[str, str]
    ) -> web.StreamResponse | None:
        fault = await self.fault(request.method, path, "http")
        if fault is None:
            return None
        if fault.disconnect or fault.hang:
            self.record(request.method, path, params, None, (0, None))
            if fault.disconnect and request.transport is not None:
                request.transport.abort()
            await self.release.wait()
            return web.Response(status=503)
        reply = error(fault.status or 500, fault.message)
        self.record(request.method, path, params, None, reply)
        return _respond(*reply)

    async def _read_body(self, request: web.Request, operation: Operation) -> object | Reply:
        if not any(p.kind == "body" for p in operation.params) or not request.body_exists:
            return None
        raw = await request.read()
        if not raw:
            return None
        try:
            body: object = json.loads(raw)
        except ValueError:
            return error(400, "Error parsing request body")
        return body

    async def _rest(
        self, request: web.Request, route: Route, path: str, params: dict[str, str]
    ) -> web.StreamResponse:
        body = await self._read_body(request, route.operation)
        if isinstance(body, tuple):
            self.record(request.method, path, params, None, body)
            return _respond(*body)
        params, reply = await self.invoke(route, params, body)
        self.record(request.method, path, params, body, reply)
        return _respond(*reply)

    async def invoke(
        self, route: Route, params: dict[str, str], body: object
    ) -> tuple[dict[str, str], Reply]:
        """Validate a routed request against the spec and run its handler: the parameters as read
        (JSON body keys the operation declares as query parameters join them) and the answer."""
        operation = route.operation
        if isinstance(body, dict):  # other body keys are taken as query parameters
            declared = {p.name for p in operation.params if p.kind == "query"}
            params = {**params, **{k: str(v) for k, v in body.items() if k in declared}}
        problem = self.spec.validate(operation, params, body, strict=self.fake.strict_params)
        handler = HANDLERS.get((operation.resource, operation.nickname))
        if problem is not None:
            return params, error(400, problem)
        if handler is None:
            return params, error(501, "Method not implemented")
        call = Call(
            self.fake.pbx, operation, route.path_vars, params, body,
            self.fake.known_contexts, self.fake.playback_seconds,
        )  # fmt: skip
        return params, await handler(call)

    async def _websocket(
        self, request: web.Request, route: Route, params: dict[str, str]
    ) -> web.StreamResponse:
        problem = self.spec.validate(route.operation, params, None, strict=self.fake.strict_params)
        apps = tuple(name for name in params.get("app", "").split(",") if name)
        if problem is None and not apps:
            problem = "Missing param 'app'"
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        if problem is None and not ws.can_prepare(request).ok:
            problem = "WebSocket upgrade required"
        if problem is not None:
            self.record(request.method, "/events", params, None, error(400, problem))
            return _respond(*error(400, problem))
        await ws.prepare(request)
        subscribe_all = params.get("subscribeAll", "").lower() in ("yes", "true", "y", "t", "1", "on")
        socket = Socket(ws, request, apps, subscribe_all)
        await self._register(socket)
        self.record(request.method, "/events", params, None, (101, None))
        try:
            async for msg in ws:  # one at a time, as Asterisk's websocket thread reads them
                if msg.type is aiohttp.WSMsgType.TEXT and self.fake.rest_over_websocket:
                    await self.ws_rest.answer(socket, msg.data)
        finally:
            self.unregister(socket)
        return ws

    async def _register(self, socket: Socket) -> None:
        world = self.fake.world
        world.sockets.append(socket)
        for app in socket.apps:
            state = world.apps.setdefault(app, AppState(app))
            if state.socket is not None and state.socket.open:
                await world.emit("ApplicationReplaced", {}, only_app=app)
            state.socket = socket
        self.registered.set()

    def unregister(self, socket: Socket) -> None:
        """Forget a socket: its applications become inactive (parked channels stay parked)."""
        world = self.fake.world
        socket.open = False
        if socket in world.sockets:
            world.sockets.remove(socket)
        for app in socket.apps:
            state = world.apps.get(app)
            if state is not None and state.socket is socket:
                state.socket = None
