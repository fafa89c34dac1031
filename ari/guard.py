"""The guard: catches outbound calls that never passed the gate, and hangs them up before answer.

The gate sees only calls the dialplan sends through it; an originate straight to a trunk (ARI or
AMI Originate, a call file, a dialer, a misconfigured context) does not. The guard is a second
ARI connection with its own application name and ``subscribeAll=true``: it sees every channel's
events, recognises new outbound legs in ``Dial`` events (:mod:`callshield.ari.guard_legs`),
and for each one that the gate did not allow (the :class:`GateLedger` says) it decides with the
same :class:`~callshield.gate.Gate` and hangs blocked legs up (:mod:`callshield.ari.guard_act`).

Cheap on the full event stream of a busy PBX (about 80 events per call): after connecting it asks
Asterisk to send only the event types it uses (``PUT /applications/{app}/eventFilter``: ``Dial``
and ``ApplicationReplaced``, three frames per call, and ``RESTResponse``, see below), and drops
the other types unparsed anyway; without hooks it reads ``Dial`` lean, and drops unparsed what
changes nothing for it: ``Dial`` progress, the end of a leg's dial
(:mod:`callshield.ari.guard_stream`). Nothing but a new outbound leg leads to store work.

State is kept per outbound leg while it rings: from the ``Dial`` that starts it to the ``Dial``
that ends it (answered, or a final status such as NOANSWER or CANCEL, which Asterisk publishes for
every dialled channel, a hang-up by the guard included: ``captures/guard_subscribe_all.jsonl``),
else until a channel listing after a reconnect finds it gone, and never more than
:data:`MAX_LEGS`. (Its ``ChannelDestroyed`` would come later, and is not asked for: two more frames
per call.) Legs that did not pass the gate are decided in bursts (:mod:`callshield.ari.bursts`),
never in the task that reads the stream, so a decision that waits holds up neither the stream nor
the next legs.

The connection is kept up like the gate's: capped backoff, each state change logged once; after
every (re)connect the live channels are listed and outbound legs still ringing that were not seen
are checked (Asterisk replays nothing). Other consumers of the same stream (the keypad capture of
dialer calls) can be attached as ``hooks``: they get every event the stream reads in full, that is
those of ``hook_events`` (and ``ApplicationReplaced``). The guard's ``Dial`` events stay lean,
and reach the hooks only if ``hook_events`` lists ``Dial``: then they are read in full, for both.

Hang-ups go over the guard's own events websocket (REST over the websocket, Asterisk 20.14, 21.9,
22.4 and later: no HTTP request, a fraction of its cost) once Asterisk has answered there on the
current connection: after the event filter is set (it must allow ``RESTResponse``, or Asterisk
drops the answers), a ``GET /asterisk/ping`` goes over the websocket, in a task of its own (the
answer is read by the task that reads the stream). Answered within :data:`PROBE_WITHIN` s: the
hang-ups of this connection go over it; else (an older Asterisk never answers) over HTTP, as they
do while the probe waits. One INFO line per connection says which. A websocket hang-up that gets
no answer is sent over HTTP at once (:mod:`callshield.ari.guard_act`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from typing import Any

from callshield.ari.bursts import Bursts, FollowUp
from callshield.ari.client import AriClient
from callshield.ari.connection import AriConnection, Backoff
from callshield.ari.events import ApplicationReplaced, ChannelDestroyed, Dial, Event
from callshield.ari.guard_act import LegJudge, Resolved
from callshield.ari.guard_ledger import GateLedger
from callshield.ari.guard_legs import LegMatcher, OutboundLeg, exten_number, ringing_leg
from callshield.ari.guard_stream import DIAL_ENDS, FINAL_DIALSTATUS, DialSeen, GuardStream
from callshield.ari.models import Channel
from callshield.ari.websocket import REST_RESPONSE, EventStream
from callshield.errors import AriRequestError, PeerError
from callshield.gate import Gate, Verdict, utc_now
from callshield.guard_config import GuardSettings
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore

__all__ = ["GUARD_EVENTS", "EventHook", "GateLedger", "GuardApp", "seen_of"]

log = logging.getLogger(__name__)

GUARD_EVENTS = frozenset({"Dial", "ApplicationReplaced"})
"""The event types the guard itself parses (asked of Asterisk's event filter, with ``RESTResponse``
when its hang-ups may go over the websocket: :meth:`GuardApp.filter_types`)."""
PROBE_WITHIN = 1.0
"""Seconds Asterisk has to answer the ``GET /asterisk/ping`` sent over each new connection's
websocket before the connection's hang-ups are left to HTTP."""
MAX_LEGS = 100_000
"""Bound on the ringing legs remembered, should the ``Dial`` that ends one be lost."""
YIELD_EVERY = 32
"""Events handled between two turns of the event loop: a burst of buffered frames must not hold
back the checks and hang-ups under way. (Longer slices, 128 events or 1-4 ms, were no faster
within the bench's noise, and doubled the wait of a hang-up under a flood.)"""
DIALSTRING_VARIABLE = "DIALEDPEERNUMBER"
"""Set by ``Dial()`` on the leg (``5557001@carrier``); read for legs found by a listing."""

EventHook = Callable[[Event], Coroutine[Any, Any, None] | None]
"""Another consumer of the guard's event stream; a returned coroutine is run as a task."""


class GuardApp(AriConnection):
    """Runs the guard for one ARI server until :meth:`stop`."""

    label = "guard"

    def __init__(
        self,
        name: str,
        client: AriClient,
        gate: Gate,
        store: ShieldStore,
        settings: GuardSettings,
        rules: NumberRules,
        ledger: GateLedger,
        *,
        hooks: Sequence[EventHook] = (),
        hook_events: Iterable[str] = (),
        server_filter: bool = True,
        rest_over_websocket: bool = True,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(name, settings.app, client, backoff)
        self._matcher = LegMatcher(settings)
        self.judge = LegJudge(name, client, gate, store, rules, ledger, strict=settings.strict, clock=clock)
        self._hooks = tuple(hooks)
        hook_types = frozenset(hook_events)
        self._wanted = GUARD_EVENTS | hook_types
        self._full_dials = bool(self._hooks) and "Dial" in hook_types
        """A hook takes ``Dial`` events: they are read in full (:class:`EventStream`)."""
        self._server_filter = server_filter
        self._rest_over_websocket = rest_over_websocket
        """Try hang-ups over the events websocket (module docstring); False: HTTP only."""
        self._filter_refused = False
        self._legs: dict[str, None] = {}
        """Outbound legs ringing (module docstring), shared with the :class:`GuardStream`."""
        self._unchecked: Bursts[tuple[OutboundLeg, Resolved]] = Bursts(self._decide_leg, self._spawn)
        """Legs that did not pass the gate, decided in bursts (:mod:`callshield.ari.bursts`)."""

    @property
    def legs(self) -> int:
        """Outbound legs ringing and remembered now."""
        return len(self._legs)

    def _open(self) -> EventStream:
        kind = EventStream if self._full_dials else GuardStream
        stream = self._client.events(
            [self.app], subscribe_all=True, wanted=self._wanted, only_wanted=True, kind=kind
        )
        if isinstance(stream, GuardStream):
            stream.legs = self._legs  # it ends a leg's entry itself when the leg's dial ends
        return stream

    async def _consume(self, stream: EventStream) -> None:
        handled = 0
        async for event in stream:
            self.dispatch(event)
            handled += 1
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # frames already buffered do not yield by themselves

    def dispatch(self, event: Event) -> None:
        """Handle one event (the hot path: most events are none of the guard's business)."""
        if isinstance(event, DialSeen):
            self._on_dial(event)
        elif isinstance(event, Dial):
            self._on_dial(seen_of(event))
        elif isinstance(event, ChannelDestroyed):  # a hook asked for it: a leg's very end
            self._legs.pop(event.channel.id, None)
        elif isinstance(event, ApplicationReplaced):
            log.error("guard %s: another connection took application %s; no more events", self.name, self.app)
        if not self._hooks or isinstance(event, DialSeen):  # a lean Dial: the guard's alone
            return
        for hook in self._hooks:
            try:
                work = hook(event)
            except Exception:
                log.exception("guard %s: an event hook failed on %s", self.name, type(event).__name__)
                continue
            if work is not None:
                self._spawn(work)

    def _on_dial(self, dial: DialSeen) -> None:
        status = dial.dialstatus
        if dial.peer_id in self._legs:
            if status in DIAL_ENDS:
                del self._legs[dial.peer_id]
            return
        if status in FINAL_DIALSTATUS:
            return  # the end of a leg not known here: nothing left to stop
        caller_id = dial.caller_id if dial.caller_id is not None else ""
        leg = self._matcher.leg_of(dial.peer_id, dial.peer_name, dial.peer_exten, dial.dialstring, caller_id)
        if leg is not None:
            self._take(leg, ringing=status != "ANSWER")

    def _take(self, leg: OutboundLeg, *, ringing: bool = True) -> None:
        """Remember the leg while it rings; nothing more if it passed the gate, else queue it for
        a decision (an answered one too: found only now, it is checked all the same)."""
        if ringing:
            self._legs[leg.channel_id] = None
            if len(self._legs) > MAX_LEGS:
                del self._legs[next(iter(self._legs))]
        number = self.judge.resolve(leg)
        if self.judge.passed_gate(leg, number):
            return
        self._unchecked.put((leg, number))

    async def _decide_leg(self, queued: tuple[OutboundLeg, Resolved]) -> FollowUp | None:
        """Decide a queued leg; a blocked one's hang-up and audit are the follow-up (in a task of
        their own while more legs wait: one slow ``DELETE`` never holds up the next decision)."""
        leg, number = queued
        verdict = await self._decide(leg, number)
        return self.judge.block(leg, verdict) if verdict is not None else None

    async def _decide(self, leg: OutboundLeg, number: Resolved) -> Verdict | None:
        """:meth:`LegJudge.decide`; should it fail (a bug: the gate's own errors are BLOCK
        verdicts already), the leg is blocked too, never let through."""
        try:
            return await self.judge.decide(leg, number)
        except Exception:
            log.exception("guard %s: deciding leg %s failed; blocking it", self.name, leg.channel_id)
            return self.judge.failed(number)

    @property
    def filter_types(self) -> list[str]:
        """The types asked of Asterisk's event filter: those parsed, and ``RESTResponse`` when
        hang-ups may go over the websocket."""
        extra = {REST_RESPONSE} if self._rest_over_websocket else set()
        return sorted(self._wanted | extra)

    async def _after_connect(self) -> None:
        stream = self._stream
        self.judge.over = None  # a new connection: over HTTP until Asterisk answers on this one
        if self._server_filter:
            await self._set_filter()
        if self._rest_over_websocket and stream is not None:
            self._spawn(self._probe(stream))  # not awaited: answered while _consume reads the stream
        else:
            log.info("guard %s: hang-ups go over HTTP", self.name)
        await self._recover()

    async def _probe(self, stream: EventStream) -> None:
        """Hang-ups go over ``stream`` if Asterisk answers a ``GET /asterisk/ping`` sent on it
        within :data:`PROBE_WITHIN` s (after the event filter allows the answer), else over HTTP."""
        try:
            await self._client.ping(over=stream, time_limit=PROBE_WITHIN)
        except PeerError as e:
            if stream is self._stream:
                log.info("guard %s: hang-ups go over HTTP (REST over the event websocket: %s)", self.name, e)
            return
        if stream is self._stream and stream.connected:
            self.judge.over = stream
            log.info("guard %s: hang-ups go over the event websocket", self.name)

    async def _set_filter(self) -> None:
        try:
            await self._client.set_event_filter(allowed=self.filter_types, app=self.app)
        except AriRequestError as e:
            if e.status == 400 and self._rest_over_websocket:  # RESTResponse not a type it knows?
                log.warning(
                    "guard %s: the event filter with RESTResponse was refused (%s); hang-ups go over HTTP",
                    self.name,
                    e,
                )
                self._rest_over_websocket = False  # its answers could not pass the filter
                await self._set_filter()
                return
            self._no_filter(e)
        except PeerError as e:
            self._no_filter(e)

    def _no_filter(self, error: PeerError) -> None:
        if not self._filter_refused:
            log.warning("guard %s: no event filter (%s); every event is filtered here", self.name, error)
        self._filter_refused = True

    async def _recover(self) -> None:
        """Forget legs that ended meanwhile; check outbound legs ringing that were not seen."""
        known = set(self._legs)
        try:
            channels = await self._client.list_channels()
        except PeerError as e:
            log.error("guard %s: cannot list channels (%s); legs already ringing not checked", self.name, e)
            return
        for channel_id in known - {c.id for c in channels}:
            self._legs.pop(channel_id, None)
        for channel in channels:
            if channel.id not in self._legs and ringing_leg(channel):
                await self._recover_leg(channel)

    async def _recover_leg(self, channel: Channel) -> None:
        patterns = self._matcher.needs_dialstring
        if not patterns and not self._matcher.is_trunk(channel.name):
            return
        dialstring = None
        if patterns or not exten_number(channel):
            dialstring = await self._dialstring(channel.id)
        leg = self._matcher.leg(channel, dialstring, None)
        if leg is None or channel.id in self._legs:
            return
        log.info(
            "guard %s: leg %s was ringing before the guard connected; checking it", self.name, leg.channel_id
        )
        self._take(leg)

    async def _dialstring(self, channel_id: str) -> str:
        try:
            return await self._client.get_channel_var(channel_id, DIALSTRING_VARIABLE)
        except PeerError:
            return ""  # not set (an originate), or the channel is gone


def seen_of(dial: Dial) -> DialSeen:
    """The guard's view of a fully parsed ``Dial``."""
    return DialSeen(
        application=dial.application,
        timestamp=dial.timestamp,
        asterisk_id=dial.asterisk_id,
        peer_id=dial.peer.id,
        peer_name=dial.peer.name,
        peer_exten=dial.peer.dialplan.exten,
        dialstatus=dial.dialstatus,
        caller_id=dial.caller.id if dial.caller is not None else None,
        dialstring=dial.dialstring,
    )
