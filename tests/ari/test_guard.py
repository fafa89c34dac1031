"""The guard end to end: fake Asterisk 22 (subscribeAll) -> GuardApp -> Gate -> real SQLite store.

Originations straight to the trunk are the ``guard_subscribe_all.jsonl`` flow; calls an agent
dials are the ``dtmf_subscribe_all.jsonl`` flow (the fake replays both, see
test_fake_ari_subscribe_all.py).
"""

from __future__ import annotations

import logging

import pytest
from callshield.ari.guard import GUARD_EVENTS, GateLedger
from callshield.ari.guard_act import HANGUP_ATTEMPTS, NOT_GATED
from callshield.models import Matches
from callshield.privacy import mask
from callshield.store.base import ShieldStore
from fake_ari import FakeAri
from fake_ari_guard import (
    APP,
    CLEAN,
    CLEAN_E164,
    SHIELDED,
    SHIELDED_E164,
    audit_of,
    guarding,
    hangups,
    shield,
    until,
)


@pytest.fixture
def lookups(store: ShieldStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every number the store was asked about (the store's look-up, wrapped)."""
    asked: list[str] = []
    real = store.lookup

    async def counting(e164: str) -> Matches:
        asked.append(e164)
        return await real(e164)

    monkeypatch.setattr(store, "lookup", counting)
    return asked


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_origination_to_a_shielded_number_is_hung_up_before_answer(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    async with guarding(fake_ari, store) as guard:
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier", exten="s", caller_number="2000")
        await until(lambda: peer.destroyed)
        records = await audit_of(store)
        assert guard.legs == 0
    assert hangups(fake_ari) == [(f"/channels/{peer.id}", "21")]
    assert peer.hangup_cause == 21
    assert peer.state == "Ringing"  # never answered
    [record] = records
    assert (record.actor, record.masked) == ("guard", mask(SHIELDED_E164))
    detail = record.details()
    assert detail["channel"] == peer.id
    assert (detail["reason"], detail["hung_up"], detail["caller_channel"]) == ("shielded", True, "")
    assert SHIELDED not in record.detail
    [warning] = warnings(caplog)
    assert peer.id in warning and mask(SHIELDED_E164) in warning and "hung up" in warning


async def test_a_bypass_to_a_clean_number_is_allowed_and_logged(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture, lookups: list[str]
) -> None:
    await shield(store)
    async with guarding(fake_ari, store) as guard:
        peer = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
    assert hangups(fake_ari) == []
    assert not peer.destroyed
    assert lookups == [CLEAN_E164]
    assert [r async for r in store.audit_records() if r.action == "bypass-blocked"] == []
    assert warnings(caplog) == []
    [line] = [r for r in caplog.records if "allowed" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert peer.id in line.getMessage() and mask(CLEAN_E164) in line.getMessage()


async def test_a_call_the_gate_allowed_is_not_touched(
    fake_ari: FakeAri, store: ShieldStore, lookups: list[str]
) -> None:
    await shield(store)  # shielded, yet the gate allowed it for this agent (e.g. another scope)
    ledger = GateLedger()
    async with guarding(fake_ari, store, ledger=ledger) as guard:
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000", context="agents")
        ledger.allowed(agent.id, SHIELDED_E164)  # what the gate does after an ALLOW
        await fake_ari.dialplan(agent.id, "Dial", f"PJSIP/9{SHIELDED}@carrier,30")
        peer = await fake_ari.dial(agent.id, f"9{SHIELDED}@carrier", exten=f"9{SHIELDED}")
        await fake_ari.answer_dial(peer.id)
        await until(lambda: guard.judge.counts["gated"] == 1)
        await fake_ari.bridge(peer.id, agent.id)
        await fake_ari.remote_hangup(agent.id)
        await until(lambda: guard.legs == 0)
    assert hangups(fake_ari) == []
    assert lookups == []
    assert dict(guard.judge.counts) == {"gated": 1}


@pytest.mark.parametrize("hooked", [False, True], ids=["lean", "hooked"])
async def test_a_leg_is_remembered_while_it_rings_only(
    fake_ari: FakeAri, store: ShieldStore, hooked: bool
) -> None:
    """From the Dial that starts it to the Dial that ends it (no ChannelDestroyed needed), whether
    the guard reads its stream lean or in full for a hook."""
    hooks = [lambda event: None] if hooked else []
    async with guarding(fake_ari, store, hooks=hooks) as guard:
        answered = await fake_ari.dial(None, f"{CLEAN}@carrier")
        unanswered = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 2)
        assert guard.legs == 2
        await fake_ari.answer_dial(answered.id)
        await until(lambda: guard.legs == 1)
        await fake_ari.remote_hangup(unanswered.id)  # Dial NOANSWER, then its end
        await until(lambda: guard.legs == 0)
        assert not answered.destroyed
    assert dict(guard.judge.counts) == {"allowed": 2}  # the answer is no new leg


async def test_the_ledger_is_per_calling_channel(fake_ari: FakeAri, store: ShieldStore) -> None:
    await shield(store)
    ledger = GateLedger()
    async with guarding(fake_ari, store, ledger=ledger):
        gated = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        other = await fake_ari.create_channel(name="PJSIP/agent6-00000000")
        ledger.allowed(gated.id, SHIELDED_E164)
        peer = await fake_ari.dial(other.id, f"{SHIELDED}@carrier", exten=SHIELDED)
        await until(lambda: peer.destroyed)
    assert hangups(fake_ari) == [(f"/channels/{peer.id}", "21")]


async def test_strict_mode_hangs_up_every_leg_that_did_not_pass_the_gate(
    fake_ari: FakeAri, store: ShieldStore, lookups: list[str]
) -> None:
    ledger = GateLedger()
    async with guarding(fake_ari, store, ledger=ledger, strict=True) as guard:
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        ledger.allowed(agent.id, CLEAN_E164)
        gated = await fake_ari.dial(agent.id, f"{CLEAN}@carrier", exten=CLEAN)
        bypass = await fake_ari.dial(None, f"{CLEAN}@carrier")
        emergency = await fake_ari.dial(None, "110@carrier")
        await until(lambda: bypass.destroyed and guard.judge.counts["allowed"] == 1)
        records = await audit_of(store)
    assert hangups(fake_ari) == [(f"/channels/{bypass.id}", "21")]
    assert not gated.destroyed and not emergency.destroyed
    assert dict(guard.judge.counts) == {"gated": 1, "blocked": 1, "allowed": 1}
    assert lookups == []  # strict mode asks the ledger, not the store
    [record] = records
    assert (record.details()["reason"], record.details()["strict"]) == (NOT_GATED, True)


async def test_a_flood_of_other_events_costs_no_store_work(
    fake_ari: FakeAri, store: ShieldStore, lookups: list[str]
) -> None:
    async with guarding(fake_ari, store, server_filter=False) as guard:
        for n in range(20):
            agent = await fake_ari.create_channel(name=f"PJSIP/agent{n}-00000000", exten=SHIELDED)
            await fake_ari.dialplan(agent.id, "Dial", f"PJSIP/agent{n + 100},30")
            for name in ("DIALSTATUS", "RINGTIME", "ANSWEREDTIME", "DIALEDTIME"):
                await fake_ari.varset(agent.id, name, "")
            phone = await fake_ari.dial(agent.id, f"agent{n + 100}", name=f"PJSIP/agent{n + 100}-00000001")
            await fake_ari.answer_dial(phone.id)
            await fake_ari.bridge(agent.id, phone.id)
            await fake_ari.send_dtmf(agent.id, "5")
            inbound = await fake_ari.create_channel(name=f"PJSIP/carrier-{n:08x}", exten=SHIELDED)
            await fake_ari.remote_hangup(inbound.id)
            await fake_ari.remote_hangup(agent.id)
        marker = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
        sent = len(fake_ari.sent_types(APP))
    assert sent > 500
    assert lookups == [CLEAN_E164]  # the marker only: events arrive in order
    assert hangups(fake_ari) == []
    assert guard.legs == 1 and not marker.destroyed


async def test_asterisk_is_asked_to_send_only_what_the_guard_uses(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    async with guarding(fake_ari, store):
        allowed = fake_ari.application(APP)["events_allowed"]
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        await fake_ari.varset(agent.id, "SIPDOMAIN", "127.0.0.1")
        await fake_ari.remote_hangup(agent.id)
    assert allowed == [{"type": t} for t in sorted({*GUARD_EVENTS, "RESTResponse"})]  # hang-ups' answers
    assert set(fake_ari.sent_types(APP)) <= GUARD_EVENTS


async def test_a_store_error_blocks_the_bypass(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(e164: str) -> Matches:
        raise OSError("disk gone")

    monkeypatch.setattr(store, "lookup", broken)
    async with guarding(fake_ari, store):
        peer = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: peer.destroyed)
        records = await audit_of(store)
    assert peer.hangup_cause == 21
    assert [r.details()["reason"] for r in records] == ["error"]


async def test_a_leg_gone_before_the_hangup_is_recorded_as_such(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    fake_ari.add_fault(method="DELETE", path="/channels/*", status=404, message="Channel not found")
    async with guarding(fake_ari, store):
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: bool(fake_ari.requests_to("DELETE", "/channels/*")))
        await until(lambda: len(caplog.records) > 0 and "already ended" in caplog.text)
        records = await audit_of(store)
    assert not peer.destroyed
    assert [r.details()["hung_up"] for r in records] == [False]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("dials", [False, True], ids=["own-types", "with-dials"])
async def test_other_consumers_share_the_stream(fake_ari: FakeAri, store: ShieldStore, dials: bool) -> None:
    """A hook gets the events of its own types in full; the guard's Dials stay lean unless a hook
    asks for them too (then both read them in full)."""
    seen: list[str] = []

    def hook(event: object) -> None:
        seen.append(type(event).__name__)

    hook_events = {"ChannelDtmfReceived", *(["Dial"] if dials else [])}
    async with guarding(fake_ari, store, hooks=[hook], hook_events=hook_events) as guard:
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        await fake_ari.send_dtmf(agent.id, "*")
        await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
        await fake_ari.remote_hangup(agent.id)
        allowed = fake_ari.application(APP)["events_allowed"]
    assert seen == ["ChannelDtmfReceived", *(["Dial", "Dial"] if dials else [])]  # start, RINGING
    assert allowed == [{"type": t} for t in sorted({*GUARD_EVENTS, *hook_events, "RESTResponse"})]


async def test_a_hangup_ari_refuses_is_retried_then_reported(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    fake_ari.add_fault(method="DELETE", path="/channels/*", status=500, message="boom", times=None)
    async with guarding(fake_ari, store):
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        records = await audit_of(store)
    assert len(fake_ari.requests_to("DELETE", "/channels/*")) == HANGUP_ATTEMPTS
    assert not peer.destroyed
    assert [r.details()["hung_up"] for r in records] == [False]
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert peer.id in error and "could not hang up" in error
    assert any("the hang-up failed" in w for w in warnings(caplog))
