"""What the fake Asterisk does: the call flows of BEHAVIOUR.md, as sequences of captured events.

Shared by the REST handlers (what the application asks for) and by the test controls of
:class:`~fake_ari.FakeAri` (what phones, trunks and the dialplan do). Each method mutates the
:class:`World` and emits the events a real Asterisk 22 emitted in the same situation, in the same
order (see the captures named in each docstring).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from fake_ari_world import (
    CAUSE_TEXT,
    SIP_STATUS_FOR_CAUSE,
    Continued,
    FakeBridge,
    FakeChannel,
    World,
)

_CHANNEL_FIELDS = frozenset(FakeChannel.__dataclass_fields__) - {
    "variables", "stasis_app", "stasis_args", "stasis_status", "continued",
    "hangup_cause", "destroyed", "subscribers", "bridge_id", "dialed_by", "dialstring", "snooping",
}  # fmt: skip
SOFT_HANGUP_EXPLICIT = 32
"""``cause`` of the ChannelHangupRequest an ARI DELETE produces (a soft-hangup flag, ``soft``)."""


class Pbx:
    """Call-flow behaviour over a :class:`World`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._names = itertools.count(0)
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background (delayed events); cancelled by :meth:`close`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel pending background events."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- channels ---------------------------------------------------------------------------------

    async def create_channel(self, fields: dict[str, object]) -> FakeChannel:
        """A new channel (``ChannelCreated``: only subscribeAll sockets can see it yet)."""
        unknown = set(fields) - _CHANNEL_FIELDS
        if unknown:
            raise TypeError(f"unknown channel fields: {sorted(unknown)}")
        channel_id = str(fields.pop("id", "") or self.world.new_channel_id())
        name = fields.pop("name", None) or f"PJSIP/agent1-{next(self._names):08x}"
        channel = FakeChannel(id=channel_id, name=str(name), **fields)  # type: ignore[arg-type]
        self.world.channels[channel.id] = channel
        await self.channel_event("ChannelCreated", channel)
        return channel

    async def channel_event(
        self,
        event_type: str,
        channel: FakeChannel,
        *,
        lead: dict[str, object] | None = None,
        body: dict[str, object] | None = None,
        only_app: str | None = None,
    ) -> None:
        """Emit an event about one channel; ``channel`` is its current snapshot."""
        payload = {**(body or {}), "channel": channel.snapshot()}
        await self.world.emit(event_type, payload, lead=lead, channels=[channel], only_app=only_app)

    async def stasis_start(self, app: str, args: Sequence[str], channel: FakeChannel) -> None:
        """``Stasis(app,args...)``: StasisStart to the app, or fail open (STASISSTATUS=FAILED)."""
        channel.app_name = "Stasis"
        channel.app_data = ",".join([app, *args])
        if not self.world.app_active(app):
            channel.stasis_status = "FAILED"  # "Stasis app 'NAME' doesn't exist"; dialplan goes on
            channel.priority += 1
            return
        channel.stasis_app = app
        channel.stasis_args = tuple(args)
        body: dict[str, object] = {"args": list(args)}
        await self.channel_event("StasisStart", channel, body=body, only_app=app)

    async def leave_stasis(self, channel: FakeChannel) -> None:
        """StasisEnd to the app the channel was parked in (pjsip_flow: continue, hangups)."""
        app = channel.stasis_app
        if app is None:
            return
        channel.stasis_app = None
        channel.stasis_status = "SUCCESS"
        payload = {"channel": channel.snapshot()}
        await self.world.emit("StasisEnd", payload, channels=[channel], only_app=app)

    async def continue_in_dialplan(self, channel: FakeChannel, target: Continued) -> None:
        """StasisEnd (with the snapshot still in Stasis), then move to ``target``."""
        channel.continued = target
        await self.leave_stasis(channel)
        channel.context, channel.exten = target.context, target.extension
        channel.priority = target.priority if target.priority is not None else channel.priority
        channel.app_name = channel.app_data = ""

    async def set_var(self, channel: FakeChannel, name: str, value: str) -> None:
        """Set a variable: ``ChannelVarset`` (variable, value before type, as captured)."""
        channel.variables[name] = value
        lead: dict[str, object] = {"variable": name, "value": value}
        await self.channel_event("ChannelVarset", channel, lead=lead)

    async def dialplan_step(self, channel: FakeChannel, app_name: str, app_data: str) -> None:
        """The dialplan runs ``app_name(app_data)`` at the channel's (new) location."""
        channel.app_name, channel.app_data = app_name, app_data
        body: dict[str, object] = {"dialplan_app": app_name, "dialplan_app_data": app_data}
        await self.channel_event("ChannelDialplan", channel, body=body)

    async def set_state(self, channel: FakeChannel, state: str) -> None:
        """Change ``state`` and emit ChannelStateChange."""
        channel.state = state
        await self.channel_event("ChannelStateChange", channel)

    async def dtmf(self, channel: FakeChannel, digit: str, duration_ms: int) -> None:
        """A DTMF digit ended on the channel."""
        body: dict[str, object] = {"digit": digit, "duration_ms": duration_ms}
        await self.channel_event("ChannelDtmfReceived", channel, body=body)

    # -- hangups ----------------------------------------------------------------------------------

    async def hangup_by_app(self, channel: FakeChannel, cause: int) -> None:
        """``DELETE /channels/{id}``: soft hangup request 32, StasisEnd, then destruction.

        pjsip_flow (parked channel): HangupRequest{32,soft}, StasisEnd, nothing more for the app.
        guard_subscribe_all (ringing origination): HangupRequest, Dial NOANSWER, Destroyed{21,403}.
        """
        lead: dict[str, object] = {"cause": SOFT_HANGUP_EXPLICIT, "soft": True}
        await self.channel_event("ChannelHangupRequest", channel, lead=lead)
        await self._end_dial(channel)
        await self.leave_stasis(channel)
        await self.destroy(channel, cause)

    async def remote_hangup(self, channel: FakeChannel, cause: int, tech_cause: int | None) -> None:
        """The far end hangs up (a caller's CANCEL while parked: cause 127, tech_cause 487).

        Parked: HangupRequest then StasisEnd, no ChannelDestroyed for the app (pjsip_flow).
        In a bridge: HangupRequest, ChannelLeftBridge, HangupRequest{soft}, ChannelDestroyed, and
        the other leg of a two-party Dial() bridge is hung up as well (dtmf_subscribe_all).
        """
        lead: dict[str, object] = {"cause": cause}
        if tech_cause is not None:
            lead["tech_cause"] = tech_cause
        await self.channel_event("ChannelHangupRequest", channel, lead=lead)
        if channel.stasis_app is not None:
            await self.leave_stasis(channel)
            await self.destroy(channel, cause)
            return
        await self._end_dial(channel)
        other = await self.leave_bridge(channel)
        await self.channel_event("ChannelHangupRequest", channel, lead={"cause": cause, "soft": True})
        await self.destroy(channel, cause)
        if other is not None:  # Dial() hangs up the other leg: it leaves the bridge, is destroyed
            await self.destroy(other, cause)

    async def destroy(self, channel: FakeChannel, cause: int) -> None:
        """ChannelDestroyed to whoever still listens; subscriptions die with the channel."""
        if channel.bridge_id is not None:
            await self.leave_bridge(channel)
        channel.hangup_cause = cause
        body: dict[str, object] = {"cause": cause, "cause_txt": CAUSE_TEXT.get(cause, "Unknown")}
        sip_status = SIP_STATUS_FOR_CAUSE.get(cause)
        if channel.name.startswith("PJSIP/") and channel.state != "Up" and sip_status is not None:
            body["tech_cause"] = sip_status
        channel.app_name = channel.app_data = ""
        await self.channel_event("ChannelDestroyed", channel, body=body)
        channel.destroyed = True
        channel.subscribers.clear()

    # -- dialling and bridges ---------------------------------------------------------------------

    async def dial(
        self, caller: FakeChannel | None, dialstring: str, fields: dict[str, object]
    ) -> FakeChannel:
        """``Dial()`` (caller given) or an origination straight to a trunk (caller None).

        ChannelCreated(peer), ChannelDialplan(peer: AppDial / AppDial2 "(Outgoing Line)"),
        Dial{"", dialstring}, ChannelStateChange(peer Ringing), Dial{RINGING}
        (guard_subscribe_all.jsonl, dtmf_subscribe_all.jsonl).
        """
        defaults: dict[str, object] = {
            "name": f"PJSIP/carrier-{next(self._names):08x}",
            "state": "Down",
            "context": "from-carrier",
            "protocol_id": str(uuid.uuid4()),
        }
        peer = await self.create_channel({**defaults, **fields})
        peer.dialed_by = caller.id if caller is not None else ""
        peer.dialstring = dialstring
        await self.dialplan_step(peer, "AppDial" if caller else "AppDial2", "(Outgoing Line)")
        await self._dial_event(peer, "")
        await self.set_state(peer, "Ringing")
        await self._dial_event(peer, "RINGING")
        return peer

    async def answer_dial(self, peer: FakeChannel) -> None:
        """The dialled party answers: StateChange(peer Up), Dial ANSWER, StateChange(caller Up)."""
        await self.set_state(peer, "Up")
        await self._dial_event(peer, "ANSWER")
        caller = self.world.live_channel(peer.dialed_by or "")
        if caller is not None and caller.state != "Up":
            await self.set_state(caller, "Up")

    async def _dial_event(self, peer: FakeChannel, status: str) -> None:
        caller = self.world.live_channel(peer.dialed_by or "")
        dialstring = peer.dialstring if caller is None or status == "" else ""
        body: dict[str, object] = {"dialstatus": status, "forward": "", "dialstring": dialstring}
        involved = [peer]
        if caller is not None:
            body["caller"] = caller.snapshot()
            involved.insert(0, caller)
        body["peer"] = peer.snapshot()
        await self.world.emit("Dial", body, channels=involved)

    async def _end_dial(self, peer: FakeChannel) -> None:
        if peer.dialed_by is not None and peer.state != "Up":
            await self._dial_event(peer, "NOANSWER")
        peer.dialed_by = None

    async def bridge(self, channels: Sequence[FakeChannel]) -> FakeBridge:
        """A ``Dial()`` bridge: BridgeCreated, then ChannelEnteredBridge per channel."""
        bridge = FakeBridge(id=str(uuid.uuid4()))
        self.world.bridges[bridge.id] = bridge
        await self.world.emit("BridgeCreated", {"bridge": bridge.snapshot()}, bridge=bridge)
        for channel in channels:
            bridge.channels.append(channel.id)
            channel.bridge_id = bridge.id
            body = {"bridge": bridge.snapshot(), "channel": channel.snapshot()}
            await self.world.emit("ChannelEnteredBridge", body, channels=[channel], bridge=bridge)
        return bridge

    async def leave_bridge(self, channel: FakeChannel) -> FakeChannel | None:
        """ChannelLeftBridge; an emptied bridge is destroyed. Returns a lone remaining leg."""
        bridge = self.world.bridges.get(channel.bridge_id or "")
        channel.bridge_id = None
        if bridge is None:
            return None
        bridge.channels.remove(channel.id)
        body = {"bridge": bridge.snapshot(), "channel": channel.snapshot()}
        await self.world.emit("ChannelLeftBridge", body, channels=[channel], bridge=bridge)
        if not bridge.channels:
            bridge.destroyed = True
            await self.world.emit("BridgeDestroyed", {"bridge": bridge.snapshot()}, bridge=bridge)
            return None
        if len(bridge.channels) == 1:
            return self.world.live_channel(bridge.channels[0])
        return None
