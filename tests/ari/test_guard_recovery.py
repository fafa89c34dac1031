"""The guard after a lost connection: legs that started ringing meanwhile are found and checked."""

from __future__ import annotations

import logging

import pytest
from callshield.ari.connection import Backoff
from callshield.ari.guard import GateLedger, GuardApp
from callshield.store.base import ShieldStore
from fake_ari import FakeAri, FakeChannel
from fake_ari_guard import (
    APP,
    CLEAN,
    SHIELDED,
    SHIELDED_E164,
    audit_of,
    guarding,
    hangups,
    shield,
    until,
)


async def reconnected(fake: FakeAri, guard: GuardApp, listings: int) -> None:
    """Wait until the guard is connected again and has listed the channels once more."""
    await until(lambda: fake.app_connected(APP) and guard.connected.is_set())
    await until(lambda: len(fake.requests_to("GET", "/channels")) > listings)


async def test_legs_ringing_while_disconnected_are_checked_after_reconnecting(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    async with guarding(fake_ari, store) as guard:
        seen = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
        listings = len(fake_ari.requests_to("GET", "/channels"))
        assert await fake_ari.drop_websockets(APP) == 1
        # Nothing of this reaches the guard: its socket is gone and Asterisk replays nothing.
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        dialled = await fake_ari.dial(agent.id, f"{SHIELDED}@carrier", exten=SHIELDED)
        clean = await fake_ari.dial(None, f"{CLEAN}@carrier", exten="s")
        await fake_ari.varset(clean.id, "DIALEDPEERNUMBER", f"{CLEAN}@carrier")
        unknown = await fake_ari.dial(None, f"{CLEAN}@carrier", exten="s")
        answered = await fake_ari.dial(None, f"{SHIELDED}@carrier", exten=SHIELDED)
        await fake_ari.answer_dial(answered.id)
        await fake_ari.remote_hangup(seen.id)
        await reconnected(fake_ari, guard, listings)
        await until(lambda: dialled.destroyed and unknown.destroyed and guard.judge.counts["allowed"] == 2)
        records = await audit_of(store, 2)
        assert guard.legs == 1  # the clean one, still ringing; the seen one ended meanwhile
    assert sorted(hangups(fake_ari)) == sorted([(f"/channels/{c.id}", "21") for c in (dialled, unknown)])
    assert not clean.destroyed and not answered.destroyed
    reasons = {r.details()["channel"]: r.details()["reason"] for r in records}
    assert reasons == {dialled.id: "shielded", unknown.id: "error"}
    assert sum("connection lost" in r.getMessage() for r in caplog.records) == 1


async def test_a_gated_leg_found_after_reconnecting_is_left_alone(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    await shield(store)
    ledger = GateLedger()
    async with guarding(fake_ari, store, ledger=ledger) as guard:
        listings = len(fake_ari.requests_to("GET", "/channels"))
        await fake_ari.drop_websockets(APP)
        agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
        ledger.allowed(agent.id, SHIELDED_E164)
        peer = await fake_ari.dial(agent.id, f"{SHIELDED}@carrier", exten=SHIELDED)
        await reconnected(fake_ari, guard, listings)
        await until(lambda: guard.judge.counts["gated"] == 1)
    assert hangups(fake_ari) == []
    assert not peer.destroyed


async def test_a_leg_seen_live_is_not_checked_again_after_reconnecting(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    async with guarding(fake_ari, store) as guard:
        peer = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
        for _ in range(3):
            listings = len(fake_ari.requests_to("GET", "/channels"))
            await fake_ari.drop_websockets(APP)
            await reconnected(fake_ari, guard, listings)
        marker = await fake_ari.dial(None, f"{CLEAN}@carrier")  # checked after any re-check would be
        await until(lambda: guard.judge.counts["allowed"] >= 2)
    assert dict(guard.judge.counts) == {"allowed": 2}
    assert not peer.destroyed and not marker.destroyed


async def test_the_guard_keeps_trying_until_asterisk_is_back(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    fake_ari.add_fault(method="GET", path="/events", status=503, message="Service Unavailable", times=3)
    caplog.set_level(logging.INFO, logger="callshield")
    async with guarding(fake_ari, store, backoff=Backoff(0.01, 0.02)):
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
    assert peer.hangup_cause == 21
    assert sum("connection lost or refused" in r.getMessage() for r in caplog.records) == 1


async def test_legs_found_by_listing_are_not_checked_twice(fake_ari: FakeAri, store: ShieldStore) -> None:
    await shield(store)
    agent = await fake_ari.create_channel(name="PJSIP/agent5-00000000")
    peer: FakeChannel = await fake_ari.dial(agent.id, f"{SHIELDED}@carrier", exten=SHIELDED)
    async with guarding(fake_ari, store) as guard:  # its first listing finds the leg
        await until(lambda: peer.destroyed)
        records = await audit_of(store)
        assert guard.legs == 0
    assert hangups(fake_ari) == [(f"/channels/{peer.id}", "21")]
    assert [r.details()["caller_channel"] for r in records] == [""]
    assert all(SHIELDED not in r.detail and SHIELDED not in r.masked for r in records)
