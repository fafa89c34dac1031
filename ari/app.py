"""The Stasis application of one Asterisk server: keeps its events websocket up and gates calls.

``Stasis(callshield,gate,NUMBER[,company[,campaign]])`` puts a channel in the application; the
app decides with the shared :class:`~callshield.gate.Gate` and continues the channel (see
:mod:`callshield.ari.gate`). The connection is kept up forever: a lost websocket is retried with
capped backoff (first retry within a second), each state change logged once. After every
(re)connect the channels parked in the application meanwhile are listed and decided, because
Asterisk does not replay their StasisStart. Anything the app cannot handle is blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from callshield.ari.bursts import Bursts, FollowUp
from callshield.ari.capture import TONE_ARG, KeypadCapture
from callshield.ari.client import AriClient
from callshield.ari.connection import AriConnection, Backoff
from callshield.ari.events import Event
from callshield.ari.gate import VerdictActor, dialplan_label, stasis_args
from callshield.ari.gate_stream import GateStart, GateStream
from callshield.ari.guard_ledger import GateLedger
from callshield.ari.models import Channel
from callshield.ari.optout import OptOut
from callshield.ari.websocket import EventStream
from callshield.errors import AriRequestError, InvalidInput, PeerError
from callshield.gate import Gate, Verdict, call_arguments
from callshield.logsetup import InfoLine
from callshield.models import Scope
from callshield.policy import blocked_by_error
from callshield.privacy import mask

log = logging.getLogger(__name__)
_decided = InfoLine(log)
"""The line per decision (on the dial-time path)."""


APP_EVENTS = frozenset(
    {
        "StasisStart",  # the gate and the opt-out entries
        "StasisEnd",  # the opt-out: the customer hung up
        "ChannelHangupRequest",
        "ChannelDtmfReceived",  # the keypad code, the opt-out digit
        "Dial",  # the keypad code: which leg is the customer's
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "BridgeDestroyed",
        "ChannelDestroyed",  # state of watched channels dropped
    }
)
"""The event types the Stasis application and its capture use."""
GATE_EVENTS = frozenset({"StasisStart"})
"""What the gate alone (no capture, no opt-out) uses: every other frame is dropped unparsed."""
DELIVERY_ATTEMPTS = 3
"""Tries to deliver a verdict when ARI fails (5xx, timeout) before leaving the channel parked;
a parked channel is decided again after the next reconnect."""
RETRY_DELAY = 0.1

Snapshot = Callable[[], Channel]
"""The channel of a call in the application, read when asked (PeerProtocolError if malformed)."""


class StasisApp(AriConnection):
    """Runs the gate (and the capture entries) for one ARI server until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        client: AriClient,
        gate: Gate,
        *,
        app: str = "callshield",
        hangup_blocked: bool = False,
        backoff: Backoff | None = None,
        capture: KeypadCapture | None = None,
        optout: OptOut | None = None,
        ledger: GateLedger | None = None,
    ) -> None:
        super().__init__(name, app, client, backoff)
        self._gate = gate
        self._actor = VerdictActor(client, hangup_blocked=hangup_blocked)
        self._capture = capture
        self._optout = optout
        self._ledger = ledger
        """Where allowed calls are noted for the guard, so it leaves their outbound legs alone."""
        self._sessions: dict[str, asyncio.Queue[Event]] = {}
        """Events of channels in an opt-out offer, by channel id."""
        self._inflight: set[str] = set()
        self._entries = {kind for kind, on in (("optout", optout), (TONE_ARG, capture)) if on is not None}
        """The Stasis entries other than the gate's (taken one call at a time)."""
        self._calls: Bursts[tuple[str, list[str], Snapshot]] = Bursts(self._decide_call, self._spawn)
        """Gate calls, decided in bursts (:mod:`callshield.ari.bursts`)."""

    def _open(self) -> EventStream:
        # Other frames (a real Asterisk sends ~54 ChannelVarset per subscribed call, and a
        # StasisEnd per gated call that only the capture and the opt-out look at) are dropped
        # before any JSON parsing.
        # StasisStart comes as GateStart: its channel snapshot is read only when asked.
        wanted = GATE_EVENTS if self._capture is None and self._optout is None else APP_EVENTS
        return self._client.events([self.app], wanted=wanted, only_wanted=True, kind=GateStream)

    async def _consume(self, stream: EventStream) -> None:
        async for event in stream:
            self._dispatch(event)

    async def _after_connect(self) -> None:
        await self._recover()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, GateStart):
            self._start(event.channel_id, list(event.args), event.channel)
            return
        channel = getattr(event, "channel", None)
        if isinstance(channel, Channel) and channel.id in self._sessions:
            self._sessions[channel.id].put_nowait(event)
        if self._capture is not None:
            work = self._capture.on_event(event)
            if work is not None:
                self._spawn(work)

    async def _recover(self) -> None:
        """Decide the channels parked in the application while it was not connected."""
        try:
            parked = (await self._client.get_application(self.app)).channel_ids
        except PeerError as e:
            log.error("ARI %s: cannot list parked channels (%s)", self.name, e)
            return
        for channel_id in parked:
            if channel_id not in self._inflight and channel_id not in self._sessions:
                self._spawn(self._recover_channel(channel_id))

    async def _recover_channel(self, channel_id: str) -> None:
        try:
            channel = await self._client.get_channel(channel_id)
        except AriRequestError as e:
            if not e.is_gone:
                log.error("ARI %s: channel %s parked but unreadable (%s)", self.name, channel_id, e)
            return
        args = stasis_args(channel.dialplan.app_data if channel.dialplan else "", self.app)
        log.info("ARI %s: channel %s was parked while disconnected; deciding it now", self.name, channel_id)
        self._start(channel_id, args or [], lambda: channel)

    def _start(self, channel_id: str, args: list[str], snapshot: Snapshot) -> None:
        """A channel entered the application (``snapshot`` reads its channel when one is needed):
        an opt-out offer or a tone in a task of its own, anything else to the gate's queue."""
        if (args[0] if args else "") in self._entries:
            self._spawn(self._on_entry(channel_id, args, snapshot))
        else:
            self._calls.put((channel_id, args, snapshot))

    async def _on_entry(self, channel_id: str, args: list[str], snapshot: Snapshot) -> None:
        if args[0] == "optout" and self._optout is not None:
            await self._offer_optout(channel_id, snapshot, args[1:])
        elif args[0] == TONE_ARG and self._capture is not None:
            await self._capture.play_tone(channel_id)

    async def _decide_call(self, call: tuple[str, list[str], Snapshot]) -> FollowUp | None:
        """The verdict on a queued call, and its delivery to run (None: it is being decided
        already, found twice: its StasisStart and the listing after a reconnect)."""
        channel_id, args, snapshot = call
        if channel_id in self._inflight:
            return None
        self._inflight.add(channel_id)
        return self._act(channel_id, args, snapshot, await self._verdict(args))

    async def _verdict(self, args: list[str]) -> Verdict:
        """The gate's verdict on ``Stasis(app,gate,NUMBER[,company[,campaign]])``; BLOCK for any
        other entry."""
        if args and args[0] == "gate":
            return await self._gate.check(*call_arguments(args[1:]))
        return self._not_ours(args)

    async def _act(self, channel_id: str, args: list[str], snapshot: Snapshot, verdict: Verdict) -> None:
        """Note, deliver and follow up a verdict; the channel leaves ``_inflight`` when done."""
        try:
            await self._deliver_verdict(channel_id, args, snapshot, verdict)
        finally:
            self._inflight.discard(channel_id)

    async def _deliver_verdict(
        self, channel_id: str, args: list[str], snapshot: Snapshot, verdict: Verdict
    ) -> None:
        if self._ledger is not None and verdict.decision.allowed and verdict.e164 is not None:
            self._ledger.allowed(channel_id, verdict.e164)  # before the continue: the Dial follows it
        delivered = await self._deliver(channel_id, verdict)
        if delivered and verdict.decision.allowed and verdict.e164 and self._capture is not None:
            try:
                await self._capture.watch(snapshot(), verdict.e164, _scope(args))
            except PeerError as e:
                log.error("ARI %s: cannot listen for the agent code on %s (%s)", self.name, channel_id, e)

    async def _offer_optout(self, channel_id: str, snapshot: Snapshot, args: list[str]) -> None:
        assert self._optout is not None
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sessions[channel_id] = queue
        try:
            await self._optout.run(snapshot(), args, queue)
        except PeerError as e:
            log.error("ARI %s: opt-out offer on %s failed (%s)", self.name, channel_id, e)
        finally:
            self._sessions.pop(channel_id, None)

    async def _deliver(self, channel_id: str, verdict: Verdict) -> bool:
        """Apply the verdict (with retries); True if the channel got it."""
        label = dialplan_label(verdict)
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                if await self._actor.apply(channel_id, verdict, label):
                    d = verdict.decision
                    _decided(
                        "gate %s %s %s (%s) channel=%s -> %s",
                        verdict.masked, d.action, d.reason, d.rule, channel_id, label,
                    )  # fmt: skip
                    return True
                return False
            except PeerError as e:
                if attempt == DELIVERY_ATTEMPTS:
                    log.error(
                        "ARI %s: verdict for channel %s not delivered (%s); it stays parked until"
                        " the next reconnect",
                        self.name,
                        channel_id,
                        e,
                    )
                    return False
                await asyncio.sleep(RETRY_DELAY * attempt)
        return False

    def _not_ours(self, args: list[str]) -> Verdict:
        """The verdict for ``Stasis(app,KIND,...)`` with a KIND that is not a callshield entry."""
        kind, rest = (args[0], args[1:]) if args else ("", [])
        log.warning(
            "ARI %s: Stasis(%s,%s,...) is not a callshield entry; blocking", self.name, self.app, kind
        )
        return Verdict(
            blocked_by_error(f"unknown Stasis entry {kind[:16]!r}"), mask(rest[0] if rest else ""), None
        )


def _scope(args: list[str]) -> Scope:
    """The scope a gated call's refusal binds: its company and campaign arguments, if valid."""
    padded = [*args[2:], "", ""]
    try:
        return Scope(padded[0] or None, padded[1] or None if padded[0] else None)
    except InvalidInput:
        return Scope()
