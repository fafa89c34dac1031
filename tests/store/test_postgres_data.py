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
from callshield.store.base import ImportRow, ShieldStore
from callshield.store.postgres import PostgresStore
from callshield.store.sqlite import SqliteStore
from testkit import N1, T0, refusal


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


async def test_a_list_batch_and_a_mixed_batch_store_the_same_rows(pg_url: str, key: bytes) -> None:
    """A batch of one import's rows (copied as hash and masked form only, the rest bound once) and a
    batch of rows that differ (copied whole) give the same entries."""
    evidence = '[{"import": "list.txt", "at": "2024-06-01T00:00:00+00:00"}]'
    rows = [(*row[:5], evidence, 1_700_000_000, 1_800_000_000) for row in import_rows(20)]
    other: ImportRow = (
        b"\xff" * 32,
        "+1555****1234",
        str(Scope("acme")),
        "admin",
        "x",
        "[]",
        1_700_000_005,
        None,
    )
    store = await PostgresStore.open(pg_url, key)
    try:
        assert await store.import_rows(rows[:10] + rows[:3]) == 10
        assert await store.import_rows([*rows[10:], other, *rows[:2]]) == 11
        found = [e async for e in store.entries()]
    finally:
        await store.close()
    assert [e.number_hash for e in found] == [r[0] for r in rows] + [other[0]]
    described = [(e.source, e.reason, e.evidence, e.created_at, e.expires_at) for e in found[:20]]
    assert described == described[:1] * 20
    source, reason, stored_evidence, created, expires = described[0]
    assert expires is not None
    assert (source, reason, created.timestamp(), expires.timestamp()) == ("import", "list", 1.7e9, 1.8e9)
    assert list(stored_evidence) == [{"import": "list.txt", "at": "2024-06-01T00:00:00+00:00"}]
    assert (found[20].scope, found[20].expires_at, found[20].created_at.timestamp()) == (
        Scope("acme"),
        None,
        1_700_000_005,
    )


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
    assert marker in log and "key = 'prefix_version'" in log
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


def test_the_kept_rules_of_a_number_are_those_of_its_prefixes() -> None:
    prefixes = ["+8", "+86", "+86138", "+86138", "+8613800138000", "+861380013800012", "+1555"]
    found: list[tuple[object, ...]] = [(1, None, "7", None, None, None, None)]
    found += [
        (0, "global" if i != 3 else "company:acme", p, "BLOCK", f"r{i}", T0, None)
        for i, p in enumerate(prefixes)
    ]
    rules = postgres_rows.Rules(found)
    assert rules.version == "7"
    for number in [
        "+8613800138000",
        "+86138",
        "+8",
        "+8613800138001",
        "+15551234",
        "+44207",
        "+861380013800012",
    ]:
        expected = sorted((p, i) for i, p in enumerate(prefixes) if number.startswith(p))
        assert sorted((r.prefix, int(r.reason[1:])) for r in rules.of(number)) == expected, number
    assert postgres_rows.Rules([(1, None, "0", None, None, None, None)]).of("+8613800138000") == ()
