"""The Stasis application's lean StasisStart: the same id and arguments as the full parser on
every captured frame, the snapshot read when asked, and a malformed snapshot no longer costs the
call its verdict."""

from __future__ import annotations

import json

import pytest
from ari_captures import Frame, all_frames
from callshield.ari.events import StasisStart, parse_event
from callshield.ari.gate_stream import GateStart, GateStream, gate_start
from callshield.errors import PeerProtocolError
from callshield.store.base import ShieldStore
from fake_ari import FakeAri
from test_gate_app import APP, CLEAN, client_for, decided, running

STARTS = [f for f in all_frames() if f.type == "StasisStart"]


def test_the_captures_hold_stasis_starts() -> None:
    assert len(STARTS) >= 5


@pytest.mark.parametrize("frame", STARTS, ids=lambda f: f.file)
def test_every_captured_start_reads_as_the_full_parser_reads_it(frame: Frame) -> None:
    full = parse_event(frame.raw)
    lean = gate_start(frame.data)
    assert isinstance(full, StasisStart) and isinstance(lean, GateStart)
    assert (lean.application, lean.timestamp, lean.asterisk_id) == (
        full.application,
        full.timestamp,
        full.asterisk_id,
    )
    assert (lean.channel_id, lean.args) == (full.channel.id, full.args)
    assert lean.channel() == full.channel
    assert "args" not in repr(lean) and "snapshot" not in repr(lean)  # may carry the number


def start(**changes: object) -> dict[str, object]:
    """A captured StasisStart, decoded, with ``changes`` (None removes a key)."""
    data = dict(STARTS[0].data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def channel_with(**changes: object) -> dict[str, object]:
    channel = start()["channel"]
    assert isinstance(channel, dict)
    return {**channel, **changes}


@pytest.mark.parametrize(
    "data",
    [
        start(channel=None),
        start(channel=["1795849090.0"]),
        start(channel=channel_with(id=17958)),
        start(args=None),
        start(args="gate,13900139000"),
        start(args=["gate", 13900139000]),
        start(application=None),
        start(timestamp=7),
        start(asterisk_id=["02:fc"]),
    ],
)
def test_a_start_without_what_a_verdict_needs_goes_to_the_full_parser(data: dict[str, object]) -> None:
    assert gate_start(data) is None
    with pytest.raises(PeerProtocolError):
        parse_event(json.dumps(data))  # which names the field and skips the frame


def test_a_malformed_snapshot_is_reported_when_asked_for() -> None:
    lean = gate_start(start(channel=channel_with(language=None, state=3)))
    assert isinstance(lean, GateStart)
    with pytest.raises(PeerProtocolError, match=r"StasisStart\.channel\.(language|state)"):
        lean.channel()


async def test_the_stream_reads_starts_lean_and_other_types_in_full(fake_ari: FakeAri) -> None:
    client = client_for(fake_ari)
    stream = client.events([APP], kind=GateStream)
    async with client, stream:
        await fake_ari.send_raw(json.dumps(start(application=APP)), APP)
        await fake_ari.send_raw('{"type": "StasisStart", "application": "callshield"}', APP)  # skipped
        await fake_ari.send_raw(json.dumps({**start(application=APP), "type": "StasisEnd"}), APP)
        first, second = await anext(stream), await anext(stream)
    assert isinstance(first, GateStart) and type(second).__name__ == "StasisEnd"
    assert stream.malformed == 1


async def test_a_call_whose_snapshot_is_malformed_still_gets_its_verdict(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the full parser skipped such a StasisStart and the call stayed parked, undecided."""
    async with running(fake_ari, store):
        channel = await fake_ari.create_channel(exten=CLEAN, context="agents")
        whole = channel.snapshot
        monkeypatch.setattr(channel, "snapshot", lambda: {**whole(), "language": None})
        await fake_ari.pbx.stasis_start(APP, ["gate", CLEAN], channel)
        await decided(channel)
    assert channel.continued is not None and channel.continued.label == "allow-clean"
