"""The SQLite store's audit appends: one statement that reads the chain's head and hashes the record
under its write lock, in its own transaction or in a change's; mixed with records written the old
way (head read, hash computed in Python, then inserted) by other connections and processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from callshield.errors import StoreError
from callshield.models import Source
from callshield.store.audit import chain_key, encode_detail, format_at, record_hash
from callshield.store.sqlite import SqliteStore
from testkit import T0, refusal

DETAIL = {"pbx": "pbx1", "channel": "1795849090.1", "hung_up": True}

OLD_WAY = """
import sys
import time
from callshield.store.audit import record_hash
ckey, path, actor = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3]
import sqlite3
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA busy_timeout=5000")
print("ready", flush=True)
while not sys.stdin.readline().startswith("stop"):
    db.execute("BEGIN IMMEDIATE")
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, bytes(32))
    at, detail = "2026-01-01T12:00:00.000000+00:00", "{}"
    digest = record_hash(ckey, prev, seq, at, actor, "old-way", "", detail)
    db.execute(
        "INSERT INTO audit (seq, at, actor, action, masked, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, 'old-way', '', ?, ?, ?)",
        (seq, at, actor, detail, prev, digest),
    )
    db.execute("COMMIT")
    time.sleep(0.001)  # a tight loop would have the lock back before the other side's busy wait ends
"""
"""Appends a record the way callshield did before the one-statement append, once per input line."""


def append_old_way(db: sqlite3.Connection, key: bytes, actor: str) -> bytes:
    """One record as the old code wrote it, in the caller's open transaction; returns its hash."""
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, bytes(32))
    at, detail = format_at(T0), encode_detail(DETAIL)
    digest = record_hash(chain_key(key), prev, seq, at, actor, "old-way", "", detail)
    db.execute(
        "INSERT INTO audit (seq, at, actor, action, masked, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, 'old-way', '', ?, ?, ?)",
        (seq, at, actor, detail, prev, digest),
    )
    return digest


def actors(path: Path) -> list[str]:
    """The records' actors in sequence order, as another connection sees the file (committed only)."""
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT actor FROM audit ORDER BY seq")]


@pytest.fixture
async def store(tmp_path: Path, key: bytes) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "shield.db", key)
    yield opened
    await opened.close()


async def test_records_of_any_text_verify_and_keep_their_fields(store: SqliteStore) -> None:
    odd = ["gu\u00e4rd", "\u5ba2\u670d \U0001f4de", "nul\x00inside", "", "x" * 5000]
    for actor in odd:
        await store.audit(actor, "bypass-blocked", "+86138****8000", {"note": actor}, T0)
    records = [r async for r in store.audit_records()]
    assert (await store.verify_audit()).ok
    assert [(r.seq, r.actor, r.at, r.details()["note"]) for r in records] == [
        (i + 1, a, format_at(T0), a) for i, a in enumerate(odd)
    ]
    assert records[0].prev_hash == bytes(32)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))


async def test_new_way_records_chain_onto_old_way_records_and_back(
    tmp_path: Path, key: bytes, store: SqliteStore
) -> None:
    other = sqlite3.connect(tmp_path / "shield.db", isolation_level=None)
    for round_ in range(3):
        other.execute("BEGIN IMMEDIATE")
        append_old_way(other, key, f"old{round_}")
        other.execute("COMMIT")
        await store.audit("guard", "bypass-blocked", "+86138****8000", DETAIL, T0)
        await store.add(refusal(f"+861380013800{round_}"), "new", T0)
    other.close()
    assert (await store.verify_audit()).ok
    assert actors(tmp_path / "shield.db") == [
        "old0",
        "guard",
        "new",
        "old1",
        "guard",
        "new",
        "old2",
        "guard",
        "new",
    ]


async def test_an_append_waits_for_another_writer_and_chains_onto_its_record(
    tmp_path: Path, key: bytes, store: SqliteStore
) -> None:
    await store.audit("guard", "bypass-blocked", "", DETAIL, T0)
    other = sqlite3.connect(tmp_path / "shield.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    theirs = append_old_way(other, key, "other")
    ours = asyncio.create_task(store.audit("guard", "bypass-blocked", "", DETAIL, T0))
    await asyncio.sleep(0.2)
    assert not ours.done()  # waiting for the write lock (busy_timeout), not failed, not done
    other.execute("COMMIT")
    other.close()
    await ours
    records = [r async for r in store.audit_records()]
    assert [(r.seq, r.actor) for r in records] == [(1, "guard"), (2, "other"), (3, "guard")]
    assert records[2].prev_hash == theirs
    assert (await store.verify_audit()).ok


async def test_appends_from_another_process_interleave_into_one_chain(
    tmp_path: Path, key: bytes, store: SqliteStore
) -> None:
    path = tmp_path / "shield.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-c", OLD_WAY, chain_key(key).hex(), str(path), "cli"]
    pipe = asyncio.subprocess.PIPE
    child = await asyncio.create_subprocess_exec(*args, stdin=pipe, stdout=pipe, env=env)
    assert child.stdin is not None and child.stdout is not None
    assert (await child.stdout.readline()).startswith(b"ready")
    child.stdin.write(b"go\n" * 150 + b"stop\n")
    for _ in range(30):
        await asyncio.gather(*(store.audit("guard", "bypass-blocked", "", DETAIL, T0) for _ in range(5)))
        await asyncio.sleep(0.002)
    assert await asyncio.wait_for(child.wait(), 60) == 0
    seen = actors(path)
    assert (seen.count("guard"), seen.count("cli")) == (150, 150)
    assert sum(a != b for a, b in itertools.pairwise(seen)) >= 10  # they did interleave
    assert (await store.verify_audit()).ok


async def test_a_change_that_fails_takes_no_audit_record_of_another_task_with_it(
    tmp_path: Path, store: SqliteStore
) -> None:
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.source = 'import'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    failing = [store.add(refusal(f"+86139{i:08d}", source=Source.IMPORT), "bad", T0) for i in range(20)]
    audits = [store.audit("guard", "bypass-blocked", "", DETAIL, T0) for _ in range(40)]
    mixed = [a for pair in zip(failing, audits, strict=False) for a in pair] + audits[20:]
    outcomes = await asyncio.gather(*mixed, return_exceptions=True)
    assert [isinstance(o, StoreError) for o in outcomes[:40:2]] == [True] * 20
    assert actors(tmp_path / "shield.db") == ["guard"] * 40
    assert (await store.verify_audit()).ok


async def test_a_record_whose_statement_fails_leaves_nothing_and_the_next_takes_its_place(
    tmp_path: Path, store: SqliteStore
) -> None:
    await store.audit("guard", "bypass-blocked", "", DETAIL, T0)
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.execute(
            "CREATE TRIGGER half AFTER INSERT ON audit WHEN NEW.actor = 'mallory'"
            " BEGIN SELECT RAISE(ABORT, 'refused after the insert'); END"
        )
    with pytest.raises(StoreError, match="refused after the insert"):
        await store.audit("mallory", "bypass-blocked", "", DETAIL, T0)
    await store.audit("guard", "bypass-blocked", "", DETAIL, T0)
    assert actors(tmp_path / "shield.db") == ["guard", "guard"]  # committed: seen by another connection
    assert [r.seq async for r in store.audit_records()] == [1, 2]
    assert (await store.verify_audit()).ok


async def test_a_change_whose_commit_fails_leaves_the_next_record_committed(
    tmp_path: Path, store: SqliteStore
) -> None:
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            " CREATE TABLE child (pid INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
            " CREATE TRIGGER orphan AFTER INSERT ON entries BEGIN INSERT INTO child VALUES (42); END;"
        )
    with pytest.raises(StoreError, match="FOREIGN KEY"):  # at COMMIT: the transaction stays open
        await store.add(refusal(), "test", T0)
    await store.audit("guard", "bypass-blocked", "", DETAIL, T0)
    assert actors(tmp_path / "shield.db") == ["guard"]


FORGED = "callshield_record_hash(zeroblob(32), 1, '2020-01-01', 'mallory', 'remove', '', '{}')"
"""A record of someone's making, hashed by the store's connection if it let a schema call it."""


async def test_a_trigger_put_in_the_file_cannot_have_records_hashed(
    tmp_path: Path, store: SqliteStore
) -> None:
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.executescript(
            "CREATE TABLE stolen (hash BLOB);"
            f" CREATE TRIGGER steal AFTER INSERT ON audit BEGIN INSERT INTO stolen VALUES ({FORGED}); END;"
        )
    with pytest.raises(StoreError, match="unsafe use"):
        await store.audit("guard", "bypass-blocked", "", DETAIL, T0)
    with sqlite3.connect(tmp_path / "shield.db") as db:
        assert db.execute("SELECT count(*) FROM stolen").fetchone() == (0,)


async def test_a_view_put_in_the_file_cannot_have_records_hashed(tmp_path: Path, store: SqliteStore) -> None:
    await store.add(refusal(), "test", T0)
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.executescript(
            "ALTER TABLE entries RENAME TO kept;"
            " CREATE VIEW entries AS SELECT number_hash, scope, masked, source, hex("
            + FORGED
            + ") AS reason, evidence, created_at, expires_at FROM kept;"
        )
    with pytest.raises(StoreError, match="unsafe use"):
        [e async for e in store.entries()]


async def test_records_queued_behind_a_write_are_committed_together_in_call_order(
    tmp_path: Path, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store._w._db
    sent: list[str] = []

    def spy(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(sql: str, *args: object) -> Any:
            sent.append(sql.split(maxsplit=1)[0])
            return method(sql, *args)

        return call

    monkeypatch.setattr(db, "execute", spy(db.execute))
    monkeypatch.setattr(db, "executemany", spy(db.executemany))
    async with store._w._lock:  # another write has the connection
        audits = [store.audit(f"a{i}", "bypass-blocked", "", DETAIL, T0) for i in range(10)]
        calls = [asyncio.ensure_future(audit) for audit in audits]
        await asyncio.sleep(0.01)
        assert not any(call.done() for call in calls)
    await asyncio.gather(*calls)
    assert actors(tmp_path / "shield.db") == [f"a{i}" for i in range(10)]
    assert sent == ["BEGIN", "INSERT", "COMMIT"]  # one transaction for the ten (the INSERT: executemany)
    await store.audit("alone", "bypass-blocked", "", DETAIL, T0)
    assert sent[3:] == ["INSERT"]  # a record that finds the connection free: autocommit, one crossing
    assert (await store.verify_audit()).ok


async def test_a_record_that_fails_in_a_group_fails_alone(tmp_path: Path, store: SqliteStore) -> None:
    with sqlite3.connect(tmp_path / "shield.db") as db:
        db.execute(
            "CREATE TRIGGER refuse AFTER INSERT ON audit WHEN NEW.actor = 'mallory'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    names = ["g0", "g1", "mallory", "g3", "g4"]
    async with store._w._lock:
        calls = [asyncio.ensure_future(store.audit(n, "bypass-blocked", "", DETAIL, T0)) for n in names]
        await asyncio.sleep(0.01)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert [o is None for o in outcomes] == [True, True, False, True, True]
    assert isinstance(outcomes[2], StoreError)
    assert "refused" in str(outcomes[2])
    assert actors(tmp_path / "shield.db") == ["g0", "g1", "g3", "g4"]
    assert (await store.verify_audit()).ok
