"""How the guard decides the legs that did not pass the gate: one after another in one task for a
burst; a decision that waits holds up neither the next legs nor the event stream; a blocked leg's
hang-up runs apart from the next decision; a decision that fails blocks the leg."""

from __future__ import annotations

import asyncio
import logging

import pytest
from callshield.ari.guard_act import Resolved
from callshield.gate import Verdict
from callshield.models import Matches
from callshield.store.base import ShieldStore
from fake_ari import FakeAri
from fake_ari_guard import CLEAN, SHIELDED, audit_of, guarding, hangups, shield, until


async def test_a_burst_of_legs_is_decided_leg_by_leg(fake_ari: FakeAri, store: ShieldStore) -> None:
    await shield(store)
    async with guarding(fake_ari, store) as guard:
        peers = [await fake_ari.dial(None, f"{n}@carrier") for n in (SHIELDED, CLEAN, SHIELDED, CLEAN, CLEAN)]
        await until(lambda: peers[0].destroyed and peers[2].destroyed and guard.judge.counts["allowed"] == 3)
        records = await audit_of(store, 2)
    assert sorted(hangups(fake_ari)) == sorted(
        [(f"/channels/{peers[0].id}", "21"), (f"/channels/{peers[2].id}", "21")]
    )
    assert sorted(r.details()["channel"] for r in records) == sorted([peers[0].id, peers[2].id])
    assert dict(guard.judge.counts) == {"blocked": 2, "allowed": 3}


async def test_a_slow_hang_up_never_holds_up_the_next_decision(fake_ari: FakeAri, store: ShieldStore) -> None:
    await shield(store)
    fake_ari.add_fault(method="DELETE", path="/channels/*", hang=True)  # answered never: retried
    async with guarding(fake_ari, store) as guard:
        blocked = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: len(hangups(fake_ari)) == 1)
        clean = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)
        assert not blocked.destroyed and len(hangups(fake_ari)) == 1  # its DELETE still hangs
        await until(lambda: blocked.destroyed)
        await audit_of(store)
    assert not clean.destroyed


async def test_a_decision_that_fails_blocks_the_leg(
    fake_ari: FakeAri,
    store: ShieldStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(leg: object, number: Resolved) -> Verdict | None:
        raise RuntimeError("a bug")

    async with guarding(fake_ari, store) as guard:
        monkeypatch.setattr(guard.judge, "decide", broken)
        peer = await fake_ari.dial(None, f"{CLEAN}@carrier")  # clean, yet never let through
        await until(lambda: peer.destroyed)
        [record] = await audit_of(store)
    assert hangups(fake_ari) == [(f"/channels/{peer.id}", "21")]
    assert (record.details()["reason"], record.details()["rule"]) == ("error", "internal error")
    assert dict(guard.judge.counts) == {"blocked": 1}
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(failures) == 1 and peer.id in failures[0].getMessage()


async def test_a_decision_that_waits_holds_up_neither_the_next_legs_nor_the_stream(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look-up that waits (SQLite busy after a crash: retried on the store's thread, up to its
    busy timeout; a store over the network) while more legs ring."""
    await shield(store)
    release, entered = asyncio.Event(), asyncio.Event()
    real = store.lookup

    async def lookup(e164: str) -> Matches:
        if e164.endswith(SHIELDED):
            entered.set()
            await release.wait()
        return await real(e164)

    monkeypatch.setattr(store, "lookup", lookup)
    async with guarding(fake_ari, store) as guard:
        waiting = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await asyncio.wait_for(entered.wait(), 5)
        clean = await fake_ari.dial(None, f"{CLEAN}@carrier")
        await until(lambda: guard.judge.counts["allowed"] == 1)  # decided meanwhile
        await fake_ari.remote_hangup(clean.id)
        await until(lambda: guard.legs == 1)  # and the stream still read: its end seen
        assert not waiting.destroyed
        release.set()
        await until(lambda: waiting.destroyed)
        await audit_of(store)
    assert hangups(fake_ari) == [(f"/channels/{waiting.id}", "21")]
