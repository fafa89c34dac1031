"""Marking by command: find the call on the fake Asterisk by either leg or Call-ID, shield, end it."""

from __future__ import annotations

import pytest
from callshield.ari.client import AriClient, AriConfig
from callshield.errors import InvalidInput
from callshield.marking import mark_call
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore
from fake_ari import FakeAri, FakeChannel
from testkit import StoreSink

CUSTOMER, E164 = "13900139000", "+8613900139000"
RULES = NumberRules()


async def a_call(fake: FakeAri) -> tuple[FakeChannel, FakeChannel]:
    agent = await fake.create_channel(
        name="PJSIP/agent1-00000002", caller_number="agent1", connected_number=CUSTOMER
    )
    peer = await fake.dial(agent.id, f"{CUSTOMER}@carrier", caller_number=CUSTOMER, connected_number="agent1")
    await fake.answer_dial(peer.id)
    await fake.bridge(agent.id, peer.id)
    return agent, peer


@pytest.mark.parametrize("by", ["agent channel", "customer channel", "call id"])
async def test_mark_call_shields_the_customer_and_ends_the_call(
    fake_ari: FakeAri, store: ShieldStore, by: str
) -> None:
    agent, peer = await a_call(fake_ari)
    sink = StoreSink(store)
    named = {
        "agent channel": {"channel_id": agent.id},
        "customer channel": {"channel_id": peer.id},
        "call id": {"call_id": peer.protocol_id},
    }[by]
    async with AriClient(
        AriConfig(fake_ari.url, fake_ari.username, fake_ari.password, app="callshield")
    ) as client:
        marked = await mark_call(
            client, sink, RULES, scope=Scope("acme"), reason="CRM flag", actor="crm", **named
        )
    assert (marked.masked, marked.ended) == ("+86139****9000", peer.id)
    assert [(r[0], r[2]) for r in sink.refusals] == [(E164, Source.AGENT_FLAG)]
    assert peer.hangup_cause == 16
    assert len((await store.lookup(E164)).entries) == 1


async def test_an_unknown_channel_is_a_clear_error_and_marks_nothing(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    sink = StoreSink(store)
    async with AriClient(
        AriConfig(fake_ari.url, fake_ari.username, fake_ari.password, app="callshield")
    ) as client:
        with pytest.raises(InvalidInput, match="no live channel"):
            await mark_call(client, sink, RULES, channel_id="nope", scope=Scope(), reason="x", actor="crm")
    assert sink.refusals == []
