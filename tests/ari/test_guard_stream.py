"""The guard's lean reading of its event stream, checked against the full parser on every captured
frame, on the same frames re-serialised (keys reordered, spaced, escaped), and on frames built to
mislead a byte test (nested keys of the same name, escaped keys, duplicates)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import aiohttp
import pytest
from ari_captures import Frame, all_frames, frames, nth
from callshield.ari import guard as guard_module
from callshield.ari.client import AriClient
from callshield.ari.events import Dial, parse_event
from callshield.ari.guard import GUARD_EVENTS, GateLedger, seen_of
from callshield.ari.guard_stream import (
    DIAL_HEAD,
    KEPT_STATUSES,
    DialSeen,
    GuardStream,
    dial_progress,
    lean_event,
    leg_start,
)
from callshield.ari.websocket import EventStream
from callshield.store.base import ShieldStore
from fake_ari import FakeAri
from fake_ari_guard import APP, SHIELDED, SHIELDED_E164, audit_of, client_for, guarding, hangups, shield
from yarl import URL

CAPTURED = all_frames()
DIALS = [f for f in CAPTURED if f.type == "Dial"]
STATUSES = {str(f.data["dialstatus"]) for f in DIALS}


def is_progress(frame: str) -> bool:
    """What dial_progress must answer, by the full parser."""
    event = parse_event(frame)
    return isinstance(event, Dial) and event.dialstatus not in KEPT_STATUSES


def test_the_captures_hold_starts_progress_and_ends() -> None:
    assert {"", "RINGING", "ANSWER", "NOANSWER"} <= STATUSES
    assert len(DIALS) >= 30


@pytest.mark.parametrize("frame", CAPTURED, ids=lambda f: f"{f.file}:{f.type}")
def test_every_captured_frame_reads_as_the_full_parser_reads_it(frame: Frame) -> None:
    full = parse_event(frame.raw)
    assert dial_progress(frame.raw) == is_progress(frame.raw)
    lean = lean_event(frame.raw)
    head = DIAL_HEAD.match(frame.raw)
    start = leg_start(frame.raw)
    if isinstance(full, Dial):
        assert lean == seen_of(full)
        assert head is not None and head.group(1) == full.dialstatus  # Asterisk's layout, always
        assert start == (lean if full.dialstatus == "" else None)  # every start read at once
    else:
        assert lean is None and head is None and start is None


def shuffled(value: object, rng: random.Random) -> object:
    """``value`` with the keys of every object in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def escaped(text: str, letters: str) -> str:
    """``text`` with each of ``letters`` written as a ``\\uXXXX`` escape (valid, equal JSON)."""
    return "".join(f"\\u{ord(c):04x}" if c in letters else c for c in text)


def variants(frame: Frame, seed: int) -> Iterator[tuple[str, str]]:
    """(name, text) of frames equal in JSON to ``frame``."""
    rng = random.Random(seed)
    data = frame.data
    yield "reordered", json.dumps(shuffled(data, rng), separators=(",", ":"))
    yield "spaced", json.dumps(shuffled(data, rng), indent=2)
    yield "python-default", json.dumps(data)
    yield "escaped-value", escaped(frame.raw, "P")  # "\u0050JSIP/carrier-00000001"
    yield "escaped-key", escaped(frame.raw, "d")  # "\u0064ialstatus", "\u0064ialplan", ...


@pytest.mark.parametrize("seed", range(5))
def test_reordered_spaced_and_escaped_dials_are_never_dropped_when_they_start_a_leg(seed: int) -> None:
    plain_drops = 0
    for frame in DIALS:
        for name, text in variants(frame, seed):
            assert json.loads(text) == frame.data, name
            if dial_progress(text):
                assert is_progress(text), (name, frame.raw)
                plain_drops += "\\" not in text
            elif "\\" not in text:
                assert not is_progress(text), (name, text)  # the fast path works on plain JSON
            assert lean_event(text) == lean_event(frame.raw), name
            head = DIAL_HEAD.match(text)
            assert head is None or head.group(1) == frame.data["dialstatus"], (name, text)
            start = leg_start(text)
            assert start is None or start == lean_event(frame.raw), (name, text)
    progress = sum(is_progress(f.raw) for f in DIALS)
    assert progress >= 9 and plain_drops >= 3 * progress


def start_dial() -> dict[str, object]:
    return json.loads(next(f.raw for f in DIALS if f.data["dialstatus"] == ""))  # type: ignore[no-any-return]


def with_peer_vars(event: dict[str, object], variables: dict[str, str]) -> dict[str, object]:
    peer = dict(event["peer"])  # type: ignore[call-overload]
    peer["channelvars"] = variables  # ari.conf channelvars: any names, any values
    return {**event, "peer": peer}


def misleading_starts() -> Iterator[str]:
    """Frames that start a leg, yet contain what a careless byte test takes for progress."""
    start = start_dial()
    for nested in (with_peer_vars(start, {"dialstatus": "RINGING"}), {**start, "x": {"dialstatus": "BUSY"}}):
        peer_first = {"peer": nested["peer"], **{k: v for k, v in nested.items() if k != "peer"}}
        yield json.dumps(nested, separators=(",", ":"))
        yield json.dumps(peer_first, separators=(",", ":"))  # the nested key comes first
    yield json.dumps(with_peer_vars(start, {"type": "Dial", "x": "1"}), separators=(",", ":"))
    yield json.dumps({**start, "dialstring": 'x"dialstatus":"BUSY'}, separators=(",", ":"))
    yield json.dumps(with_peer_vars(start, {'a"dialstatus': "BUSY"}), separators=(",", ":"))
    text = json.dumps(with_peer_vars(start, {"dialstatus": "RINGING"}), separators=(",", ":"))
    yield text.replace('"dialstatus":""', '"dial\\u0073tatus":""')  # the real key, escaped


@pytest.mark.parametrize("text", list(misleading_starts()))
async def test_a_dial_that_may_start_a_leg_is_always_kept(text: str) -> None:
    assert not dial_progress(text)
    async with aiohttp.ClientSession() as session:
        stream = GuardStream(
            session, URL("ws://127.0.0.1:1/ari/events"), (APP,), heartbeat=None, connect_timeout=1.0
        )
        stream.legs = {}
        event = stream._parse(text)  # the stream's own reading, as for a frame received
    assert event is not None and event == lean_event(text)
    assert stream.progress_dropped == 0


def test_other_types_with_dial_like_keys_are_kept() -> None:
    destroyed = json.loads(next(f.raw for f in CAPTURED if f.type == "ChannelDestroyed"))
    channel = {**destroyed["channel"], "channelvars": {"type": "Dial", "dialstatus": "RINGING"}}
    text = json.dumps({**destroyed, "channel": channel}, separators=(",", ":"))
    assert not dial_progress(text)
    assert lean_event(text) is None and DIAL_HEAD.match(text) is None


def test_frames_without_the_fields_the_guard_uses_go_to_the_full_parser() -> None:
    start = start_dial()
    for broken in (
        {k: v for k, v in start.items() if k != "peer"},
        {**start, "dialstatus": 3},
        {**start, "caller": {"name": "x"}},
        {**start, "dialstring": ["5557001@carrier"]},
        {**start, "application": None},
    ):
        assert lean_event(json.dumps(broken)) is None
    assert lean_event("[1, 2]") is None and lean_event("{not json") is None
    assert lean_event('{"type": ["Dial"], "x": {"type": "Dial"}}') is None


def test_the_dialled_fields_are_kept_out_of_repr() -> None:
    seen = lean_event(next(f.raw for f in frames("guard_subscribe_all.jsonl") if f.type == "Dial"))
    assert isinstance(seen, DialSeen) and seen.dialstring == "5559999@carrier"
    assert "5559999" not in repr(seen)


async def test_the_stream_drops_dial_progress_and_reads_the_rest_lean(fake_ari: FakeAri) -> None:
    client = client_for(fake_ari)
    seen: list[object] = []
    stream = guard_stream(client)
    async with client, stream:
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        await fake_ari.varset(agent.id, "DIALSTATUS", "")
        peer = await fake_ari.dial(agent.id, "5557001@carrier", exten="5557001")
        await fake_ari.answer_dial(peer.id)
        await fake_ari.remote_hangup(peer.id)
        await fake_ari.remote_hangup(agent.id)
        async for event in stream:
            seen.append(event)
            if isinstance(event, DialSeen) and event.dialstatus == "ANSWER":
                break
        assert isinstance(stream, GuardStream)
        dropped = stream.progress_dropped
    sent = [t for t in fake_ari.sent_types(APP) if t in GUARD_EVENTS]
    dials = [(e.peer_id, e.dialstatus, e.caller_id) for e in seen if isinstance(e, DialSeen)]
    assert dials == [(peer.id, "", agent.id), (peer.id, "ANSWER", agent.id)]
    assert dropped == sent.count("Dial") - 2 >= 1  # RINGING at least
    assert all(isinstance(e, DialSeen) for e in seen)


def guard_stream(client: AriClient) -> EventStream:
    """The stream as the guard opens it when it has no hooks."""
    return client.events([APP], subscribe_all=True, wanted=GUARD_EVENTS, only_wanted=True, kind=GuardStream)


def dial_frame(status: str, peer_id: str) -> str:
    """A captured Dial of an agent's call to the carrier, made ``status`` for leg ``peer_id`` (no
    dial string, as in Dial() progress: the number is the leg's extension)."""
    frame = json.loads(nth("dtmf_subscribe_all.jsonl", "Dial", 0).raw)
    frame["peer"]["id"] = peer_id
    frame["peer"]["dialplan"]["exten"] = SHIELDED
    return json.dumps({**frame, "dialstatus": status, "dialstring": ""}, separators=(",", ":"))


async def test_a_leg_first_seen_answered_is_still_checked_and_progress_alone_is_not(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    """While reconnecting the guard may miss a leg's start; a RINGING Dial (dropped unparsed)
    then leaves it to the channel listing, an ANSWER Dial is read and the leg checked."""
    await shield(store)
    async with guarding(fake_ari, store) as guard:
        assert all(dial_progress(dial_frame(s, "1795849090.7")) for s in ("RINGING", "NOANSWER"))
        answered = lean_event(dial_frame("ANSWER", "1795849090.9"))
        assert isinstance(answered, DialSeen) and not dial_progress(dial_frame("ANSWER", "x"))
        guard.dispatch(answered)
        records = await audit_of(store)
    assert [r.details()["channel"] for r in records] == ["1795849090.9"]
    assert hangups(fake_ari) == [("/channels/1795849090.9", "21")]


async def test_frames_the_guard_cannot_read_are_skipped_and_the_stream_goes_on(fake_ari: FakeAri) -> None:
    client = client_for(fake_ari)
    stream = guard_stream(client)
    seen: list[object] = []
    async with client, stream:
        await fake_ari.send_raw('{"type": ["Dial"], "x": {"type": "Dial"}}', APP)
        await fake_ari.send_raw(json.dumps({**start_dial(), "peer": "1.2"}), APP)
        await fake_ari.send_raw(dial_frame("ANSWER", "1795849090.9"), APP)
        async for event in stream:
            seen.append(event)
            break
    assert [e.peer_id for e in seen if isinstance(e, DialSeen)] == ["1795849090.9"]
    assert stream.malformed == 2


def test_a_frame_is_decoded_exactly_as_json_loads_decodes_it() -> None:
    raw = json.dumps(start_dial(), separators=(",", ":"))
    expected = lean_event(raw)
    assert isinstance(expected, DialSeen)
    for equal in (" " + raw, raw + " \n", "\n" + raw + "\t"):
        assert lean_event(equal) == expected
    for broken in (raw + "x", raw + "{}", "\ufeff" + raw, raw[:-1], "", " ", "[1]", '"Dial"', "1e999"):
        assert lean_event(broken) is None


WORDS = [
    "peer",
    "id",
    "name",
    "dialplan",
    "context",
    "exten",
    "caller",
    "asterisk_id",
    "application",
    "dialstring",
    "type",
    "Dial",
    "5557001",
    "PJSIP/carrier-00000009",
    "{",
    "}",
    ",",
    ":",
    "[",
    "]",
    " ",
]


def random_vars(rng: random.Random) -> dict[str, str]:
    """Channel variables (ari.conf ``channelvars``: any names, any values) made of the very words
    and punctuation the layout reading looks for."""

    def text() -> str:
        return "".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 6)))

    return {text() or "v": text() for _ in range(rng.randrange(1, 4))}


@pytest.mark.parametrize("seed", range(3))
def test_a_start_read_in_asterisks_layout_is_the_decoders_reading_or_none(seed: int) -> None:
    rng = random.Random(seed)
    starts = [f for f in DIALS if f.data["dialstatus"] == ""]
    read = 0
    for _ in range(400):
        data = json.loads(rng.choice(starts).raw)
        for key in ("caller", "peer"):
            if key in data and rng.random() < 0.7:
                data[key] = {**data[key], "channelvars": random_vars(rng)}  # last, as Asterisk writes it
        if rng.random() < 0.2:
            data["peer"]["dialplan"]["exten"] = rng.choice(WORDS)
        text = json.dumps(data, separators=(",", ":"))
        start = leg_start(text)
        assert start is None or start == lean_event(text), text
        read += start is not None
        if "\\" not in text:
            assert start is not None, text  # Asterisk's layout: always read at once
    assert read >= 300


async def test_the_legs_remembered_are_bounded_oldest_first(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the Dial that ends a leg be lost, the legs remembered still stay bounded."""
    monkeypatch.setattr(guard_module, "MAX_LEGS", 3)
    ledger = GateLedger()
    async with guarding(fake_ari, store, ledger=ledger) as guard:
        agent = json.loads(dial_frame("", "x"))["caller"]["id"]
        ledger.allowed(agent, SHIELDED_E164)  # each leg passed the gate: no store work, no hang-up
        for n in range(5):
            start = lean_event(dial_frame("", f"1795849090.{n + 1}"))
            assert isinstance(start, DialSeen)
            guard.dispatch(start)
        assert guard.legs == 3
        assert guard.judge.counts["gated"] == 5
        answered = lean_event(dial_frame("ANSWER", "1795849090.5"))  # the newest is still known
        assert isinstance(answered, DialSeen)
        guard.dispatch(answered)
        assert guard.legs == 2 and guard.judge.counts["gated"] == 5
