"""The guard's stream sharing the guard's legs: an ANSWER of a known leg and the end of any other
channel are dropped unparsed, only when the id reads exactly (:func:`peer_of`, :func:`gone_of`).
Checked against the decoder on every captured frame, re-serialised ones, and frames built to
mislead a byte test (duplicate keys, nested keys of the same name, escapes, other layouts)."""

from __future__ import annotations

import json
import random

import pytest
from ari_captures import Frame, all_frames, nth
from callshield.ari.guard_stream import ChannelGone, DialSeen, GuardStream, gone_of, peer_of
from fake_ari import FakeAri
from fake_ari_guard import APP, client_for
from test_guard_stream import dial_frame, escaped, guard_stream, shuffled, start_dial, variants

CAPTURED = all_frames()
DIALS = [f for f in CAPTURED if f.type == "Dial"]
DESTROYED = [f for f in CAPTURED if f.type == "ChannelDestroyed"]
COMPACT = (",", ":")


def true_peer(text: str) -> object:
    """The peer id as the decoder reads it (the last of duplicate keys)."""
    return json.loads(text)["peer"]["id"]


@pytest.mark.parametrize("frame", DIALS, ids=lambda f: f.file)
def test_asterisks_dials_read_the_peer_at_once(frame: Frame) -> None:
    assert peer_of(frame.raw) == true_peer(frame.raw)


@pytest.mark.parametrize("seed", range(5))
def test_reserialised_dials_read_the_peer_exactly_or_not_at_all(seed: int) -> None:
    read = 0
    for frame in DIALS:
        for name, text in variants(frame, seed):
            peer = peer_of(text)
            assert peer is None or peer == true_peer(text), (name, text)
            read += peer is not None
    assert read >= len(DIALS)  # the captured layout, at least, as "python-default" keeps it


def peer_text(start: dict[str, object], replace: str, by: str) -> str:
    """``start`` compact with its one occurrence of ``replace`` written as ``by``."""
    text = json.dumps(start, separators=COMPACT)
    assert text.count(replace) == 1
    return text.replace(replace, by)


def misleading_peers() -> list[str]:
    """Dials whose real peer id is not the first id written after a ``"peer"``."""
    start = start_dial()
    peer = dict(start["peer"])  # type: ignore[call-overload]
    caller = dict(start["caller"])  # type: ignore[call-overload]
    later = {**start, "forwarded": {**peer, "id": "9.9"}}
    return [
        json.dumps({**start, "peer": {**peer, "extra": {"id": "1.1"}}}, separators=COMPACT),
        json.dumps({**start, "peer": {"name": "x", **peer}}, separators=COMPACT),  # id not first
        json.dumps({**start, "caller": {**caller, "channelvars": {"peer": "1.1"}}}, separators=COMPACT),
        json.dumps({**start, "x": {"peer": {"id": "1.1"}}}, separators=COMPACT),
        json.dumps(later, separators=COMPACT),  # a channel written after the peer
        escaped(json.dumps({**start, "x": {"peer": {"id": "1.1"}}}, separators=COMPACT), "e"),
        json.dumps({**start, "peer": {**peer, "id": 'a"b'}}, separators=COMPACT),
    ]


@pytest.mark.parametrize("text", misleading_peers())
def test_a_misleading_dial_never_reads_a_wrong_peer(text: str) -> None:
    assert peer_of(text) in (None, true_peer(text))
    assert peer_of(text) != "1.1"


def test_the_first_of_duplicate_ids_is_never_taken() -> None:
    start = start_dial()
    real = str(start["peer"]["id"])  # type: ignore[index]
    text = peer_text(start, f'"peer":{{"id":"{real}"', f'"peer":{{"id":"1.1","id":"{real}"')
    assert true_peer(text) == real and peer_of(text) is None


def destroyed_text(extra: dict[str, object], *, channel: dict[str, object] | None = None) -> str:
    destroyed = json.loads(DESTROYED[0].raw)
    merged = {**destroyed["channel"], **(channel or {})}
    return json.dumps({**destroyed, **extra, "channel": merged}, separators=COMPACT)


@pytest.mark.parametrize(
    "text",
    [
        destroyed_text({}, channel={"channelvars": {"application": "x"}}),
        destroyed_text({}, channel={"channelvars": {"type": "ChannelDestroyed"}}),
        destroyed_text({"asterisk_id": 7}),
        destroyed_text({"timestamp": {"t": "x"}}),
        destroyed_text({}, channel={"id": 12}),
        destroyed_text({}).replace('"id":', '"i\\u0064":', 1),
    ],
)
def test_a_destroyed_frame_with_doubtful_keys_is_decoded(text: str) -> None:
    assert gone_of(text) is None


def test_every_captured_end_reads_in_any_key_order() -> None:
    rng = random.Random(3)
    for frame in DESTROYED:
        text = json.dumps(shuffled(frame.data, rng), separators=COMPACT)
        gone = gone_of(text)
        assert gone is not None and gone.channel_id == frame.data["channel"]["id"]  # type: ignore[index]


async def test_a_stream_sharing_legs_drops_answers_of_known_legs_and_ends_of_other_channels(
    fake_ari: FakeAri,
) -> None:
    client = client_for(fake_ari)
    stream = guard_stream(client)
    assert isinstance(stream, GuardStream)
    stream.legs = {"1795849090.1"}
    seen: list[object] = []
    ended = json.loads(nth("dtmf_subscribe_all.jsonl", "ChannelDestroyed", 0).raw)
    async with client, stream:
        for frame in (
            dial_frame("ANSWER", "1795849090.1"),  # known: dropped
            dial_frame("ANSWER", "1795849090.9"),  # not known: read
            dial_frame("", "1795849090.1"),  # a start is always read
            json.dumps({**ended, "channel": {**ended["channel"], "id": "1795849090.0"}}, separators=COMPACT),
            json.dumps({**ended, "channel": {**ended["channel"], "id": "1795849090.1"}}, separators=COMPACT),
        ):
            await fake_ari.send_raw(frame, APP)
        async for event in stream:
            seen.append(event)
            if isinstance(event, ChannelGone):
                break
    assert [(e.peer_id, e.dialstatus) for e in seen if isinstance(e, DialSeen)] == [
        ("1795849090.9", "ANSWER"),
        ("1795849090.1", ""),
    ]
    assert [e.channel_id for e in seen if isinstance(e, ChannelGone)] == ["1795849090.1"]
    assert stream.known_dropped == 2 and stream.malformed == 0
