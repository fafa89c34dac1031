"""REST operations of the fake ARI server, keyed by (resource, spec nickname).

Each handler gets a :class:`Call` whose parameters already passed the spec validation and
answers ``(status, json_payload)`` (payload None: empty body). Error texts are Asterisk 22's
(res/ari/resource_channels.c, resource_applications.c, and the captures). Operations of the spec
without a handler here answer 501 ``Method not implemented`` (Asterisk's text for that case), so
a test that needs one more operation fails loudly instead of passing on a stub.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fake_ari_pbx import Pbx
from fake_ari_spec import Operation
from fake_ari_world import Continued, FakeChannel, World, ari_time

Reply = tuple[int, object]
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")
_INVALID_STATES = ("Down", "Rsrved", "Ringing")
REASON_CAUSES = {
    "normal": 16, "busy": 17, "congestion": 34, "no_answer": 19, "timeout": 18, "rejected": 21,
    "unallocated": 1, "normal_unspecified": 31, "number_incomplete": 28, "codec_mismatch": 58,
    "interworking": 127, "failure": 38, "answered_elsewhere": 26,
}  # fmt: skip
"""Asterisk's convert_reason_to_hangup_code()."""


@dataclass
class Call:
    """One validated REST request."""

    pbx: Pbx
    operation: Operation
    path_vars: dict[str, str]
    params: dict[str, str]
    body: object
    known_contexts: set[str] | None = None
    playback_seconds: float = 0.05

    @property
    def world(self) -> World:
        """The fake PBX state."""
        return self.pbx.world


def error(status: int, message: str) -> Reply:
    """An ARI error answer: ``{"message": ...}``."""
    return status, {"message": message}


def _control(call: Call) -> FakeChannel | Reply:
    """Asterisk's find_control(): 404 if gone, 409 if not in a Stasis application."""
    channel = call.world.live_channel(call.path_vars["channelId"])
    if channel is None:
        return error(404, "Channel not found")
    if channel.stasis_app is None:
        return error(409, "Channel not in Stasis application")
    return channel


def _controllable(call: Call) -> FakeChannel | Reply:
    """find_control() then channel_state_invalid(): 412 for Down, Rsrved, Ringing."""
    found = _control(call)
    if isinstance(found, FakeChannel) and found.state in _INVALID_STATES:
        return error(412, "Channel in invalid state")
    return found


async def channels_list(call: Call) -> Reply:
    return 200, [c.snapshot() for c in call.world.channels.values() if not c.destroyed]


async def channels_get(call: Call) -> Reply:
    channel = call.world.live_channel(call.path_vars["channelId"])
    return (200, channel.snapshot()) if channel else error(404, "Channel not found")


async def channels_hangup(call: Call) -> Reply:
    channel = call.world.live_channel(call.path_vars["channelId"])
    if channel is None:
        return error(404, "Channel not found")
    reason, code = call.params.get("reason"), call.params.get("reason_code")
    if reason and code:
        return error(400, "The reason and reason_code can't both be specified")
    cause = 16
    if code:
        match = _LEADING_INT.match(code)
        if match is None:
            return error(400, "Invalid reason for hangup reason code provided")
        cause = int(match.group(1))
    elif reason:
        cause = REASON_CAUSES[reason]
    await call.pbx.hangup_by_app(channel, cause)
    return 204, None


def _resolve_continue(call: Call, channel: FakeChannel) -> Continued | Reply:
    context_arg = call.params.get("context", "")
    extension_arg = call.params.get("extension", "")
    if not context_arg:
        context, extension = channel.context, extension_arg or channel.exten
    else:
        context, extension = context_arg, extension_arg or "s"
    label = call.params.get("label", "")
    priority_arg = int(call.params.get("priority", "0"))
    if label:
        match = _LEADING_INT.match(label)
        if match is None:
            return Continued(context, extension, None, label)
        if int(match.group(1)) == 0:
            return error(400, "Requested priority is illegal")
        return Continued(context, extension, int(match.group(1)), label)
    if priority_arg:
        return Continued(context, extension, priority_arg)
    if not context_arg and not extension_arg:
        return Continued(context, extension, channel.priority + 1)
    return Continued(context, extension, 1)


async def channels_continue(call: Call) -> Reply:
    channel = _controllable(call)
    if not isinstance(channel, FakeChannel):
        return channel
    target = _resolve_continue(call, channel)
    if not isinstance(target, Continued):
        return target
    await call.pbx.continue_in_dialplan(channel, target)  # StasisEnd goes out before the 204
    if call.known_contexts is not None and target.context not in call.known_contexts:
        lead: dict[str, object] = {"cause": 16, "soft": True}
        await call.pbx.channel_event("ChannelHangupRequest", channel, lead=lead)
        await call.pbx.destroy(channel, 0)  # local_flow: continue to nosuchctx -> cause 0 Unknown
    return 204, None


async def channels_answer(call: Call) -> Reply:
    channel = _controllable(call)
    if not isinstance(channel, FakeChannel):
        return channel
    if channel.state != "Up":
        await call.pbx.set_state(channel, "Up")
    return 204, None


async def channels_play(call: Call) -> Reply:
    channel = _controllable(call)
    if not isinstance(channel, FakeChannel):
        return channel
    for name in ("offsetms", "skipms"):
        if int(call.params.get(name, "0")) < 0:
            return error(400, f"{name} cannot be negative")
    media = call.params["media"].split(",")
    playback: dict[str, object] = {
        "id": call.params.get("playbackId") or str(uuid.uuid4()),
        "media_uri": media[0],
        "target_uri": f"channel:{channel.id}",
        "language": call.params.get("lang") or channel.language,
        "state": "queued",
    }
    call.pbx.spawn(_play(call, channel, playback))
    return 201, playback


async def _play(call: Call, channel: FakeChannel, playback: dict[str, object]) -> None:
    await asyncio.sleep(0)  # the 201 goes out first, as captured
    for event_type, state, pause in (("PlaybackStarted", "playing", 0.0), ("PlaybackFinished", "done", 1.0)):
        await asyncio.sleep(pause * call.playback_seconds)
        body: dict[str, object] = {"playback": {**playback, "state": state}}
        await call.world.emit(event_type, body, channels=[channel])


async def channels_snoop(call: Call) -> Reply:
    """``POST /channels/{id}/snoop``: a ``Snoop/...`` channel that enters ``Stasis(app, appArgs)``;
    with ``whisper`` its media (a playback) is heard on the spied channel."""
    target = call.world.live_channel(call.path_vars["channelId"])
    if target is None:
        return error(404, "Channel not found")
    snoop = await call.pbx.create_channel(
        {"name": f"Snoop/{target.id}-{len(call.world.channels):08x}", "state": "Up", "context": "default"}
    )
    snoop.snooping = (target.id, call.params.get("spy", "none"), call.params.get("whisper", "none"))
    args = [a for a in call.params.get("appArgs", "").split(",") if a]
    call.pbx.spawn(call.pbx.stasis_start(call.params["app"], args, snoop))
    return 200, snoop.snapshot()


async def channels_get_var(call: Call) -> Reply:
    channel = call.world.live_channel(call.path_vars["channelId"])
    if channel is None:
        return error(404, "Provided channel was not found")
    name = call.params["variable"]
    functions = {"CALLERID(num)": channel.caller_number, "CALLERID(name)": channel.caller_name}
    if name in functions:
        return 200, {"value": functions[name]}
    if name.endswith(")"):
        return error(500, "Unable to read provided function")
    if name not in channel.variables:
        return error(404, "Provided variable was not found")
    return 200, {"value": channel.variables[name]}


async def channels_set_var(call: Call) -> Reply:
    channel = _control(call)
    if not isinstance(channel, FakeChannel):
        return channel
    value = call.params.get("value")
    if value is None:  # pbx_builtin_setvar_helper() with no value unsets, without an event
        channel.variables.pop(call.params["variable"], None)
    else:
        await call.pbx.set_var(channel, call.params["variable"], value)
    return 204, None


def _body_variables(body: object) -> dict[str, str] | Reply:
    raw = body.get("variables") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        return error(400, "Missing variables parameter")
    values: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            report = value.get("report_events", False)
            if isinstance(report, bool) and set(value) <= {"value", "report_events"}:
                values[name] = value["value"]
                continue
        if not isinstance(value, str):
            return error(400, "Only string values in the 'variables' object allowed")
        values[name] = value
    return values


async def channels_set_vars(call: Call) -> Reply:
    values = _body_variables(call.body)
    if not isinstance(values, dict):
        return values
    channel = _control(call)
    if not isinstance(channel, FakeChannel):
        return channel
    for name, value in values.items():
        await call.pbx.set_var(channel, name, value)
    return 204, None


async def asterisk_ping(call: Call) -> Reply:
    """``GET /asterisk/ping``: an ``AsteriskPing``."""
    return 200, {"asterisk_id": call.world.asterisk_id, "ping": "pong", "timestamp": ari_time()}


Handler = Callable[[Call], Awaitable[Reply]]

ASTERISK_HANDLERS: dict[tuple[str, str], Handler] = {("asterisk", "ping"): asterisk_ping}

CHANNEL_HANDLERS: dict[tuple[str, str], Handler] = {
    ("channels", "list"): channels_list,
    ("channels", "get"): channels_get,
    ("channels", "hangup"): channels_hangup,
    ("channels", "continueInDialplan"): channels_continue,
    ("channels", "answer"): channels_answer,
    ("channels", "play"): channels_play,
    ("channels", "snoopChannel"): channels_snoop,
    ("channels", "getChannelVar"): channels_get_var,
    ("channels", "setChannelVar"): channels_set_var,
    ("channels", "setChannelVars"): channels_set_vars,
}
