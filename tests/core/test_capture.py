"""core/capture.py: a refusal is durable in the store or the journal before it is acknowledged."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from callshield.capture import Durability, Recorded, Refusal, RefusalRecorder, mark, replay_forever
from callshield.config import ShieldPeriods
from callshield.errors import InvalidInput, NumberError, StoreError, StoreUnavailable
from callshield.journal import Journal
from callshield.models import Scope, ShieldEntry, Source
from callshield.numbers import NumberRules
from callshield.store.base import AddResult, NewEntry, ShieldStore
from callshield.store.sqlite import SqliteStore
from testkit import T0

NUMBER = "+8613800138000"
PERIODS = ShieldPeriods(default_days=365, source_days={Source.CUSTOMER_OPTOUT: 730})
SCOPE = Scope("acme")


class SwitchableStore(SqliteStore):
    """The real SQLite store, whose writes fail as an unreachable store's do while ``down`` is set."""

    down = False
    refused: frozenset[str] = frozenset()
    """Numbers whose writes fail with a (non-transient) store error."""

    async def add(self, entry: NewEntry, actor: str, now: datetime) -> AddResult:
        if self.down:
            raise StoreUnavailable(f"store {self.path} is unavailable: database is locked")
        if entry.e164 in self.refused:
            raise StoreError(f"store {self.path}: constraint failed")
        return await super().add(entry, actor, now)


@pytest.fixture
async def db(tmp_path: Path, key: bytes) -> AsyncIterator[SwitchableStore]:
    store = await SwitchableStore.open(tmp_path / "shield.db", key)
    assert isinstance(store, SwitchableStore)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def journal(tmp_path: Path, key: bytes) -> Journal:
    return Journal(tmp_path / "refusals.journal", key)


@pytest.fixture
def recorder(db: SwitchableStore, journal: Journal) -> RefusalRecorder:
    return RefusalRecorder(db, PERIODS, journal, "agent-7", clock=lambda: T0 + timedelta(minutes=5))


def refusal(
    number: str = NUMBER, source: Source = Source.AGENT_KEYPAD, at: datetime = T0, **evidence: str
) -> Refusal:
    return Refusal(number, SCOPE, source, "customer refused", evidence or {"channel": "PJSIP/a-1"}, at)


async def entries(store: SqliteStore) -> list[ShieldEntry]:
    return [e async for e in store.entries()]


async def test_a_refusal_is_stored_with_its_period_and_evidence(
    recorder: RefusalRecorder, db: SwitchableStore, journal: Journal
) -> None:
    done = await recorder.record(refusal(digits="*9", channel="PJSIP/a-1"))
    assert done == Recorded(
        done.refusal_id, "+86138****8000", Durability.STORE, T0 + timedelta(days=365), True
    )
    (entry,) = await entries(db)
    assert (entry.scope, entry.source, entry.expires_at) == (
        SCOPE,
        Source.AGENT_KEYPAD,
        T0 + timedelta(days=365),
    )
    evidence: dict[str, Any] = entry.evidence[0]
    assert evidence["digits"] == "*9" and evidence["channel"] == "PJSIP/a-1"
    assert evidence["refusal_id"] == done.refusal_id and evidence["refused_at"] == T0.isoformat()
    assert journal.empty()


async def test_store_unavailable_journals_and_replay_stores_it_later(
    recorder: RefusalRecorder, db: SwitchableStore, journal: Journal
) -> None:
    db.down = True
    done = await recorder.record(refusal(source=Source.CUSTOMER_OPTOUT))
    assert (done.where, done.expires_at, done.created) == (Durability.JOURNAL, T0 + timedelta(days=730), None)
    assert not journal.empty()
    assert (await db.lookup(NUMBER)).entries == ()
    assert await recorder.replay() == 0  # still down: kept
    db.down = False
    assert await recorder.replay() == 1
    (entry,) = (await db.lookup(NUMBER)).entries
    assert entry.expires_at == T0 + timedelta(days=730)
    assert journal.empty()
    assert await recorder.replay() == 0
    assert len((await entries(db))[0].evidence) == 1
    assert (await db.verify_audit()).ok


async def test_the_same_number_twice_keeps_the_later_expiry_and_both_evidences(
    recorder: RefusalRecorder, db: SwitchableStore
) -> None:
    first = await recorder.record(refusal(source=Source.CUSTOMER_OPTOUT, note="first"))
    second = await recorder.record(refusal(at=T0 + timedelta(days=1), note="second"))
    assert second.expires_at == T0 + timedelta(days=730)
    (entry,) = await entries(db)
    assert entry.expires_at == T0 + timedelta(days=730)
    assert [e["refusal_id"] for e in entry.evidence] == [first.refusal_id, second.refusal_id]
    assert [e["note"] for e in entry.evidence] == ["first", "second"]


async def test_twice_across_journal_and_store_ends_the_same_way(
    recorder: RefusalRecorder, db: SwitchableStore
) -> None:
    db.down = True
    journaled = await recorder.record(refusal(source=Source.CUSTOMER_OPTOUT, note="first"))
    db.down = False
    stored = await recorder.record(refusal(at=T0 + timedelta(days=1), note="second"))
    assert stored.expires_at == T0 + timedelta(days=366)  # the journaled one is not in yet
    assert await recorder.replay() == 1
    (entry,) = await entries(db)
    assert entry.expires_at == T0 + timedelta(days=730)
    assert sorted(e["refusal_id"] for e in entry.evidence) == sorted(
        [journaled.refusal_id, stored.refusal_id]
    )


async def test_a_locked_store_journals_within_the_timeout_without_wedging_the_store(
    db: SwitchableStore, journal: Journal
) -> None:
    recorder = RefusalRecorder(db, PERIODS, journal, "agent-7", store_timeout=0.1)
    locker = sqlite3.connect(db.path, isolation_level=None)  # a long write elsewhere holds the lock
    locker.execute("BEGIN IMMEDIATE")
    try:
        done = await asyncio.wait_for(recorder.record(refusal()), 4)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert done.where == Durability.JOURNAL
    assert await recorder.replay() == 1  # the first write went through after all: not twice
    (entry,) = await entries(db)
    assert [e["refusal_id"] for e in entry.evidence] == [done.refusal_id]
    assert (await recorder.record(refusal("+15559991234"))).where == Durability.STORE
    assert journal.empty()


async def test_without_a_store_every_refusal_is_journaled(journal: Journal, db: SwitchableStore) -> None:
    offline = RefusalRecorder(None, PERIODS, journal, "cli:alice")
    assert (await offline.record(refusal())).where == Durability.JOURNAL
    assert await offline.replay() == 0
    online = RefusalRecorder(db, PERIODS, journal, "service")
    assert await online.replay() == 1
    assert len((await db.lookup(NUMBER)).entries) == 1


async def test_store_and_journal_both_failing_raises_and_records_nothing(
    db: SwitchableStore, tmp_path: Path, key: bytes
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    recorder = RefusalRecorder(db, PERIODS, Journal(tmp_path / "a-file" / "j", key), "agent-7")
    db.down = True
    with pytest.raises(StoreUnavailable, match="journal"):
        await recorder.record(refusal())
    db.down = False
    assert await entries(db) == []


async def test_replay_keeps_what_the_store_refuses_and_stores_the_rest(
    recorder: RefusalRecorder, db: SwitchableStore, journal: Journal
) -> None:
    db.down = True
    await recorder.record(refusal("+15559991234"))
    await recorder.record(refusal())
    db.down, db.refused = False, frozenset({"+15559991234"})
    assert await recorder.replay() == 1
    assert len((await db.lookup(NUMBER)).entries) == 1
    assert not journal.empty()
    db.refused = frozenset()
    assert await recorder.replay() == 1
    assert len((await db.lookup("+15559991234")).entries) == 1
    assert journal.empty()


async def test_replay_forever_stores_the_journal_once_the_store_is_back(
    recorder: RefusalRecorder, db: SwitchableStore, journal: Journal
) -> None:
    db.down = True
    await recorder.record(refusal())
    loop = asyncio.create_task(replay_forever(recorder, 0.01))
    try:
        await asyncio.sleep(0.05)
        db.down = False
        async with asyncio.timeout(5):
            while not journal.empty():
                await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert len((await db.lookup(NUMBER)).entries) == 1


async def test_refuse_is_record_for_the_capture_adapters(
    recorder: RefusalRecorder, db: SwitchableStore
) -> None:
    await recorder.refuse(NUMBER, SCOPE, Source.CUSTOMER_OPTOUT, "opt-out key", {"digits": "8"}, T0)
    (entry,) = await entries(db)
    assert (entry.source, entry.expires_at) == (Source.CUSTOMER_OPTOUT, T0 + timedelta(days=730))
    assert entry.evidence[0]["digits"] == "8"


async def test_mark_resolves_the_number_as_typed(recorder: RefusalRecorder, db: SwitchableStore) -> None:
    done = await mark(
        recorder, "138 0013 8000", NumberRules(), scope=SCOPE, evidence={"note": "by phone"}, at=T0
    )
    assert done.where == Durability.STORE
    (entry,) = await entries(db)
    assert (entry.masked, entry.source, entry.reason) == (
        "+86138****8000",
        Source.AGENT_FLAG,
        "marked by operator",
    )
    assert entry.evidence[0]["note"] == "by phone"


async def test_mark_refuses_what_cannot_be_shielded(recorder: RefusalRecorder, db: SwitchableStore) -> None:
    with pytest.raises(NumberError):
        await mark(recorder, "110", NumberRules())
    with pytest.raises(NumberError) as caught:
        await mark(recorder, "13800138", NumberRules())
    assert "13800138" not in str(caught.value)
    assert await entries(db) == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"e164": "13800138000"}, NumberError),
        ({"e164": "+86 138 0013 8000"}, NumberError),
        ({"at": datetime(2026, 1, 1)}, InvalidInput),
        ({"reason": ""}, InvalidInput),
        ({"evidence": {"refusal_id": "forged"}}, InvalidInput),
        ({"evidence": {"at": "yesterday"}}, InvalidInput),
        ({"evidence": {"digits": 9}}, InvalidInput),
    ],
)
def test_refusal_refuses_malformed_fields(changes: dict[str, Any], error: type[Exception]) -> None:
    fields: dict[str, Any] = {
        "e164": NUMBER,
        "scope": SCOPE,
        "source": Source.AGENT_KEYPAD,
        "reason": "customer refused",
        "evidence": {},
        "at": T0,
    }
    with pytest.raises(error) as caught:
        Refusal(**(fields | changes))
    assert "13800138000" not in str(caught.value)


def test_refusal_evidence_cannot_change_after_the_fact() -> None:
    given = {"channel": "PJSIP/a-1"}
    made = Refusal(NUMBER, SCOPE, Source.AGENT_KEYPAD, "customer refused", given, T0)
    given["channel"] = "changed"
    assert made.evidence["channel"] == "PJSIP/a-1"
    with pytest.raises(TypeError):
        made.evidence["channel"] = "changed"  # type: ignore[index]


async def test_the_gate_blocks_a_journaled_refusal_before_it_reaches_the_store(
    store: ShieldStore, key: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callshield.gate import Gate

    async def failing_add(*args: object) -> object:
        raise StoreUnavailable("writes fail")

    recorder = RefusalRecorder(store, ShieldPeriods(), Journal(tmp_path / "j", key), "t")
    gate = Gate(store, NumberRules(), pending=recorder.pending)
    monkeypatch.setattr(store, "add", failing_add)
    await recorder.record(Refusal("+8613800138000", Scope(), Source.AGENT_KEYPAD, "no", {}, T0))
    verdict = await gate.check("13800138000")
    assert (verdict.decision.allowed, verdict.decision.reason) == (False, "shielded")
    assert (await gate.check("13900139000")).decision.allowed
    monkeypatch.undo()
    assert await recorder.replay() == 1
    assert recorder.pending("+8613800138000") == ()
    assert not (await gate.check("13800138000")).decision.allowed


def test_refusal_clips_long_evidence_values_but_keeps_the_refusal() -> None:
    call_id = "x" * 1000 + "@pbx"
    refusal = Refusal(NUMBER, SCOPE, Source.AGENT_KEYPAD, "customer refused", {"call_id": call_id}, T0)
    kept = refusal.evidence["call_id"]
    assert len(kept) == 256
    assert kept.startswith("xxxx") and kept.endswith("...[clipped]")
    NewEntry(NUMBER, SCOPE, Source.AGENT_KEYPAD, refusal.reason, None, refusal.evidence)  # the store takes it


@pytest.mark.parametrize(
    ("reason", "evidence", "problem"),
    [
        ("r" * 501, {}, "reason is 501 characters"),
        ("refused", {f"k{i}": "v" for i in range(12)}, "12 evidence items"),
        ("refused", {"k" * 41: "v"}, "may not use the key"),
    ],
)
def test_refusal_with_oversized_operator_input_is_refused(
    reason: str, evidence: dict[str, str], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        Refusal(NUMBER, SCOPE, Source.AGENT_FLAG, reason, evidence, T0)


@pytest.mark.parametrize(
    ("reason", "evidence", "problem"),
    [
        ("r" * 501, {}, "reason is 501 characters long"),
        ("ok", {f"k{i}": "v" for i in range(17)}, "17 evidence items"),
        ("ok", {"agent": "a" * 257}, "evidence 'agent': at most"),
        ("ok", {"k" * 41: "v"}, "at most 40 characters per name"),
    ],
)
def test_new_entry_bounds_reason_and_evidence(reason: str, evidence: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        NewEntry(NUMBER, SCOPE, Source.ADMIN, reason, None, evidence)
    NewEntry(NUMBER, SCOPE, Source.ADMIN, "r" * 500, None, {f"k{i}": "v" * 256 for i in range(16)})
