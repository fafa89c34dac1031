"""A loopback fake Asterisk 22 ARI server (REST + events websocket) for callshield's tests.

Built from ``../shared/asterisk`` only: every request is routed and validated against the ARI 10
Swagger spec (``ari-api-docs/``), every event is shaped like the captured ones (``captures/``),
and the behaviours are those of ``BEHAVIOUR.md``. It listens on 127.0.0.1, on a free port.

Quick start::

    async with FakeAri() as fake, AriClient(AriConfig(fake.url, fake.username, fake.password,
                                                      app="shield")) as client:
        async with client.events() as stream:
            await fake.wait_connected("shield")
            channel = await fake.stasis_start("shield", args=["5551234"])   # exten 5551234
            event = await anext(stream)                          # StasisStart as in pjsip_flow
            await client.set_channel_var(channel.id, "SHIELD_VERDICT", "allow")
            await client.continue_in_dialplan(channel.id)        # StasisEnd is sent before the 204
        assert channel.variables == {"SHIELD_VERDICT": "allow"}
        assert channel.continued == Continued("agents", "5551234", 3)

Construction: ``FakeAri(username="shield", password="shieldpass", *, asterisk_id=...,
spec_dir=SPEC_DIR, strict_params=True, known_contexts=None, playback_seconds=0.05,
rest_over_websocket=True)``.
``strict_params`` rejects parameters the spec does not declare (Asterisk ignores them);
``known_contexts`` (a set) makes ``continue`` into any other context hang the channel up, as
Asterisk does for a context that does not exist. ``rest_over_websocket`` answers ``RESTRequest``
frames sent on events websockets like Asterisk 22.4+ (:mod:`fake_ari_wsrest`); False: like an older
Asterisk, never. Lifecycle: ``await start()`` / ``await close()``
or ``async with``; ``url`` is the ARI root (``http://127.0.0.1:PORT/ari``), ``port`` the port.

Inspect what the application did:
  ``requests``: list[RecordedRequest] (seq, method, path, params, body, status, response, via),
  every request including websocket handshakes (``api_key`` redacted) and REST requests sent on a
  websocket (``via="websocket"``); ``requests_to(method, path, via=None)`` filters them (path is an
  fnmatch pattern: ``"/channels/*/variable"``); ``rest_responses``: list[SentEvent], the
  ``RESTResponse`` frames written (not in ``sent``);
  ``sent``: list[SentEvent] (seq, application, event dict), every frame written to a websocket;
  ``sent_types(application=None)``; ``seq`` orders requests and events (StasisEnd < the 204);
  ``channels`` / ``channel(id)``: :class:`FakeChannel` (``variables``, ``continued``,
  ``stasis_app``, ``stasis_status``, ``hangup_cause``, ``destroyed``, ``subscribers``, ...);
  ``bridges``; ``app_connected(name)``; ``await wait_connected(name, within=2.0)``;
  ``application(name)``: the Application JSON that ``GET /applications/{name}`` would answer.

Drive the PBX (each call returns once its events are written to the websockets):
  ``await stasis_start(app, *, args=(), **channel_fields) -> FakeChannel``: a SIP agent's call
  enters ``Stasis(app,args...)``; if no websocket holds ``app`` it fails open
  (``stasis_status == "FAILED"``, no event). Defaults as captured: PJSIP/agent1-..., caller
  Agent/agent1, context ``agents``, exten = ``args[0]``, priority 2, state Ring.
  ``await caller_hangup(channel_id, *, cause=127, tech_cause=487)``: the caller gives up.
  ``await remote_hangup(channel_id, *, cause=16, tech_cause=None)``: the far end hangs up.
  ``await create_channel(**fields)``: ChannelCreated (seen with subscribeAll).
  ``await dial(caller_id, dialstring, **peer_fields) -> FakeChannel``: ``Dial()`` from
  ``caller_id`` (None: an origination straight to the trunk, as in guard_subscribe_all).
  ``await answer_dial(peer_id)``; ``await bridge(*channel_ids) -> FakeBridge``.
  ``await send_dtmf(channel_id, digit, *, duration_ms=120, duplicate_after=None)``: a digit;
  ``duplicate_after=0.065`` repeats it later like an RFC 4733 retransmission.
  ``await dialplan(channel_id, app_name, app_data, **location)``: ChannelDialplan.
  ``await varset(channel_id, name, value)``: the dialplan sets a variable.
  ``await drop_websockets(app=None, *, graceful=False) -> int``: cut websockets (TCP abort, or a
  close frame); their apps become inactive, parked channels stay parked, nothing is replayed.
  ``await send_raw(frame, app=None)``: write any text frame (to test malformed input).

Channel fields (for ``stasis_start``, ``create_channel``, ``dial``): ``id``, ``name``, ``state``,
``protocol_id``, ``caller_name``, ``caller_number``, ``connected_name``, ``connected_number``,
``accountcode``, ``context``, ``exten``, ``priority``, ``app_name``, ``app_data``,
``creationtime``, ``language``.

Faults: ``add_fault(method=None, path="*", status=None, message=..., delay=0.0, hang=False,
disconnect=False, times=1, via=None) -> Fault`` (see :class:`Fault`; ``via="http"`` or
``"websocket"`` limits it to one way of sending); ``clear_faults()``.

REST operations modelled (others of the spec answer 501): channels list, get, hangup (DELETE,
``reason_code``/``reason``), continue, answer, play, variable GET/POST, variables POST;
applications list, get, subscription POST/DELETE, eventFilter PUT; asterisk ping. Answers as Asterisk 22:
404 ``Channel not found``, 409 ``Channel not in Stasis application``, 412 for Down/Ringing
channels, 422 for subscriptions, 401 without credentials (basic auth or ``api_key``, on REST and
websocket alike, as res_ari.c accepts both).

Fixtures (``tests/ari/conftest.py``): ``fake_ari`` (checks after the test that every event sent
has a captured key order), ``ari_config``, ``ari_client``, ``http`` (raw aiohttp session with
basic auth), ``sockets`` (raw websockets, ``raw_ari.Sockets``), and an autouse check that no
phone number reaches callshield's logs.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web
from fake_ari_http import Fault, HttpFront, RecordedRequest
from fake_ari_pbx import Pbx
from fake_ari_spec import SPEC_DIR, AriSpec
from fake_ari_world import Continued, FakeBridge, FakeChannel, SentEvent, World

__all__ = [
    "Continued",
    "FakeAri",
    "FakeBridge",
    "FakeChannel",
    "Fault",
    "RecordedRequest",
    "SentEvent",
]

ASTERISK_ID = "02:fc:00:00:00:01"


class FakeAri:
    """The fake ARI server; see the module docstring for the whole API."""

    def __init__(
        self,
        username: str = "shield",
        password: str = "shieldpass",
        *,
        asterisk_id: str = ASTERISK_ID,
        spec_dir: Path = SPEC_DIR,
        strict_params: bool = True,
        known_contexts: set[str] | None = None,
        playback_seconds: float = 0.05,
        rest_over_websocket: bool = True,
    ) -> None:
        self.username = username
        self.password = password
        self.strict_params = strict_params
        self.known_contexts = known_contexts
        self.playback_seconds = playback_seconds
        self.rest_over_websocket = rest_over_websocket
        """Answer ``RESTRequest`` frames on events websockets (Asterisk 22.4+); False: an older
        Asterisk, which reads them and never answers. May be changed at any time."""
        self.world = World(asterisk_id)
        self.pbx = Pbx(self.world)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._front = HttpFront(self, AriSpec.load(spec_dir))
        self._runner: web.AppRunner | None = None
        self._sip_calls = itertools.count(26556)
        self.port = 0

    async def start(self) -> None:
        """Listen on 127.0.0.1 (free port)."""
        self._runner = web.AppRunner(self._front.application(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Release hanging requests, cut websockets, stop the server."""
        self._front.release.set()
        await self.drop_websockets()
        await self.pbx.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeAri:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The ARI root URL, ``http://127.0.0.1:PORT/ari``."""
        return f"http://127.0.0.1:{self.port}/ari"

    # -- inspection -------------------------------------------------------------------------------

    @property
    def channels(self) -> dict[str, FakeChannel]:
        """Every channel ever created, destroyed ones included."""
        return self.world.channels

    @property
    def bridges(self) -> dict[str, FakeBridge]:
        """Every bridge ever created."""
        return self.world.bridges

    @property
    def sent(self) -> list[SentEvent]:
        """Every event frame written to a websocket, in order."""
        return self.world.sent

    @property
    def rest_responses(self) -> list[SentEvent]:
        """Every ``RESTResponse`` written to a websocket (REST over the websocket), in order."""
        return self.world.rest_responses

    def channel(self, channel_id: str) -> FakeChannel:
        """The channel ``channel_id`` (KeyError if it never existed)."""
        return self.world.channels[channel_id]

    def requests_to(
        self, method: str | None = None, path: str = "*", *, via: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests with this method (None: any) and path (fnmatch pattern), sent over
        ``via`` (``http`` or ``websocket``; None: either)."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and fnmatch.fnmatchcase(r.path, path)
            and (via is None or r.via == via)
        ]

    def sent_types(self, application: str | None = None) -> list[str]:
        """The ``type`` of each event sent (to ``application``, or to any)."""
        return [e.type for e in self.world.sent if application in (None, e.application)]

    def app_connected(self, name: str) -> bool:
        """True while a websocket holds application ``name``."""
        return self.world.app_active(name)

    def application(self, name: str) -> dict[str, object]:
        """The Application JSON of ``name`` (KeyError if it never registered)."""
        return self.world.app_json(name)

    async def wait_connected(self, name: str, within: float = 2.0) -> None:
        """Wait (at most ``within`` seconds) until a websocket holds application ``name``."""
        async with asyncio.timeout(within):
            while not self.world.app_active(name):
                self._front.registered.clear()
                await self._front.registered.wait()

    # -- faults -----------------------------------------------------------------------------------

    def add_fault(
        self,
        *,
        method: str | None = None,
        path: str = "*",
        status: int | None = None,
        message: str = "Internal Server Error",
        delay: float = 0.0,
        hang: bool = False,
        disconnect: bool = False,
        times: int | None = 1,
        via: str | None = None,
    ) -> Fault:
        """Inject a :class:`Fault` into the requests that match ``method``, ``path`` and ``via``."""
        fault = Fault(method, path, status, message, delay, hang, disconnect, times, via)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    # -- driving the PBX --------------------------------------------------------------------------

    async def create_channel(self, **fields: object) -> FakeChannel:
        """A new channel; ChannelCreated reaches subscribeAll sockets."""
        return await self.pbx.create_channel(dict(fields))

    async def stasis_start(self, app: str, *, args: Sequence[str] = (), **fields: object) -> FakeChannel:
        """A SIP agent's call enters ``Stasis(app,args...)`` (see the module docstring)."""
        defaults: dict[str, object] = {
            "protocol_id": f"1-{next(self._sip_calls)}@127.0.0.1",
            "caller_name": "Agent",
            "caller_number": "agent1",
            "context": "agents",
            "exten": args[0] if args else "s",
            "priority": 2,
        }
        channel = await self.pbx.create_channel({**defaults, **fields})
        await self.pbx.stasis_start(app, args, channel)
        return channel

    async def caller_hangup(self, channel_id: str, *, cause: int = 127, tech_cause: int = 487) -> None:
        """The caller hangs up (SIP CANCEL while parked: HangupRequest{127,487} + StasisEnd)."""
        await self.pbx.remote_hangup(self._live(channel_id), cause, tech_cause)

    async def remote_hangup(self, channel_id: str, *, cause: int = 16, tech_cause: int | None = None) -> None:
        """The far end of ``channel_id`` hangs up."""
        await self.pbx.remote_hangup(self._live(channel_id), cause, tech_cause)

    async def dial(self, caller_id: str | None, dialstring: str, **peer_fields: object) -> FakeChannel:
        """``Dial()`` from ``caller_id`` to ``dialstring`` (None: origination); returns the peer."""
        caller = self._live(caller_id) if caller_id is not None else None
        return await self.pbx.dial(caller, dialstring, dict(peer_fields))

    async def answer_dial(self, peer_id: str) -> None:
        """The dialled peer answers."""
        await self.pbx.answer_dial(self._live(peer_id))

    async def bridge(self, *channel_ids: str) -> FakeBridge:
        """Put channels in a new ``Dial()``-style bridge."""
        return await self.pbx.bridge([self._live(c) for c in channel_ids])

    async def send_dtmf(
        self, channel_id: str, digit: str, *, duration_ms: int = 120, duplicate_after: float | None = None
    ) -> None:
        """A DTMF digit on ``channel_id``; optionally repeated ``duplicate_after`` s later."""
        channel = self._live(channel_id)
        await self.pbx.dtmf(channel, digit, duration_ms)
        if duplicate_after is not None:
            self.pbx.spawn(self._dtmf_later(channel, digit, duration_ms, duplicate_after))

    async def _dtmf_later(self, channel: FakeChannel, digit: str, duration_ms: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if not channel.destroyed:
            await self.pbx.dtmf(channel, digit, duration_ms)

    async def dialplan(self, channel_id: str, app_name: str, app_data: str, **location: object) -> None:
        """The dialplan runs ``app_name(app_data)``; ``location``: context, exten, priority."""
        channel = self._live(channel_id)
        for key, value in location.items():
            if key not in ("context", "exten", "priority"):
                raise TypeError(f"unknown dialplan location field {key!r}")
            setattr(channel, key, value)
        await self.pbx.dialplan_step(channel, app_name, app_data)

    async def varset(self, channel_id: str, name: str, value: str) -> None:
        """The dialplan sets a channel variable (ChannelVarset to subscribers)."""
        await self.pbx.set_var(self._live(channel_id), name, value)

    async def drop_websockets(self, app: str | None = None, *, graceful: bool = False) -> int:
        """Cut the websockets holding ``app`` (None: all); returns how many."""
        dropped = 0
        for socket in list(self.world.sockets):
            if app is not None and app not in socket.apps:
                continue
            self._front.unregister(socket)
            if graceful:
                await socket.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
            elif socket.request.transport is not None:
                socket.request.transport.abort()
            dropped += 1
        return dropped

    async def send_raw(self, frame: str, app: str | None = None) -> None:
        """Write ``frame`` as is to the sockets holding ``app`` (None: all): for malformed input."""
        for socket in list(self.world.sockets):
            if socket.open and (app is None or app in socket.apps):
                await socket.ws.send_str(frame)

    def _live(self, channel_id: str) -> FakeChannel:
        channel = self.world.live_channel(channel_id)
        if channel is None:
            raise KeyError(f"no live channel {channel_id}")
        return channel
