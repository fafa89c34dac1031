"""The SQLite store as a file on disk: creation, refusal of wrong files and keys, tamper evidence."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from callshield.errors import KeyFileError, StoreCorrupt, StoreUnavailable
from callshield.keys import fingerprint
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.store import sqlite_schema
from callshield.store.base import NewEntry
from callshield.store.sqlite import SqliteStore
from testkit import T0

N1 = "+8613800138000"


def refusal(number: str = N1) -> NewEntry:
    return NewEntry(number, Scope(), Source.CUSTOMER_OPTOUT, "pressed 9", T0 + timedelta(days=365))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def make_store(path: Path, key: bytes, numbers: tuple[str, ...] = (N1,)) -> None:
    store = await SqliteStore.open(path, key)
    for number in numbers:
        await store.add(refusal(number), "test", T0)
    await store.close()


async def test_a_new_store_is_wal_versioned_and_bound_to_its_key(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "sub" / "shield.db"
    await make_store(path, key)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(sqlite_schema.LATEST)
    assert meta["key_fingerprint"] == fingerprint(key)


async def test_another_key_is_refused_and_the_file_is_untouched(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key)
    before = digest(path)
    with pytest.raises(KeyFileError, match="does not match"):
        await SqliteStore.open(path, os.urandom(32))
    assert digest(path) == before


async def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
    before = digest(path)
    with pytest.raises(StoreCorrupt, match="not a callshield store"):
        await SqliteStore.open(path, key)
    assert digest(path) == before


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 100, os.urandom(8192)])
async def test_a_file_that_is_not_a_database_is_refused_untouched(
    tmp_path: Path, key: bytes, content: bytes
) -> None:
    path = tmp_path / "shield.db"
    path.write_bytes(content)
    with pytest.raises(StoreCorrupt, match="damaged or not a SQLite database"):
        await SqliteStore.open(path, key)
    assert path.read_bytes() == content


async def test_a_store_from_a_newer_version_is_refused(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreCorrupt, match="newer than this callshield"):
        await SqliteStore.open(path, key)


async def test_a_missing_store_is_not_created_when_told_not_to(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await SqliteStore.open(tmp_path / "absent.db", key, create=False)
    assert not (tmp_path / "absent.db").exists()


async def test_forward_migration_keeps_the_data(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key)
    step = "CREATE TABLE later_feature (x INTEGER);"
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", (*sqlite_schema.MIGRATIONS, step))
    monkeypatch.setattr("callshield.store.sqlite_tx.MIGRATIONS", (*sqlite_schema.MIGRATIONS, step))
    monkeypatch.setattr("callshield.store.sqlite_tx.LATEST", sqlite_schema.LATEST + 1)
    store = await SqliteStore.open(path, key)
    assert len((await store.lookup(N1)).entries) == 1
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(sqlite_schema.LATEST + 1),
        )
        db.execute("SELECT x FROM later_feature")


@pytest.mark.parametrize(
    "sql", ["UPDATE audit SET actor = 'mallory' WHERE seq = 1", "DELETE FROM audit WHERE seq = 1"]
)
async def test_the_audit_log_is_append_only(tmp_path: Path, key: bytes, sql: str) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key)
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(sql)


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (
            "UPDATE audit SET detail = replace(detail, 'pressed 9', 'pressed 1') WHERE seq = 2",
            "record 2 was edited",
        ),
        ("UPDATE audit SET actor = 'nobody' WHERE seq = 3", "record 3 was edited"),
        ("DELETE FROM audit WHERE seq = 2", "record 2 is missing"),
        (
            "INSERT INTO audit SELECT 2, at, actor, action, masked, detail, prev_hash, hash FROM audit"
            " WHERE seq = 3; DELETE FROM audit WHERE seq = 3",
            "record 2 does not follow",
        ),
    ],
)
async def test_audit_verify_names_the_first_tampered_record(
    tmp_path: Path, key: bytes, tamper: str, problem: str
) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key, (N1, "+8613900139000", "+8613700137000", "+8613600136000"))
    with sqlite3.connect(path, isolation_level=None) as db:
        db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        if tamper.startswith("INSERT"):
            db.execute("DELETE FROM audit WHERE seq = 2")
        db.executescript(tamper)
    store = await SqliteStore.open(path, key)
    report = await store.verify_audit()
    await store.close()
    assert not report.ok
    assert problem in report.problem


async def test_two_connections_writing_at_once_keep_one_valid_chain(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key, ())
    a, b = await SqliteStore.open(path, key), await SqliteStore.open(path, key)
    numbers = [f"+86138{i:08d}" for i in range(40)]
    await asyncio.gather(
        *(a.add(refusal(n), "a", T0) for n in numbers), *(b.add(refusal(n), "b", T0) for n in numbers)
    )
    report = await a.verify_audit()
    stats = await a.stats(T0)
    await a.close()
    await b.close()
    assert report.ok
    assert (stats.entries, stats.audit_records) == (40, 80)


async def test_no_plaintext_number_reaches_the_file(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key, (N1, "+12025550143"))
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for digits in (b"8613800138000", b"13800138000", b"12025550143", b"2025550143"):
        assert digits not in raw


async def test_a_cancelled_write_does_not_leave_the_store_stuck(tmp_path: Path, key: bytes) -> None:
    path = tmp_path / "shield.db"
    await make_store(path, key, ())
    store = await SqliteStore.open(path, key)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(store.add(refusal(N1), "test", T0), 0.2)
    blocker.execute("ROLLBACK")
    blocker.close()
    await store.add(refusal("+8613900139000"), "test", T0)
    assert len((await store.lookup("+8613900139000")).entries) == 1
    async with asyncio.timeout(10):
        while not (await store.lookup(N1)).entries:
            await asyncio.sleep(0.01)
    assert (await store.verify_audit()).ok
    await store.close()


async def test_prefix_rules_changed_by_another_process_apply_at_the_next_lookup(
    tmp_path: Path, key: bytes
) -> None:
    from callshield.models import Action, PrefixRule

    path = tmp_path / "shield.db"
    await make_store(path, key, ())
    gate_side, cli_side = await SqliteStore.open(path, key), await SqliteStore.open(path, key)
    number = "+8613800138001"
    assert (await gate_side.lookup(number)).prefixes == ()
    await cli_side.add_prefix(PrefixRule("+861380013", Action.BLOCK, Scope(), "range", T0), "op")
    assert [r.prefix for r in (await gate_side.lookup(number)).prefixes] == ["+861380013"]
    await cli_side.add_prefix(PrefixRule(number, Action.ALLOW, Scope(), "vip", T0), "op")
    assert sorted(r.prefix for r in (await gate_side.lookup(number)).prefixes) == ["+861380013", number]
    await cli_side.remove_prefix("+861380013", Scope(), "op", "gone", T0)
    assert [r.prefix for r in (await gate_side.lookup(number)).prefixes] == [number]
    await gate_side.add_prefix(PrefixRule("+86139", Action.BLOCK, Scope(), "own write", T0), "op")
    assert [r.prefix for r in (await gate_side.lookup("+8613900139000")).prefixes] == ["+86139"]
    await gate_side.close()
    await cli_side.close()


async def test_prefix_rules_changed_by_hand_apply_at_the_next_lookup(tmp_path: Path, key: bytes) -> None:
    """The rules' version is bumped by triggers, so even a change made with the sqlite3 shell counts."""
    path = tmp_path / "shield.db"
    await make_store(path, key, numbers=())
    store = await SqliteStore.open(path, key)
    try:
        assert (await store.lookup(N1)).prefixes == ()
        with sqlite3.connect(path) as db:
            db.execute(
                "INSERT INTO prefixes (prefix, scope, action, reason, created_at) "
                "VALUES ('+861380013', 'global', 'BLOCK', 'by hand', 0)"
            )
        assert [r.reason for r in (await store.lookup(N1)).prefixes] == ["by hand"]
        with sqlite3.connect(path) as db:
            db.execute("UPDATE prefixes SET reason = 'edited'")
        assert [r.reason for r in (await store.lookup(N1)).prefixes] == ["edited"]
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM prefixes")
        assert (await store.lookup(N1)).prefixes == ()
    finally:
        await store.close()


async def test_a_schema_1_store_gets_the_prefix_version_and_keeps_its_rules(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shield.db"
    first = sqlite_schema.MIGRATIONS[:1]
    monkeypatch.setattr("callshield.store.sqlite_tx.MIGRATIONS", first)
    monkeypatch.setattr("callshield.store.sqlite_tx.LATEST", 1)
    old = await SqliteStore.open(path, key)
    await old.add_prefix(PrefixRule("+861380013", Action.BLOCK, Scope(), "range", T0), "op")
    await old.close()
    monkeypatch.undo()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    store = await SqliteStore.open(path, key)
    try:
        assert [r.reason for r in (await store.lookup(N1)).prefixes] == ["range"]
        await store.remove_prefix("+861380013", Scope(), "op", "range closed", T0)
        assert (await store.lookup(N1)).prefixes == ()
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
