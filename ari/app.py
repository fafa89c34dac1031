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
import contextlib
import logging
import random
from collections.abc import Coroutine
from typing import Any

from callshield.ari.capture import TONE_ARG, KeypadCapture
from callshield.ari.client import AriClient
from callshield.ari.events import Event, StasisStart
from callshield.ari.gate import VerdictActor, dialplan_label, stasis_args
from callshield.ari.guard_ledger import GateLedger
from callshield.ari.models import Channel
from callshield.ari.optout import OptOut
from callshield.ari.websocket import EventStream
from callshield.errors import AriRequestError, InvalidInput, PeerError, PeerUnavailable
from callshield.gate import Gate, Verdict
from callshield.models import Scope
from callshield.policy import blocked_by_error
from callshield.privacy import mask

log = logging.getLogger(__name__)


DELIVERY_ATTEMPTS = 3
"""Tries to deliver a verdict when ARI fails (5xx, timeout) before leaving the channel parked;
a parked channel is decided again after the next reconnect."""
RETRY_DELAY = 0.1


class Backoff:
    """Capped exponential delays with jitter: 0.5 s, 1 s, 2 s ... 30 s; reset on success."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def delay(self) -> float:
        current = self._next
        self._next = min(self.cap, current * 2)
        return current * random.uniform(0.8, 1.0)  # jitter, not a secret

    def reset(self) -> None:
        self._next = self.first


class StasisApp:
    """Runs the gate for one ARI server until :meth:`stop`."""

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
        self.name = name
        self.app = app
        self._client = client
        self._gate = gate
        self._actor = VerdictActor(client, hangup_blocked=hangup_blocked)
        self._backoff = backoff or Backoff()
        self._capture = capture
        self._optout = optout
        self._ledger = ledger
        """Where allowed calls are noted for the guard, so it leaves their outbound legs alone."""
        self._sessions: dict[str, asyncio.Queue[Event]] = {}
        """Events of channels in an opt-out offer, by channel id."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[str] = set()
        self._stopping = asyncio.Event()
        self._stream: EventStream | None = None
        self.connected = asyncio.Event()
        """Set while the events websocket is up (tests and health checks wait on it)."""

    async def run(self) -> None:
        """Connect, handle events, reconnect; returns only after :meth:`stop`."""
        healthy = True
        while not self._stopping.is_set():
            try:
                async with self._client.events([self.app]) as stream:
                    self._stream = stream
                    if self._stopping.is_set():
                        break
                    self._on_connected(healthy)
                    healthy = True
                    self._spawn(self._recover())
                    async for event in stream:
                        self._dispatch(event)
            except (PeerUnavailable, AriRequestError) as e:
                if healthy:
                    log.warning("ARI %s: connection lost or refused (%s); reconnecting", self.name, e)
                healthy = False
            self.connected.clear()
            if not self._stopping.is_set():
                await self._sleep(self._backoff.delay())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, let in-flight decisions finish (up to ``grace`` s), close."""
        self._stopping.set()
        if self._stream is not None:
            await self._stream.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        await self._client.close()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StasisStart):
            self._spawn(self._on_stasis_start(event.channel, list(event.args)))
            return
        channel = getattr(event, "channel", None)
        if isinstance(channel, Channel) and channel.id in self._sessions:
            self._sessions[channel.id].put_nowait(event)
        if self._capture is not None:
            work = self._capture.on_event(event)
            if work is not None:
                self._spawn(work)

    def _on_connected(self, healthy: bool) -> None:
        self._backoff.reset()
        self.connected.set()
        log.info("ARI %s: connected, application %s%s", self.name, self.app, "" if healthy else " (again)")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        await self._on_stasis_start(channel, args or [])

    async def _on_stasis_start(self, channel: Channel, args: list[str]) -> None:
        kind = args[0] if args else ""
        if kind == "optout" and self._optout is not None:
            await self._offer_optout(channel, args[1:])
        elif kind == TONE_ARG and self._capture is not None:
            await self._capture.play_tone(channel.id)
        elif channel.id not in self._inflight:
            self._inflight.add(channel.id)
            try:
                await self._gate_call(channel, args)
            finally:
                self._inflight.discard(channel.id)

    async def _gate_call(self, channel: Channel, args: list[str]) -> None:
        verdict = await self._decide(args)
        if self._ledger is not None and verdict.decision.allowed and verdict.e164 is not None:
            self._ledger.allowed(channel.id, verdict.e164)  # before the continue: the Dial follows it
        delivered = await self._deliver(channel.id, verdict)
        if delivered and verdict.decision.allowed and verdict.e164 and self._capture is not None:
            try:
                await self._capture.watch(channel, verdict.e164, _scope(args))
            except PeerError as e:
                log.error("ARI %s: cannot listen for the agent code on %s (%s)", self.name, channel.id, e)

    async def _offer_optout(self, channel: Channel, args: list[str]) -> None:
        assert self._optout is not None
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sessions[channel.id] = queue
        try:
            await self._optout.run(channel, args, queue)
        except PeerError as e:
            log.error("ARI %s: opt-out offer on %s failed (%s)", self.name, channel.id, e)
        finally:
            self._sessions.pop(channel.id, None)

    async def _deliver(self, channel_id: str, verdict: Verdict) -> bool:
        """Apply the verdict (with retries); True if the channel got it."""
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                if await self._actor.apply(channel_id, verdict):
                    self._log(channel_id, verdict)
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

    async def _decide(self, args: list[str]) -> Verdict:
        kind, rest = (args[0], args[1:]) if args else ("", [])
        if kind != "gate":
            log.warning(
                "ARI %s: Stasis(%s,%s,...) is not a callshield entry; blocking", self.name, self.app, kind
            )
            return Verdict(
                blocked_by_error(f"unknown Stasis entry {kind[:16]!r}"), mask(rest[0] if rest else ""), None
            )
        padded = [*rest, "", "", ""]
        return await self._gate.check(padded[0], padded[1] or None, padded[2] or None)

    def _log(self, channel_id: str, verdict: Verdict) -> None:
        d = verdict.decision
        log.info(
            "gate %s %s %s (%s) channel=%s -> %s",
            verdict.masked,
            d.action,
            d.reason,
            d.rule,
            channel_id,
            dialplan_label(verdict),
        )


def _scope(args: list[str]) -> Scope:
    """The scope a gated call's refusal binds: its company and campaign arguments, if valid."""
    padded = [*args[2:], "", ""]
    try:
        return Scope(padded[0] or None, padded[1] or None if padded[0] else None)
    except InvalidInput:
        return Scope()
