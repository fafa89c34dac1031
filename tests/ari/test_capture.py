"""Capture over ARI: the agent's keypad code on gated and dialer-bridged calls, the customer's
opt-out keypress; against the fake Asterisk, with a real store behind the refusal sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from callshield.ari.app import StasisApp
from callshield.ari.capture import KeypadCapture
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.connection import Backoff
from callshield.ari.optout import OptOut
from callshield.capture_config import OptOutSettings
from callshield.gate import Gate
from callshield.keypad import KeypadCode
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore
from fake_ari import FakeAri, FakeChannel
from testkit import StoreSink

APP = "callshield"
CUSTOMER, E164 = "13900139000", "+8613900139000"
RULES = NumberRules()


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def app_with_capture(
    fake: FakeAri, store: ShieldStore, code: KeypadCode = KeypadCode()
) -> AsyncIterator[tuple[StasisApp, StoreSink, KeypadCapture]]:
    client = AriClient(AriConfig(fake.url, fake.username, fake.password, app=APP))
    sink = StoreSink(store)
    capture = KeypadCapture(client, sink, code, RULES, app=APP, pbx="pbx1")
    optout = OptOut(client, sink, RULES, OptOutSettings(timeout=0.5, confirmation_seconds=0.05))
    app = StasisApp(
        "pbx1",
        client,
        Gate(store, RULES),
        app=APP,
        backoff=Backoff(0.05, 0.2),
        capture=capture,
        optout=optout,
    )
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.connected.wait(), 5)
    try:
        yield app, sink, capture
    finally:
        await app.stop()
        await asyncio.wait_for(task, 5)


async def connected_call(fake: FakeAri, capture: KeypadCapture) -> tuple[FakeChannel, FakeChannel]:
    """An agent's gated call to CUSTOMER, answered and bridged, as in pjsip_flow.jsonl."""
    agent = await fake.stasis_start(APP, args=["gate", CUSTOMER, "acme", "spring"])
    await until(lambda: agent.continued is not None and capture.watched == 1)
    await until(lambda: APP in agent.subscribers)
    peer = await fake.dial(agent.id, f"{CUSTOMER}@carrier", caller_number=CUSTOMER)
    await fake.answer_dial(peer.id)
    await fake.bridge(agent.id, peer.id)
    return agent, peer


async def test_the_agent_code_shields_the_customer_and_ends_the_call(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    async with app_with_capture(fake_ari, store) as (_, sink, capture):
        agent, peer = await connected_call(fake_ari, capture)
        await fake_ari.send_dtmf(agent.id, "*", duration_ms=280, duplicate_after=0.065)
        await fake_ari.send_dtmf(agent.id, "9", duration_ms=280, duplicate_after=0.065)
        await until(lambda: peer.hangup_cause is not None)
        await until(lambda: any(c.snooping for c in fake_ari.channels.values()))
        snoop = next(c for c in fake_ari.channels.values() if c.snooping)
        await until(lambda: bool(fake_ari.requests_to("POST", f"/channels/{snoop.id}/play")))
    assert len(sink.refusals) == 1
    e164, scope, source, evidence = sink.refusals[0]
    assert (e164, scope, source) == (E164, Scope("acme", "spring"), Source.AGENT_KEYPAD)
    assert (evidence["agent_channel"], evidence["customer_channel"], evidence["digits"]) == (
        agent.id,
        peer.id,
        "*9",
    )
    assert len((await store.lookup(E164)).entries) == 1
    hangups = fake_ari.requests_to("DELETE", f"/channels/{peer.id}")
    assert [r.params.get("reason_code") for r in hangups] == ["16"]
    assert snoop.snooping == (agent.id, "none", "out")


@pytest.mark.parametrize(
    "presses",
    [
        pytest.param([("*", 0.0), ("9", 0.6)], id="pause longer than the inter-digit timeout"),
        pytest.param([("*", 0.0), ("5", 0.05), ("9", 0.1)], id="another digit in between"),
        pytest.param([("9", 0.0), ("*", 0.05)], id="reversed"),
    ],
)
async def test_no_mark_without_the_exact_code_in_time(
    fake_ari: FakeAri, store: ShieldStore, presses: list[tuple[str, float]]
) -> None:
    async with app_with_capture(fake_ari, store, KeypadCode(inter_digit_timeout=0.3)) as (_, sink, capture):
        agent, peer = await connected_call(fake_ari, capture)
        previous = 0.0
        for digit, at in presses:
            await asyncio.sleep(at - previous)
            previous = at
            await fake_ari.send_dtmf(agent.id, digit)
        await asyncio.sleep(0.1)
    assert sink.refusals == []
    assert peer.hangup_cause is None


async def test_the_code_pressed_by_the_customer_marks_nobody(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with app_with_capture(fake_ari, store) as (_, sink, capture):
        _, peer = await connected_call(fake_ari, capture)
        await fake_ari.send_dtmf(peer.id, "*")
        await fake_ari.send_dtmf(peer.id, "9")
        await asyncio.sleep(0.1)
    assert sink.refusals == []


async def test_state_is_dropped_when_the_agent_channel_goes(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with app_with_capture(fake_ari, store) as (_, _sink, capture):
        agent, _ = await connected_call(fake_ari, capture)
        await fake_ari.remote_hangup(agent.id)
        await until(lambda: capture.watched == 0)


async def optout_call(fake: FakeAri, *args: str) -> FakeChannel:
    return await fake.stasis_start(
        APP, args=["optout", *args], caller_number=CUSTOMER, state="Up", name="PJSIP/carrier-00000042"
    )


async def test_the_customer_opt_out_is_recorded_confirmed_and_the_call_ended(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    async with app_with_capture(fake_ari, store) as (_, sink, _capture):
        channel = await optout_call(fake_ari, "acme")
        await until(lambda: bool(fake_ari.requests_to("POST", f"/channels/{channel.id}/play")))
        await fake_ari.send_dtmf(channel.id, "9")
        await until(lambda: channel.hangup_cause is not None)
    assert [(r[0], r[1], r[2]) for r in sink.refusals] == [(E164, Scope("acme"), Source.CUSTOMER_OPTOUT)]
    plays = [r.params["media"] for r in fake_ari.requests_to("POST", f"/channels/{channel.id}/play")]
    assert plays == [",".join(OptOutSettings().prompt), ",".join(OptOutSettings().confirmation)]


async def test_no_digit_lets_the_campaign_continue(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with app_with_capture(fake_ari, store) as (_, sink, _capture):
        channel = await optout_call(fake_ari)
        await fake_ari.send_dtmf(channel.id, "1")
        await until(lambda: channel.continued is not None)
    assert sink.refusals == []
    assert channel.hangup_cause is None


async def test_a_hangup_during_the_prompt_records_nothing(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with app_with_capture(fake_ari, store) as (_, sink, _capture):
        channel = await optout_call(fake_ari)
        await until(lambda: bool(fake_ari.requests_to("POST", f"/channels/{channel.id}/play")))
        await fake_ari.caller_hangup(channel.id)
        await asyncio.sleep(0.6)
    assert sink.refusals == []
    assert channel.continued is None


async def test_dialer_mode_finds_the_customer_in_the_agents_bridge(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    """dtmf_subscribe_all.jsonl: a call that never passed the gate, seen on a subscribeAll socket."""
    client = AriClient(AriConfig(fake_ari.url, fake_ari.username, fake_ari.password, app="callshield-guard"))
    sink = StoreSink(store)
    capture = KeypadCapture(
        client,
        sink,
        KeypadCode(),
        RULES,
        app="callshield-guard",
        pbx="pbx1",
        is_customer_leg=lambda channel: channel.name.startswith("PJSIP/carrier-"),
    )
    tasks: set[asyncio.Task[None]] = set()
    async with client, client.events(subscribe_all=True) as stream:
        await fake_ari.wait_connected("callshield-guard")

        async def pump() -> None:
            async for event in stream:
                work = capture.on_event(event)
                if work is not None:
                    tasks.add(asyncio.create_task(work))

        pumping = asyncio.create_task(pump())
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000", caller_number="agent5")
        peer = await fake_ari.dial(agent.id, f"{CUSTOMER}@carrier", caller_number=CUSTOMER)
        await fake_ari.answer_dial(peer.id)
        await fake_ari.bridge(agent.id, peer.id)
        await fake_ari.send_dtmf(peer.id, "*")
        await fake_ari.send_dtmf(peer.id, "9")
        await asyncio.sleep(0.1)
        assert sink.refusals == []
        await fake_ari.send_dtmf(agent.id, "*")
        await fake_ari.send_dtmf(agent.id, "9")
        await until(lambda: peer.hangup_cause is not None)
        await asyncio.gather(*tasks)
        pumping.cancel()
    assert [(r[0], r[2]) for r in sink.refusals] == [(E164, Source.AGENT_KEYPAD)]
    assert sink.refusals[0][3]["customer_channel"] == peer.id
