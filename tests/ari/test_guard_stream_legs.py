"""The guard's stream sharing the guard's ringing legs: the ``Dial`` that ends a known leg (ANSWER
or a final status) ends its entry and is dropped unparsed, only when the peer's id reads exactly
(:func:`peer_of`). Checked against the decoder on every captured frame, re-serialised ones, and
frames built to mislead a byte test (duplicate keys, nested keys of the same name, escapes,
other layouts)."""

from __future__ import annotations

import json
import random

import aiohttp
import pytest
from ari_captures import Frame, all_frames
from callshield.ari.guard_stream import DIAL_ENDS, DialSeen, GuardStream, peer_of
from fake_ari import FakeAri
from fake_ari_guard import APP, client_for
from test_guard_stream import dial_frame, escaped, guard_stream, random_vars, start_dial, variants
from yarl import URL

CAPTURED = all_frames()
DIALS = [f for f in CAPTURED if f.type == "Dial"]
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


async def test_a_stream_sharing_legs_ends_known_legs_with_their_dial(fake_ari: FakeAri) -> None:
    client = client_for(fake_ari)
    stream = guard_stream(client)
    assert isinstance(stream, GuardStream)
    stream.legs = {"1795849090.1": None, "1795849090.3": None, "1795849090.5": None}
    seen: list[DialSeen] = []
    async with client, stream:
        for frame in (
            dial_frame("ANSWER", "1795849090.1"),  # known: its entry ends, dropped
            dial_frame("ANSWER", "1795849090.9"),  # not known: read (a leg answered unseen)
            dial_frame("NOANSWER", "1795849090.3"),  # known: its entry ends, dropped
            dial_frame("CANCEL", "1795849090.7"),  # not known, over: nothing to stop, dropped
            dial_frame("RINGING", "1795849090.5"),  # progress: dropped, the entry stays
            dial_frame("", "1795849090.1"),  # a start is always read
        ):
            await fake_ari.send_raw(frame, APP)
        async for event in stream:
            assert isinstance(event, DialSeen)
            seen.append(event)
            if event.dialstatus == "":
                break
    assert [(e.peer_id, e.dialstatus) for e in seen] == [("1795849090.9", "ANSWER"), ("1795849090.1", "")]
    assert stream.legs == {"1795849090.5": None}
    assert stream.known_dropped == 2 and stream.progress_dropped == 2 and stream.malformed == 0


ENDS = [f for f in DIALS if f.data["dialstatus"] in DIAL_ENDS]


def with_random_vars(frame: Frame, rng: random.Random) -> str:
    data = json.loads(frame.raw)
    for key in ("caller", "peer"):
        if key in data:
            data[key] = {**data[key], "channelvars": random_vars(rng)}
    return json.dumps(data, separators=COMPACT)


async def test_the_end_of_a_known_leg_ends_its_entry_whatever_its_channels_hold() -> None:
    rng = random.Random(7)
    assert {f.data["dialstatus"] for f in ENDS} >= {"ANSWER", "NOANSWER"}
    async with aiohttp.ClientSession() as session:
        for frame in ENDS * 20:
            text = with_random_vars(frame, rng)
            peer = true_peer(text)
            stream = GuardStream(
                session, URL("ws://127.0.0.1:1/ari/events"), (APP,), heartbeat=None, connect_timeout=1.0
            )
            stream.legs = {"1.1": None, str(peer): None}
            assert stream._parse(text) is None, text  # known: dropped, its entry ended
            assert stream.legs == {"1.1": None}
            unknown = stream._parse(text)  # not known any more
            if frame.data["dialstatus"] == "ANSWER":
                assert isinstance(unknown, DialSeen) and unknown.peer_id == peer  # answered unseen: read
            else:
                assert unknown is None  # over, unknown: nothing to stop
            assert stream.legs == {"1.1": None}
