"""subscribeAll flows of the fake replay the captured ones (guard_subscribe_all, dtmf_subscribe_all)."""

from __future__ import annotations

import aiohttp
from ari_captures import frames
from fake_ari import FakeAri
from raw_ari import Sockets, call, events, quiet

GUARD = "callshield-guard"
# Event types the fake does not model (no behaviour of callshield depends on them).
UNMODELLED = {"ChannelVarset", "DeviceStateChanged", "ChannelCallerId", "ChannelConnectedLine"}


def _captured_types(name: str) -> list[str]:
    return [f.type for f in frames(name) if f.type not in UNMODELLED]


async def test_origination_straight_to_the_trunk(
    fake_ari: FakeAri, http: aiohttp.ClientSession, sockets: Sockets
) -> None:
    ws = await sockets.open(GUARD, subscribe_all=True)
    peer = await fake_ari.dial(None, "5559999@carrier", exten="s", caller_name="Dialer", caller_number="2000")
    reply = await call(http, fake_ari, "DELETE", f"/channels/{peer.id}", {"reason_code": "21"})
    assert reply == (204, None)
    expected = _captured_types("guard_subscribe_all.jsonl")
    got = await events(ws, len(expected))
    assert [e["type"] for e in got] == expected
    dials = [e for e in got if e["type"] == "Dial"]
    assert [d["dialstatus"] for d in dials] == ["", "RINGING", "NOANSWER"]
    assert all(d["dialstring"] == "5559999@carrier" and "caller" not in d for d in dials)
    destroyed = got[-1]
    assert (destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (21, "Call Rejected", 403)
    assert {e["application"] for e in got} == {GUARD}
    await quiet(ws)


async def test_ungated_call_bridged_to_the_carrier(
    fake_ari: FakeAri, http: aiohttp.ClientSession, sockets: Sockets
) -> None:
    ws = await sockets.open(GUARD, subscribe_all=True)
    agent = await fake_ari.create_channel(
        name="PJSIP/agent5-00000000",
        caller_name="Agent",
        caller_number="agent5",
        context="agents-nogate",
        exten="5557001",
    )
    await fake_ari.dialplan(agent.id, "Dial", "PJSIP/5557001@carrier,30")
    peer = await fake_ari.dial(agent.id, "5557001@carrier", exten="5557001", caller_number="5557001")
    await fake_ari.answer_dial(peer.id)
    bridge = await fake_ari.bridge(peer.id, agent.id)
    await fake_ari.send_dtmf(agent.id, "*")
    await fake_ari.send_dtmf(agent.id, "9")
    await fake_ari.remote_hangup(agent.id)

    expected = _captured_types("dtmf_subscribe_all.jsonl")
    del expected[expected.index("BridgeCreated") + 1]  # Asterisk re-announced AppDial there
    got = await events(ws, len(expected))
    assert [e["type"] for e in got] == expected
    dials = [e for e in got if e["type"] == "Dial"]
    assert [d["dialstring"] for d in dials] == ["5557001@carrier", "", ""]
    assert all(isinstance(d["caller"], dict) and d["caller"]["id"] == agent.id for d in dials)
    entered = [e["bridge"] for e in got if e["type"] == "ChannelEnteredBridge"]
    assert [b["channels"] for b in entered if isinstance(b, dict)] == [[peer.id], [peer.id, agent.id]]
    digits = [e["digit"] for e in got if e["type"] == "ChannelDtmfReceived"]
    assert digits == ["*", "9"]
    assert bridge.destroyed and agent.destroyed and peer.destroyed
    await quiet(ws)


async def test_apps_without_subscribe_all_see_none_of_it(
    fake_ari: FakeAri, http: aiohttp.ClientSession, sockets: Sockets
) -> None:
    ws = await sockets.open("shield")
    peer = await fake_ari.dial(None, "5559999@carrier")
    await fake_ari.answer_dial(peer.id)
    await fake_ari.send_dtmf(peer.id, "1")
    await fake_ari.remote_hangup(peer.id)
    await quiet(ws)
