"""ari/events.py against every event frame a real Asterisk 22 sent (``captures/``)."""

from __future__ import annotations

import json
from operator import attrgetter

import pytest
from ari_captures import ARI_CAPTURES, frames, nth
from callshield.ari import events
from callshield.ari.events import (
    EVENT_TYPES,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Dial,
    StasisStart,
    UnknownEvent,
    parse_event,
)
from callshield.errors import PeerProtocolError

NUMBERS = ("5551234", "5550000", "5550005", "5559999", "5557001")


def test_captures_are_there() -> None:
    assert len(ARI_CAPTURES) == 9
    assert sum(len(frames(name)) for name in ARI_CAPTURES) > 400


@pytest.mark.parametrize("name", ARI_CAPTURES)
def test_every_captured_frame_parses(name: str) -> None:
    for frame in frames(name):
        event = parse_event(frame.raw)
        assert event.application == frame.data["application"]
        assert event.timestamp == frame.data["timestamp"]
        assert event.asterisk_id == "02:fc:00:00:00:01"
        if frame.type in EVENT_TYPES:
            assert type(event).__name__ == frame.type
        else:
            assert isinstance(event, UnknownEvent)
            assert event.type == frame.type


@pytest.mark.parametrize("name", ARI_CAPTURES)
def test_wanted_limits_parsing_to_the_types_asked_for(name: str) -> None:
    for frame in frames(name):
        event = parse_event(frame.raw, wanted={"StasisStart"})
        assert isinstance(event, StasisStart if frame.type == "StasisStart" else UnknownEvent)


CHECKS = [
    # file, event type, n-th of that type, attribute path, expected value
    ("pjsip_flow.jsonl", "StasisStart", 0, "args", ("5551234",)),
    ("pjsip_flow.jsonl", "StasisStart", 0, "application", "shield"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "timestamp", "2026-11-28T06:38:51.793+0000"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.id", "1795847931.26"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.name", "PJSIP/agent1-00000000"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.state", "Ring"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.protocol_id", "1-26556@127.0.0.1"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.caller.number", "agent1"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.caller.name", "Agent"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.connected.number", ""),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.dialplan.context", "agents"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.dialplan.exten", "5551234"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.dialplan.priority", 2),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.dialplan.app_name", "Stasis"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.dialplan.app_data", "shield,5551234"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.accountcode", ""),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.language", "en"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "channel.creationtime", "2026-11-28T06:38:51.793+0000"),
    ("pjsip_flow.jsonl", "StasisStart", 0, "replace_channel", None),
    ("pjsip_flow.jsonl", "ChannelVarset", 0, "variable", "SHIELD_VERDICT"),
    ("pjsip_flow.jsonl", "ChannelVarset", 0, "value", "allow"),
    ("pjsip_flow.jsonl", "StasisEnd", 0, "channel.id", "1795847931.26"),
    ("pjsip_flow.jsonl", "ChannelDialplan", 0, "dialplan_app", "NoOp"),
    ("pjsip_flow.jsonl", "ChannelDialplan", 0, "channel.dialplan.priority", 3),
    ("pjsip_flow.jsonl", "Dial", 0, "dialstring", "5551234@carrier"),
    ("pjsip_flow.jsonl", "Dial", 0, "dialstatus", ""),
    ("pjsip_flow.jsonl", "Dial", 0, "forward", ""),
    ("pjsip_flow.jsonl", "Dial", 0, "caller.id", "1795847939.28"),
    ("pjsip_flow.jsonl", "Dial", 0, "peer.id", "1795847939.29"),
    ("pjsip_flow.jsonl", "Dial", 0, "peer.caller.number", "5551234"),
    ("pjsip_flow.jsonl", "Dial", 1, "dialstatus", "RINGING"),
    ("pjsip_flow.jsonl", "Dial", 1, "dialstring", ""),
    ("pjsip_flow.jsonl", "ChannelDtmfReceived", 0, "digit", "5"),
    ("pjsip_flow.jsonl", "ChannelDtmfReceived", 0, "duration_ms", 160),
    ("pjsip_flow.jsonl", "ChannelDtmfReceived", 2, "digit", "1"),  # RFC 4733 duplicate
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 0, "cause", 16),
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 0, "soft", None),
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 1, "soft", True),
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 4, "cause", 32),  # the app's DELETE
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 4, "soft", True),
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 5, "cause", 127),  # the caller's CANCEL
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 5, "tech_cause", 487),
    ("pjsip_flow.jsonl", "ChannelHangupRequest", 5, "soft", None),
    ("pjsip_flow.jsonl", "ChannelDestroyed", 0, "cause", 16),
    ("pjsip_flow.jsonl", "ChannelDestroyed", 0, "cause_txt", "Normal Clearing"),
    ("pjsip_flow.jsonl", "ChannelDestroyed", 0, "tech_cause", None),
    ("guard_subscribe_all.jsonl", "ChannelCreated", 0, "channel.id", "1795848255.0"),
    ("guard_subscribe_all.jsonl", "ChannelCreated", 0, "channel.state", "Down"),
    ("guard_subscribe_all.jsonl", "Dial", 0, "caller", None),
    ("guard_subscribe_all.jsonl", "Dial", 0, "dialstring", "5559999@carrier"),
    ("guard_subscribe_all.jsonl", "Dial", 0, "peer.name", "PJSIP/carrier-00000000"),
    ("guard_subscribe_all.jsonl", "Dial", 2, "dialstatus", "NOANSWER"),
    ("guard_subscribe_all.jsonl", "ChannelStateChange", 0, "channel.state", "Ringing"),
    ("guard_subscribe_all.jsonl", "ChannelDestroyed", 0, "cause", 21),
    ("guard_subscribe_all.jsonl", "ChannelDestroyed", 0, "cause_txt", "Call Rejected"),
    ("guard_subscribe_all.jsonl", "ChannelDestroyed", 0, "tech_cause", 403),
    ("guard_subscribe_all.jsonl", "ChannelDestroyed", 0, "application", "callshield-guard"),
    ("dtmf_subscribe_all.jsonl", "BridgeCreated", 0, "bridge.id", "ad65728e-52b0-458f-9491-a2f9c774a95f"),
    ("dtmf_subscribe_all.jsonl", "BridgeCreated", 0, "bridge.channels", ()),
    ("dtmf_subscribe_all.jsonl", "BridgeCreated", 0, "bridge.bridge_class", "basic"),
    ("dtmf_subscribe_all.jsonl", "BridgeCreated", 0, "bridge.video_mode", "none"),
    ("dtmf_subscribe_all.jsonl", "ChannelEnteredBridge", 0, "bridge.channels", ("1795849090.1",)),
    (
        "dtmf_subscribe_all.jsonl",
        "ChannelEnteredBridge",
        1,
        "bridge.channels",
        ("1795849090.0", "1795849090.1"),
    ),
    ("dtmf_subscribe_all.jsonl", "ChannelEnteredBridge", 1, "channel.id", "1795849090.0"),
    ("dtmf_subscribe_all.jsonl", "ChannelDtmfReceived", 0, "digit", "*"),
    ("dtmf_subscribe_all.jsonl", "ChannelDtmfReceived", 1, "digit", "9"),
    ("dtmf_subscribe_all.jsonl", "ChannelDtmfReceived", 1, "channel.dialplan.context", "agents-nogate"),
    ("dtmf_subscribe_all.jsonl", "ChannelLeftBridge", 0, "bridge.channels", ("1795849090.1",)),
    ("dtmf_subscribe_all.jsonl", "ChannelLeftBridge", 0, "bridge.technology", "native_rtp"),
    ("dtmf_subscribe_all.jsonl", "BridgeDestroyed", 0, "bridge.channels", ()),
    ("dtmf_subscribe_all.jsonl", "DeviceStateChanged", 0, "type", "DeviceStateChanged"),
    ("local_flow.jsonl", "StasisStart", 1, "args", ("agentleg",)),
    ("local_flow.jsonl", "StasisStart", 1, "channel.name", "Local/5551234@agents-local-00000000;1"),
    ("local_flow.jsonl", "StasisStart", 1, "channel.protocol_id", ""),
    ("local_flow.jsonl", "PlaybackStarted", 0, "type", "PlaybackStarted"),
    ("local_flow.jsonl", "ChannelCallerId", 0, "type", "ChannelCallerId"),
    ("local_flow_t7.jsonl", "StasisStart", 0, "args", ()),
    ("local_flow_t8.jsonl", "StasisStart", 0, "channel.id", "1795847919.19"),
    ("local_flow_t9.jsonl", "ChannelEnteredBridge", 0, "bridge.bridge_class", "stasis"),
    ("local_flow_t9.jsonl", "ChannelEnteredBridge", 0, "bridge.creator", "Stasis"),
    ("local_flow_t9.jsonl", "ChannelEnteredBridge", 0, "bridge.name", "shieldbr"),
]


@pytest.mark.parametrize(("name", "event_type", "n", "attribute", "expected"), CHECKS)
def test_captured_field(name: str, event_type: str, n: int, attribute: str, expected: object) -> None:
    event = parse_event(nth(name, event_type, n).raw)
    assert attrgetter(attribute)(event) == expected


def test_dial_without_caller_has_only_the_peer() -> None:
    event = parse_event(nth("guard_subscribe_all.jsonl", "Dial").raw)
    assert isinstance(event, Dial)
    assert event.caller is None and event.forwarded is None


def _frame_without(path: tuple[str, ...]) -> str:
    data = nth("pjsip_flow.jsonl", "StasisStart").data
    node: dict[str, object] = data
    for key in path[:-1]:
        child = node[key]
        assert isinstance(child, dict)
        node = child
    del node[path[-1]]
    return json.dumps(data)


def _frame_with(path: tuple[str, ...], value: object) -> str:
    data = nth("pjsip_flow.jsonl", "StasisStart").data
    node: dict[str, object] = data
    for key in path[:-1]:
        child = node[key]
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = value
    return json.dumps(data)


MALFORMED = [
    ("not json", "not valid JSON"),
    ('{"type": "StasisStart"', "not valid JSON"),
    (b'{"type": "\xc3\x28"}', "not valid UTF-8 JSON"),
    ("[1, 2]", "ARI event frame must be a JSON object, got list"),
    ('{"application": "shield"}', "Message.type is required but missing"),
    ('{"type": 5}', "Message.type must be a string, got int"),
    ('{"type": "MissingParams", "params": ["app"]}', "missing parameters: app"),
    ('{"type": "StasisEnd", "timestamp": "x"}', "StasisEnd.application is required but missing"),
    (_frame_without(("channel",)), "StasisStart.channel is required but missing"),
    (_frame_without(("args",)), "StasisStart.args is required but missing"),
    (_frame_without(("channel", "dialplan", "priority")), "StasisStart.channel.dialplan.priority is"),
    (_frame_without(("channel", "caller", "number")), "StasisStart.channel.caller.number is"),
    (_frame_with(("channel", "dialplan", "exten"), 5551234), "dialplan.exten must be a string, got int"),
    (_frame_with(("channel", "dialplan", "priority"), True), "priority must be an integer, got bool"),
    (_frame_with(("channel", "dialplan", "priority"), "2"), "priority must be an integer, got str"),
    (_frame_with(("args",), ["5551234", 7]), "StasisStart.args must be a list of strings, got int"),
    (_frame_with(("args",), "5551234"), "StasisStart.args must be a list, got str"),
    (_frame_with(("channel",), ["5551234"]), "StasisStart.channel must be an object, got list"),
    (_frame_with(("asterisk_id",), 12), "StasisStart.asterisk_id must be a string, got int"),
]


@pytest.mark.parametrize(("frame", "message"), MALFORMED)
def test_malformed_frames_raise_peer_protocol_error(frame: str | bytes, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message.replace("(", r"\(")) as caught:
        parse_event(frame)
    for number in NUMBERS:
        assert number not in str(caught.value)


def test_optional_fields_may_be_absent() -> None:
    data = nth("pjsip_flow.jsonl", "ChannelHangupRequest", 5).data
    del data["cause"], data["tech_cause"], data["asterisk_id"]
    event = parse_event(json.dumps(data))
    assert isinstance(event, ChannelHangupRequest)
    assert (event.cause, event.soft, event.tech_cause, event.asterisk_id) == (None, None, None, None)


def test_global_channel_varset_has_no_channel() -> None:
    data = nth("pjsip_flow.jsonl", "ChannelVarset").data
    del data["channel"]
    event = parse_event(json.dumps(data))
    assert isinstance(event, events.ChannelVarset)
    assert event.channel is None


def test_application_replaced_is_typed() -> None:
    frame = '{"type":"ApplicationReplaced","timestamp":"t","application":"shield"}'
    assert isinstance(parse_event(frame), events.ApplicationReplaced)


@pytest.mark.parametrize(
    ("name", "event_type", "n"),
    [
        ("pjsip_flow.jsonl", "StasisStart", 0),
        ("pjsip_flow.jsonl", "Dial", 0),
        ("pjsip_flow.jsonl", "ChannelVarset", 20),
        ("pjsip_flow.jsonl", "ChannelDialplan", 2),
        ("local_flow.jsonl", "StasisStart", 0),
        ("dtmf_subscribe_all.jsonl", "ChannelEnteredBridge", 1),
    ],
)
def test_repr_hides_numbers(name: str, event_type: str, n: int) -> None:
    frame = nth(name, event_type, n)
    assert any(number in frame.raw for number in NUMBERS)
    event = parse_event(frame.raw)
    for number in NUMBERS:
        assert number not in repr(event)


def test_dtmf_repr_keeps_what_a_log_line_needs() -> None:
    event = parse_event(nth("pjsip_flow.jsonl", "ChannelDtmfReceived").raw)
    assert isinstance(event, ChannelDtmfReceived)
    assert "digit='5'" in repr(event) and "1795847939.28" in repr(event)


def test_bytes_frames_are_accepted() -> None:
    frame = nth("pjsip_flow.jsonl", "StasisEnd")
    assert isinstance(parse_event(frame.raw.encode()), events.StasisEnd)
