"""The store contract: every backend must pass these (see the `backend` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.policy import CallContext, Reason, decide
from callshield.store.base import NewEntry, ShieldStore
from testkit import T0

N1 = "+8613800138000"
N2 = "+8613900139000"
ACME = Scope("acme")
SUMMER = Scope("acme", "summer")


GLOBAL = Scope()


def entry(number: str = N1, scope: Scope = GLOBAL, days: int | None = 365, **evidence: str) -> NewEntry:
    expires = None if days is None else T0 + timedelta(days=days)
    return NewEntry(number, scope, Source.AGENT_KEYPAD, "refused", expires, evidence)


async def test_add_then_lookup_finds_the_entry(store: ShieldStore) -> None:
    result = await store.add(entry(call_id="c1"), "test", T0)
    assert result.created
    assert result.expires_at == T0 + timedelta(days=365)
    (found,) = (await store.lookup(N1)).entries
    assert (found.masked, found.scope, found.source) == ("+86138****8000", Scope(), Source.AGENT_KEYPAD)
    assert found.expires_at == T0 + timedelta(days=365)
    assert (await store.lookup(N2)).entries == ()


async def test_shielding_again_keeps_the_later_expiry_and_both_evidences(store: ShieldStore) -> None:
    await store.add(entry(days=400, call_id="first"), "test", T0)
    again = await store.add(entry(days=30, call_id="second"), "test", T0 + timedelta(days=1))
    assert not again.created
    assert again.expires_at == T0 + timedelta(days=400)
    (stored,) = [e async for e in store.entries()]
    assert [ev["call_id"] for ev in stored.evidence] == ["first", "second"]
    assert stored.expires_at == T0 + timedelta(days=400)


async def test_a_refusal_handed_over_twice_keeps_one_evidence(store: ShieldStore) -> None:
    """A journal replay after a power loss may hand the store a refusal it already took."""
    await store.add(entry(refusal_id="r1", call_id="first"), "test", T0)
    await store.add(entry(refusal_id="r1", call_id="first"), "replay", T0 + timedelta(seconds=5))
    await store.add(entry(refusal_id="r2", call_id="second"), "test", T0 + timedelta(days=1))
    await store.add(entry(call_id="third"), "test", T0 + timedelta(days=2))  # no id: always kept
    (stored,) = [e async for e in store.entries()]
    assert [ev["call_id"] for ev in stored.evidence] == ["first", "second", "third"]


async def test_a_later_refusal_extends_and_permanent_wins(store: ShieldStore) -> None:
    await store.add(entry(days=10), "test", T0)
    assert (await store.add(entry(days=500), "test", T0)).expires_at == T0 + timedelta(days=500)
    assert (await store.add(entry(days=None), "test", T0)).expires_at is None
    assert (await store.add(entry(days=900), "test", T0)).expires_at is None


async def test_scopes_are_separate_entries(store: ShieldStore) -> None:
    await store.add(entry(scope=ACME), "test", T0)
    await store.add(entry(scope=SUMMER), "test", T0)
    scopes = [e.scope for e in (await store.lookup(N1)).entries]
    assert sorted(scopes, key=str) == [SUMMER, ACME]
    matches = await store.lookup(N1)
    assert decide(CallContext(N1, company="acme", campaign="winter"), matches, T0).reason == Reason.SHIELDED
    assert decide(CallContext(N1, company="other"), matches, T0).allowed


async def test_expired_entries_stop_matching_at_their_expiry_instant(store: ShieldStore) -> None:
    await store.add(entry(days=1), "test", T0)
    matches = await store.lookup(N1)
    end = T0 + timedelta(days=1)
    assert not decide(CallContext(N1), matches, end - timedelta(seconds=1)).allowed
    assert decide(CallContext(N1), matches, end).allowed


async def test_purge_deletes_exactly_the_expired_entries_with_an_audit_record(store: ShieldStore) -> None:
    await store.add(entry(N1, days=1), "test", T0)
    await store.add(entry(N2, days=2), "test", T0)
    await store.add(entry("+8613700137000", days=None), "test", T0)
    assert await store.purge_expired("purger", T0 + timedelta(days=1)) == 1
    assert (await store.lookup(N1)).entries == ()
    assert len((await store.lookup(N2)).entries) == 1
    records = [r async for r in store.audit_records()]
    assert records[-1].action == "purge"
    assert records[-1].details()["count"] == 1
    assert await store.purge_expired("purger", T0 + timedelta(days=1)) == 0
    assert (await store.stats(T0)).entries == 2


async def test_remove_in_one_scope_or_all(store: ShieldStore) -> None:
    for scope in (Scope(), ACME, SUMMER):
        await store.add(entry(scope=scope), "test", T0)
    assert await store.remove(N1, ACME, "op", "consent given", T0) == 1
    assert len((await store.lookup(N1)).entries) == 2
    assert await store.remove(N1, None, "op", "consent given", T0) == 2
    assert (await store.lookup(N1)).entries == ()
    last = [r async for r in store.audit_records()][-1]
    assert (last.action, last.masked, last.details()["reason"]) == (
        "remove",
        "+86138****8000",
        "consent given",
    )


async def test_prefix_rules_are_returned_for_numbers_in_their_range(store: ShieldStore) -> None:
    block = PrefixRule("+861380013", Action.BLOCK, Scope(), "range", T0)
    allow = PrefixRule(N1, Action.ALLOW, Scope(), "vip", T0)
    await store.add_prefix(block, "op")
    await store.add_prefix(allow, "op")
    assert {r.prefix for r in (await store.lookup(N1)).prefixes} == {block.prefix, allow.prefix}
    assert [r.prefix for r in (await store.lookup("+8613800138001")).prefixes] == [block.prefix]
    assert (await store.lookup(N2)).prefixes == ()
    assert decide(CallContext(N1), await store.lookup(N1), T0).allowed
    assert not decide(CallContext("+8613800138001"), await store.lookup("+8613800138001"), T0).allowed
    assert await store.remove_prefix(allow.prefix, Scope(), "op", "vip left", T0) == 1
    assert [r.prefix for r in await store.prefixes()] == [block.prefix]


async def test_import_rows_is_idempotent(store: ShieldStore) -> None:
    rows = [
        (bytes([i]) * 32, f"+86138****{i:04d}", "global", "import", "list", "[]", 1_700_000_000, None)
        for i in range(50)
    ]
    assert await store.import_rows(rows) == 50
    assert await store.import_rows(rows) == 0
    assert await store.import_rows(rows[:10] + rows[:10]) == 0
    assert (await store.stats(T0)).entries == 50


async def test_entries_filters(store: ShieldStore) -> None:
    await store.add(entry(N1, scope=ACME, days=1), "test", T0)
    await store.add(entry(N2), "test", T0)
    assert len([e async for e in store.entries()]) == 2
    assert [e.masked async for e in store.entries(scope=ACME)] == ["+86138****8000"]
    assert [e.masked async for e in store.entries(active_at=T0 + timedelta(days=2))] == ["+86139****9000"]
    assert [e async for e in store.entries(source=Source.IMPORT)] == []


async def test_every_change_is_audited_and_the_chain_verifies(store: ShieldStore) -> None:
    await store.add(entry(), "alice", T0)
    await store.audit("bob", "check", "+86138****8000", {"verdict": "BLOCK"}, T0)
    await store.remove(N1, None, "carol", "consent", T0)
    records = [r async for r in store.audit_records()]
    assert [(r.seq, r.actor, r.action) for r in records] == [
        (1, "alice", "add"),
        (2, "bob", "check"),
        (3, "carol", "remove"),
    ]
    report = await store.verify_audit()
    assert report.ok
    assert (report.checked, report.head_seq, report.head_hash) == (3, 3, records[-1].hash.hex())
    assert [r.seq async for r in store.audit_records(since_seq=2)] == [3]


async def test_stats_count_by_state_source_and_scope(store: ShieldStore) -> None:
    await store.add(entry(N1, days=1), "test", T0)
    await store.add(entry(N2, scope=ACME, days=None), "test", T0)
    stats = await store.stats(T0 + timedelta(days=1))
    assert (stats.entries, stats.active, stats.expired_pending_purge, stats.permanent) == (2, 1, 1, 1)
    assert stats.by_scope == {"company:acme": 1, "global": 1}
    assert stats.by_source == {"agent_keypad": 2}


@pytest.mark.parametrize("number", [N1, "+12025550143", "+442079460000"])
async def test_the_number_is_never_stored_in_plaintext(store: ShieldStore, number: str) -> None:
    await store.add(entry(number), "test", T0)
    await store.audit("op", "check", "masked", {"verdict": "BLOCK"}, T0)
    dump = "".join([repr(e) async for e in store.entries()] + [repr(r) async for r in store.audit_records()])
    assert number not in dump
    assert number[1:] not in dump
