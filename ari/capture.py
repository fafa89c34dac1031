"""The agent's keypad code during a connected call: shield the customer, confirm, end the call.

Two ways to learn who the customer is, fed from two kinds of connection:

- **gated calls** (the gate's own connection): after an ALLOW the gate calls :meth:`watch` with
  the agent channel and the number it just allowed, and subscribes the application to the agent
  channel (without a subscription Asterisk sends no DTMF from the Dial bridge). The ``Dial``
  events of that channel name the customer leg (``peer``).
- **predictive dialers** (a ``subscribeAll`` connection, which sees every channel): the customer
  leg is the other channel in the bridge of the agent who pressed the code, and its number is its
  caller number (for an outbound leg, the number dialled). ``is_customer_leg`` tells customer
  legs (trunk channels) from agents, so a customer pressing the code marks nobody.

On a match the customer leg is hung up at once (the customer said no: the call ends promptly,
whatever else happens), while the refusal is stored durably (the recorder falls back to its
journal); only once it is stored is the confirmation tone whispered to the agent (a Snoop
channel): no tone means the refusal must be flagged again. State is kept per live channel only
and dropped when the channel goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callshield.ari.client import AriClient
from callshield.ari.events import (
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelLeftBridge,
    Dial,
    Event,
)
from callshield.ari.models import Channel, parse_ari_time
from callshield.capture import RefusalSink
from callshield.errors import AriRequestError, CallShieldError, PeerError
from callshield.keypad import DigitBuffer, KeypadCode
from callshield.models import Scope, Source
from callshield.numbers import NumberRules, normalize
from callshield.privacy import mask

log = logging.getLogger(__name__)

TONE_ARG = "confirm-tone"
"""Stasis argument of the Snoop channel that whispers the confirmation to the agent."""
CUSTOMER_HANGUP_CAUSE = 16
"""Q.850 normal clearing: the call ended because the customer refused."""


@dataclass
class Watched:
    """An agent channel whose keypad is listened to."""

    agent: Channel
    buffer: DigitBuffer
    e164: str | None = None
    scope: Scope = field(default_factory=Scope)
    customer: str | None = None
    """The customer leg's channel id, once known."""


class KeypadCapture:
    """Matches the agent code on watched channels and ends the call; see the module docstring."""

    def __init__(
        self,
        client: AriClient,
        sink: RefusalSink,
        code: KeypadCode,
        rules: NumberRules,
        *,
        app: str,
        pbx: str,
        is_customer_leg: Callable[[Channel], bool] | None = None,
        tone: str = "tone:425/300",
    ) -> None:
        self._client, self._sink, self._code, self._rules = client, sink, code, rules
        self._app, self._pbx, self._tone = app, pbx, tone
        self._is_customer_leg = is_customer_leg
        self._watched: dict[str, Watched] = {}
        self._bridges: dict[str, tuple[str, ...]] = {}
        self._channels: dict[str, Channel] = {}

    @property
    def watched(self) -> int:
        return len(self._watched)

    async def watch(self, agent: Channel, e164: str, scope: Scope) -> None:
        """Listen to a gated agent channel (after the gate's ``continue``)."""
        self._watched[agent.id] = Watched(agent, DigitBuffer(self._code), e164, scope)
        try:
            await self._client.subscribe(f"channel:{agent.id}", self._app)
        except AriRequestError as e:
            self._watched.pop(agent.id, None)
            if not e.is_gone:
                raise

    def on_event(self, event: Event) -> Coroutine[Any, Any, None] | None:
        """Update state from one event; returns the work to run when a code completes."""
        if isinstance(event, ChannelDtmfReceived):
            return self._on_digit(event)
        if isinstance(event, Dial):
            self._on_dial(event)
        elif isinstance(event, ChannelEnteredBridge | ChannelLeftBridge):
            self._bridges[event.bridge.id] = tuple(event.bridge.channels)
            if event.channel is not None and self._is_customer_leg is not None:
                self._channels[event.channel.id] = event.channel
            if not event.bridge.channels:
                self._bridges.pop(event.bridge.id, None)
        elif isinstance(event, BridgeDestroyed):
            self._bridges.pop(event.bridge.id, None)
        elif isinstance(event, ChannelDestroyed):
            self._forget(event.channel.id)
        return None

    def _on_dial(self, event: Dial) -> None:
        watched = self._watched.get(event.caller.id) if event.caller else None
        if watched is not None and watched.customer is None:
            watched.customer = event.peer.id
        if self._is_customer_leg is not None:  # bridge mode: every ChannelDestroyed is seen too
            self._channels[event.peer.id] = event.peer

    def _forget(self, channel_id: str) -> None:
        self._watched.pop(channel_id, None)
        self._channels.pop(channel_id, None)
        for bridge in [b for b, channels in self._bridges.items() if channel_id in channels]:
            del self._bridges[bridge]
        for watched in self._watched.values():
            if watched.customer == channel_id:
                watched.customer = None

    def _on_digit(self, event: ChannelDtmfReceived) -> Coroutine[Any, Any, None] | None:
        channel = event.channel
        watched = self._watched.get(channel.id)
        if watched is None:
            if self._is_customer_leg is None or self._is_customer_leg(channel):
                return None
            watched = self._watched[channel.id] = Watched(channel, DigitBuffer(self._code))
        if not watched.buffer.feed(event.digit, _seconds(event.timestamp), event.duration_ms):
            return None
        return self._refused(watched, event.timestamp)

    def _customer(self, watched: Watched) -> tuple[str | None, str | None]:
        """(customer channel id, E.164) of the agent's call, from the gate or from the bridge."""
        if watched.e164 is not None:
            return watched.customer, watched.e164
        for channels in self._bridges.values():
            if watched.agent.id in channels:
                others = [c for c in channels if c != watched.agent.id]
                if len(others) == 1 and others[0] in self._channels:
                    leg = self._channels[others[0]]
                    return leg.id, _number(leg, self._rules)
        return None, None

    async def _refused(self, watched: Watched, timestamp: str) -> None:
        agent = watched.agent
        customer, e164 = self._customer(watched)
        if e164 is None:
            log.warning("keypad code on %s but its customer is unknown; nothing marked", agent.id)
            return
        evidence = {
            "pbx": self._pbx,
            "agent_channel": agent.id,
            "agent": agent.caller.number if agent.caller else "",
            "call_id": agent.protocol_id or "",
            "customer_channel": customer or "",
            "digits": self._code.code,
            "pressed_at": timestamp,
        }
        ending = asyncio.create_task(self._end(customer or agent.id))
        try:
            await self._sink.refuse(
                e164, watched.scope, Source.AGENT_KEYPAD, "agent keypad code", evidence, datetime.now(UTC)
            )
        except CallShieldError as e:
            log.error("refusal %s on %s NOT recorded (%s): no confirmation tone", mask(e164), agent.id, e)
            await ending
            return
        log.info("refusal %s recorded (agent %s)", mask(e164), agent.id)
        await asyncio.gather(ending, self._confirm(agent.id))

    async def _end(self, channel_id: str) -> None:
        try:
            await self._client.hangup(channel_id, reason_code=CUSTOMER_HANGUP_CAUSE)
        except AriRequestError as e:
            if not e.is_gone:
                log.error("could not hang up %s after a refusal (%s)", channel_id, e)
        except PeerError as e:
            log.error("could not hang up %s after a refusal (%s)", channel_id, e)

    async def _confirm(self, agent_id: str) -> None:
        try:
            await self._client.snoop(agent_id, app=self._app, whisper="out", app_args=[TONE_ARG])
        except PeerError as e:
            log.info("no confirmation tone for %s (%s)", agent_id, e)

    async def play_tone(self, snoop_id: str) -> None:
        """Called for the Snoop channel's StasisStart: play the tone, then let the channel go."""
        try:
            await self._client.play(snoop_id, self._tone)
            await asyncio.sleep(0.4)
            await self._client.hangup(snoop_id)
        except PeerError as e:
            log.debug("confirmation tone on %s ended early (%s)", snoop_id, e)


def _seconds(timestamp: str) -> float:
    try:
        return parse_ari_time(timestamp).timestamp()
    except (ValueError, CallShieldError):
        return asyncio.get_running_loop().time()


def _number(leg: Channel, rules: NumberRules) -> str | None:
    for candidate in (leg.caller.number if leg.caller else "", leg.connected.number if leg.connected else ""):
        try:
            return normalize(candidate, rules)
        except CallShieldError:
            continue
    return None
