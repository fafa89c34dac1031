"""The PostgreSQL store on a real server: creation and refusal of wrong schemas and keys, logins and
passwords, errors, tamper evidence.

Each test gets a fresh schema (the ``pg_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from callshield.errors import ConfigError, KeyFileError, StoreCorrupt, StoreError, StoreUnavailable
from callshield.keys import fingerprint
from callshield.models import Action, PrefixRule, Scope
from callshield.privacy import keyed_hash
from callshield.store import open_store, postgres_schema
from callshield.store.postgres import PostgresStore
from testkit import N1, T0, refusal


def with_params(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def without_password(url: str) -> tuple[str, str]:
    """The URL without its password, and the password."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), str(parts.password)


async def sql(url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    """Run one statement on the store's schema as the test server's admin."""
    con = await asyncpg.connect(url)
    try:
        return list(await con.fetch(statement, *args))
    finally:
        await con.close()


async def test_a_new_store_is_versioned_and_bound_to_its_key(pg_url: str, key: bytes) -> None:
    store = await open_store(pg_url, key)
    assert isinstance(store, PostgresStore)
    await store.add(refusal(), "test", T0)
    await store.close()
    meta = {r["key"]: r["value"] for r in await sql(pg_url, "SELECT key, value FROM meta")}
    assert meta["application"] == "callshield"
    assert meta["schema_version"] == str(postgres_schema.LATEST)
    assert meta["key_fingerprint"] == fingerprint(key)
    (row,) = await sql(pg_url, "SELECT number_hash, masked FROM entries")
    assert (len(row["number_hash"]), row["masked"]) == (32, "+86138****8000")


async def test_another_key_is_refused_and_nothing_is_written(pg_url: str, key: bytes) -> None:
    await (await PostgresStore.open(pg_url, key)).close()
    with pytest.raises(KeyFileError, match="does not match"):
        await PostgresStore.open(pg_url, os.urandom(32))
    assert await sql(pg_url, "SELECT count(*) FROM audit") == [(0,)]


async def test_without_create_an_empty_schema_is_refused(pg_url: str, key: bytes) -> None:
    with pytest.raises(StoreUnavailable, match="callshield init"):
        await open_store(pg_url, key, create=False)
    assert await sql(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


async def test_foreign_tables_are_refused_untouched(pg_url: str, key: bytes) -> None:
    await sql(pg_url, "CREATE TABLE invoices (id int)")
    with pytest.raises(StoreCorrupt, match="not a callshield store"):
        await PostgresStore.open(pg_url, key)
    tables = await sql(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert [r[0] for r in tables] == ["invoices"]


async def test_a_store_from_a_newer_callshield_is_refused(pg_url: str, key: bytes) -> None:
    await (await PostgresStore.open(pg_url, key)).close()
    await sql(pg_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreCorrupt, match="newer than this callshield"):
        await PostgresStore.open(pg_url, key)


async def test_processes_opening_a_new_store_at_once_create_it_once(pg_url: str, key: bytes) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(pg_url, key) for _ in range(4)))
    for store in stores:
        await store.close()
    assert await sql(pg_url, "SELECT count(*) FROM meta WHERE key = 'schema_version'") == [(1,)]


async def test_a_missing_schema_or_database_is_unavailable(pg_url: str, key: bytes) -> None:
    with pytest.raises(StoreUnavailable, match="no schema"):
        await PostgresStore.open(with_params(pg_url, search_path="no_such_schema"), key)
    parts = urlsplit(pg_url)
    other = urlunsplit((parts.scheme, parts.netloc, "/no_such_database", parts.query, ""))
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await PostgresStore.open(other, key)


async def test_an_unreachable_server_is_unavailable_quickly(key: bytes) -> None:
    with pytest.raises(StoreUnavailable, match="unavailable") as caught:
        async with asyncio.timeout(20):
            await PostgresStore.open("postgresql://callshield:secret@127.0.0.1:1/callshield", key)
    assert "secret" not in str(caught.value)
    assert "postgresql://127.0.0.1:1/callshield" in str(caught.value)


async def test_a_wrong_password_is_a_configuration_error_that_shows_no_password(
    pg_url: str, key: bytes
) -> None:
    bare, _ = without_password(pg_url)
    wrong = bare.replace("@", ":not-the-password@", 1)
    with pytest.raises(ConfigError, match="refused the login") as caught:
        await PostgresStore.open(wrong, key)
    assert "not-the-password" not in str(caught.value)


async def test_the_password_can_come_from_the_environment(
    pg_url: str, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare, password = without_password(pg_url)
    monkeypatch.setenv("PGPASSWORD", password)
    await (await PostgresStore.open(bare, key)).close()


async def test_the_password_can_come_from_a_private_file(pg_url: str, key: bytes, tmp_path: Path) -> None:
    bare, password = without_password(pg_url)
    secret = tmp_path / "pg.password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    store = await PostgresStore.open(with_params(bare, password_file=str(secret)), key)
    assert password not in repr(store.location)
    await store.close()
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        await PostgresStore.open(with_params(bare, password_file=str(secret)), key)


async def test_the_audit_log_is_append_only_even_for_its_owner(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    await store.add(refusal(), "test", T0)
    await store.close()
    for statement in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit", "TRUNCATE audit"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await sql(pg_url, statement)
    assert await sql(pg_url, "SELECT count(*) FROM audit") == [(1,)]


async def test_an_edited_audit_record_is_found_by_verify(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    for number in (N1, "+8613900139000", "+8613700137000"):
        await store.add(refusal(number), "test", T0)
    con = await asyncpg.connect(pg_url)
    try:
        await con.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update_delete")
        await con.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    finally:
        await con.close()
    report = await store.verify_audit()
    await store.close()
    assert not report.ok
    assert "record 2 was edited" in report.problem


async def test_a_closed_store_raises_unavailable(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.lookup(N1)
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.add(refusal(), "test", T0)


async def test_a_server_error_is_a_store_error(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    try:
        await sql(pg_url, "DROP TABLE prefixes")
        with pytest.raises(StoreCorrupt, match="missing a table"):
            await store.prefixes()
        with pytest.raises(StoreError):
            await store.lookup(N1)
    finally:
        await store.close()


def test_store_urls_never_show_the_password() -> None:
    from callshield.store import describe
    from callshield.store.postgres_conn import parse_location

    assert describe("postgresql://app:s3cret@db:5432/shield?password=x&search_path=cs") == (
        "postgresql://app@db:5432/shield?search_path=cs"
    )
    assert describe("/var/lib/callshield/shield.db") == "/var/lib/callshield/shield.db"
    loc = parse_location("postgresql://app:s3cret@db.example:6432/shield?search_path=cs&pool_max=3")
    assert loc.where == "postgresql://db.example:6432/shield"
    assert (loc.pool_max, "s3cret" in repr(loc)) == (3, False)
    assert "pool_max" not in loc.dsn and "search_path=cs" in loc.dsn
    with pytest.raises(ConfigError, match="must be positive numbers"):
        parse_location("postgresql://db/shield?pool_max=many")
    assert parse_location("postgresql://").where == "postgresql://localhost/"
    assert parse_location("postgresql://u:p@db1:5432,db2:5433/x").where == "postgresql://db1:5432,db2:5433/x"


async def test_a_rule_changed_anywhere_is_in_force_in_the_next_look_up_of_every_store(
    pg_url: str, key: bytes
) -> None:
    """Look-ups keep the prefix rules by version: a change made through another store (process) or
    by hand in SQL is seen by the very next look-up, and an unchanged version reads no rules."""
    number = "+8613812345678"
    this, other = await PostgresStore.open(pg_url, key), await PostgresStore.open(pg_url, key)
    admin = await asyncpg.connect(pg_url)
    try:
        assert (await this.lookup(number)).prefixes == ()
        await other.add_prefix(PrefixRule("+86138", Action.BLOCK, Scope(), "range", T0), "op")
        assert [p.prefix for p in (await this.lookup(number)).prefixes] == ["+86138"]
        await other.add_prefix(PrefixRule("+8613812", Action.ALLOW, Scope("acme"), "ok", T0), "op")
        await other.add_prefix(PrefixRule("+86139", Action.BLOCK, Scope(), "other range", T0), "op")
        found = (await this.lookup(number)).prefixes
        assert sorted((p.prefix, p.action, p.scope) for p in found) == [
            ("+86138", Action.BLOCK, Scope()),
            ("+8613812", Action.ALLOW, Scope("acme")),
        ]
        assert [p.prefix for p in (await this.lookup("+8613912345678")).prefixes] == ["+86139"]
        await other.remove_prefix("+86138", Scope(), "op", "done", T0)
        assert [p.prefix for p in (await this.lookup(number)).prefixes] == ["+8613812"]
        await admin.execute("UPDATE prefixes SET reason = 'edited' WHERE prefix = '+8613812'")
        assert [p.reason for p in (await this.lookup(number)).prefixes] == ["edited"]
        await admin.execute("TRUNCATE prefixes")
        assert (await this.lookup(number)).prefixes == ()
    finally:
        await admin.close()
        await this.close()
        await other.close()


async def test_the_keyed_hash_of_the_store_is_the_plain_one(pg_url: str, key: bytes) -> None:
    store = await PostgresStore.open(pg_url, key)
    try:
        assert store.hash("+8613800138000") == keyed_hash(key, "+8613800138000")
    finally:
        await store.close()


async def test_a_version_1_store_is_migrated_and_keeps_its_rules_in_force(pg_url: str, key: bytes) -> None:
    """A store made before the prefix-rule version (schema 1, a rule in it) is brought to the latest
    schema on open; its rule is found, and later changes are seen by look-ups."""
    store = await PostgresStore.open(pg_url, key)
    await store.add_prefix(PrefixRule("+86138", Action.BLOCK, Scope(), "range", T0), "op")
    await store.close()
    await sql(pg_url, "DROP TRIGGER prefixes_changed ON prefixes")
    await sql(pg_url, "DROP FUNCTION prefixes_changed()")
    await sql(pg_url, "DELETE FROM meta WHERE key = 'prefix_version'")
    await sql(pg_url, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store = await PostgresStore.open(pg_url, key)
    try:
        assert [p.prefix for p in (await store.lookup("+8613812345678")).prefixes] == ["+86138"]
        await sql(pg_url, "DELETE FROM prefixes")
        assert (await store.lookup("+8613812345678")).prefixes == ()
    finally:
        await store.close()
    meta = dict(await sql(pg_url, "SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(postgres_schema.LATEST) == "2"


async def test_a_look_up_running_too_long_is_cut_and_the_next_one_works(pg_url: str, key: bytes) -> None:
    """Look-up connections have no timer per statement: a watchdog cuts a statement that runs past
    the store's command_timeout (raising TimeoutError, a lost connection), and the next look-up
    runs on a fresh connection."""
    store = await PostgresStore.open(pg_url + "&command_timeout=0.4", key)
    try:
        readers = store._readers
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await readers.fetch("SELECT pg_sleep(30)")
        assert asyncio.get_running_loop().time() - started < 10
        assert await readers.fetch("SELECT 1") == [(1,)]
        assert (await store.lookup(N1)).entries == ()
        admin = await asyncpg.connect(pg_url)
        try:
            async with admin.transaction():  # the look-up waits for this lock, past its timeout
                await admin.execute("LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(StoreUnavailable, match="timed out"):
                    await store.lookup(N1)
        finally:
            await admin.close()
        assert (await store.lookup(N1)).entries == ()
    finally:
        await store.close()
