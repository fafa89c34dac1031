"""The PostgreSQL store's data on a real server: times, streaming, import counts, what the server
sees of a look-up, and agreement with the SQLite store, record for record.

Each test gets a fresh schema (the ``pg_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.store import postgres_rows
from callshield.store.base import ImportRow, NewEntry, ShieldStore
from callshield.store.postgres import PostgresStore
from callshield.store.sqlite import SqliteStore
from testkit import T0

N1 = "+8613800138000"


def refusal(
    number: str = N1, days: int | None = 365, source: Source = Source.CUSTOMER_OPTOUT, **evidence: str
) -> NewEntry:
    expires = None if days is None else T0 + timedelta(days=days)
    return NewEntry(number, Scope(), source, f"{source} refused", expires, evidence)


def import_rows(count: int, start: int = 0) -> list[ImportRow]:
    return [
        (
            i.to_bytes(32, "big"),
            f"+86138****{i % 10000:04d}",
            "global",
            "import",
            "list",
            "[]",
            1_700_000_000,
            None,
        )
        for i in range(start, start + count)
    ]


async def test_times_are_kept_to_the_second_like_sqlite(pg_url: str, key: bytes) -> None:
    now = T0 + timedelta(microseconds=654321)
    store = await PostgresStore.open(pg_url, key)
    try:
        result = await store.add(refusal(days=1), "test", now)
        assert result.expires_at == T0 + timedelta(days=1)
        (entry,) = (await store.lookup(N1)).entries
        assert (entry.created_at, entry.expires_at) == (T0, T0 + timedelta(days=1))
    finally:
        await store.close()


async def test_streams_page_through_large_results(
    pg_url: str, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_rows, "PAGE", 7)
    store = await PostgresStore.open(pg_url, key)
    try:
        assert await store.import_rows(import_rows(50)) == 50
        hashes = [e.number_hash async for e in store.entries()]
        assert hashes == sorted(hashes) and len(set(hashes)) == 50
        assert len([e async for e in store.entries(active_at=T0)]) == 50
        for i in range(15):
            await store.audit("op", "check", "", {"i": i}, T0)
        assert [r.seq async for r in store.audit_records()] == list(range(1, 16))
        assert [r.seq async for r in store.audit_records(since_seq=9)] == list(range(10, 16))
        assert (await store.verify_audit()).checked == 15
    finally:
        await store.close()


async def test_import_counts_rows_repeated_within_a_batch_once(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    try:
        rows = import_rows(30)
        assert await store.import_rows(rows + rows[:10]) == 30
        assert await store.import_rows(import_rows(40)) == 10
        assert await store.import_rows([]) == 0
    finally:
        await store.close()


async def test_a_look_up_sends_the_server_no_number(pg_url: str, key: bytes, pg_cluster: str) -> None:
    """With every statement logged with its parameters, the server's log holds no number."""
    number, marker = "+8613812345678", f"marker-{os.urandom(4).hex()}"
    store = await PostgresStore.open(pg_url + "&log_min_duration_statement=0", key)
    try:
        await store.add_prefix(PrefixRule("+86138123", Action.BLOCK, Scope(), marker, T0), "op")
        await store.add(refusal(number), "test", T0)
        matches = await store.lookup(number)
        await store.audit("op", marker, "", {}, T0)
    finally:
        await store.close()
    assert [p.prefix for p in matches.prefixes] == ["+86138123"]
    assert len(matches.entries) == 1
    log = (Path(pg_cluster) / "server.log").read_text(errors="replace")
    assert marker in log and "prefix_key = ANY" in log
    assert number not in log and number[1:] not in log


async def run_everything(store: ShieldStore) -> None:
    await store.add(refusal(N1, call_id="c1"), "alice", T0)
    await store.add(refusal(N1, days=30, source=Source.AGENT_FLAG, call_id="c2"), "bob", T0)
    await store.add(refusal("+8613900139000", days=9, agent="a7"), "alice", T0)
    await store.add(refusal("+8613900139000", days=None, source=Source.ADMIN, agent="a7"), "eve", T0)
    await store.add(refusal("+8613700137000", days=None, source=Source.ADMIN), "eve", T0)
    await store.add(refusal("+8613700137000", days=5, source=Source.AGENT_FLAG), "eve", T0)
    await store.add_prefix(PrefixRule("+86137", Action.BLOCK, Scope("acme"), "range", T0), "op")
    await store.remove("+8613900139000", None, "carol", "consent", T0)
    await store.import_rows(import_rows(3))
    await store.audit("dave", "export", "", {"rows": 3}, T0)
    await store.add(refusal("+8613600136000", days=1), "eve", T0)
    await store.purge_expired("purger", T0 + timedelta(days=100))


async def test_both_backends_write_the_same_entries_and_the_same_audit_chain(
    pg_url: str, key: bytes, tmp_path: Path
) -> None:
    sqlite = await SqliteStore.open(tmp_path / "shield.db", key)
    postgres = await PostgresStore.open(pg_url, key)
    try:
        for store in (sqlite, postgres):
            await run_everything(store)
        assert [e async for e in postgres.entries()] == [e async for e in sqlite.entries()]
        assert await postgres.prefixes() == await sqlite.prefixes()
        assert [r async for r in postgres.audit_records()] == [r async for r in sqlite.audit_records()]
        assert await postgres.stats(T0) == await sqlite.stats(T0)
        assert await postgres.lookup("+8613700137000") == await sqlite.lookup("+8613700137000")
    finally:
        await sqlite.close()
        await postgres.close()
