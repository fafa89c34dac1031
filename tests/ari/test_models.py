"""ari/models.py against REST answers a real Asterisk 22 gave (``captures/``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from ari_captures import all_frames, rest_responses
from callshield.ari.jsonfields import as_object
from callshield.ari.models import (
    _checked_channel,
    _well_formed_channel,
    parse_application,
    parse_ari_time,
    parse_channel,
    parse_playback,
)
from callshield.errors import PeerProtocolError


def test_channel_from_get_channel() -> None:
    (answer,) = rest_responses("local_flow_t8_peer.jsonl", "GET", "/channels/1795847919.19")
    channel = parse_channel(as_object(answer, "Channel"))
    assert channel.id == "1795847919.19"
    assert channel.name == "Local/5556666@agents-local-00000009;2"
    assert channel.caller.number == "1001" and channel.connected.name == "Agent One"
    assert (channel.dialplan.context, channel.dialplan.priority) == ("agents-local", 2)
    assert channel.dialplan.app_data == "shield,5556666"
    assert "5556666" not in repr(channel)


def test_channels_from_list() -> None:
    (answer,) = rest_responses("local_flow_t7.jsonl", "GET", "/channels")
    assert isinstance(answer, list)
    channels = [parse_channel(as_object(item, "Channel")) for item in answer]
    assert {c.id for c in channels} >= {"1795847916.14", "1795847916.15"}


def test_application_with_a_parked_channel() -> None:
    (answer,) = rest_responses("local_flow_t8_reconnect.jsonl", "GET", "/applications/shield")
    application = parse_application(as_object(answer, "Application"))
    assert application.name == "shield"
    assert application.channel_ids == ("1795847919.19",)
    assert application.events_allowed == () and application.events_disallowed == ()


def test_application_event_filters_are_type_names() -> None:
    answer = {
        "name": "guard",
        "channel_ids": [],
        "bridge_ids": [],
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": [{"type": "Dial"}, {"type": "ChannelDtmfReceived"}],
        "events_disallowed": [],
    }
    assert parse_application(answer).events_allowed == ("Dial", "ChannelDtmfReceived")
    with pytest.raises(PeerProtocolError, match="events_allowed must be a list of objects"):
        parse_application({**answer, "events_allowed": ["Dial"]})


def test_playback() -> None:
    (answer,) = rest_responses("pjsip_flow.jsonl", "POST", "/channels/1795847947.30/play")
    playback = parse_playback(as_object(answer, "Playback"))
    assert (playback.media_uri, playback.state, playback.language) == ("sound:beep", "queued", "en")
    assert playback.target_uri == "channel:1795847947.30"


def test_ari_time() -> None:
    assert parse_ari_time("2026-11-28T06:38:51.793+0000") == datetime(
        2026, 11, 28, 6, 38, 51, 793000, tzinfo=UTC
    )
    with pytest.raises(PeerProtocolError):
        parse_ari_time("yesterday")


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T06:38:51.793+0000",
        "2026-11-28T06:38:51.7-0600",
        "2026-11-28T06:38:51.793123+05:30",
        "2026-02-29T06:38:51.793+0000",  # no such day
        "2026-13-28T06:38:51.793+0000",
        "2026-11-28T24:38:51.793+0000",
        "2026-11-28T06:38:51+0000",  # no fraction
        "2026-11-28T06:38:51.7931234+0000",
        "2026-11-28 06:38:51.793+0000",
        "2026-11-28T06:38:51.793",
        "2026-11-28T06:38:51.793Z",
        "2026-11-28",
        "\u0662026-11-28T06:38:51.793+0000",  # a digit that is not ASCII
        "",
    ],
)
def test_ari_time_reads_what_strptime_reads(text: str) -> None:
    try:
        expected: datetime | None = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        expected = None
    if text.endswith("Z") or not text.isascii():
        expected = None  # strptime takes a Z and digits of any script too; Asterisk writes neither
    if expected is None:
        with pytest.raises(PeerProtocolError):
            parse_ari_time(text)
    else:
        assert parse_ari_time(text) == expected


def _captured_channels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for frame in all_frames():
        event = json.loads(frame.raw)
        found += [v for k, v in event.items() if k in ("channel", "peer", "caller") and isinstance(v, dict)]
    return found


def test_the_one_go_path_reads_every_captured_channel_as_the_checked_path_does() -> None:
    channels = _captured_channels()
    assert len(channels) > 100
    for obj in channels:
        fast = _well_formed_channel(obj)
        assert fast is not None
        assert fast == _checked_channel(obj, "Channel") == parse_channel(obj)


class Text(str):
    """A string subclass: accepted (``isinstance``), and read the same by both paths."""


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        (lambda o: o.pop("language"), False),
        (lambda o: o.update(caller=["Agent", "1001"]), False),
        (lambda o: o.update(caller="1001"), False),
        (lambda o: o["dialplan"].update(priority=True), False),
        (lambda o: o["dialplan"].update(priority=2.0), False),
        (lambda o: o["connected"].update(number=1001), False),
        (lambda o: o.update(name=Text("PJSIP/agent1-00000001")), True),
    ],
    ids=["missing", "list", "text", "bool priority", "float priority", "int number", "str subclass"],
)
def test_anything_unusual_gets_the_checked_paths_answer(
    change: Callable[[dict[str, Any]], object], accepted: bool
) -> None:
    obj = json.loads(json.dumps(_captured_channels()[0]))
    change(obj)
    if accepted:
        assert parse_channel(obj) == _checked_channel(obj, "Channel")
    else:
        assert _well_formed_channel(obj) is None
        with pytest.raises(PeerProtocolError):
            parse_channel(obj)
