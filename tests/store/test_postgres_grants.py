"""Least privilege: the README's grants, run as written, let the service role do its work and nothing
more (no table dropped or altered, no audit record rewritten or deleted)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
import pytest
from callshield.errors import StoreError
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.store.base import NewEntry
from callshield.store.postgres import PostgresStore
from testkit import T0

README = Path(__file__).resolve().parents[2] / "README.md"
N1 = "+8613800138000"


def readme_grants() -> str:
    """The README's SQL block that grants the service role its rights."""
    section = README.read_text().split("## Many PBXs, one list: PostgreSQL", 1)[1]
    blocks: list[str] = re.findall(r"```sql\n(.*?)```", section, re.S)
    (grants,) = [b for b in blocks if b.startswith("GRANT USAGE ON SCHEMA")]
    return grants


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, f"{role}:{password}@{parts.hostname}:{parts.port}", parts.path, parts.query, "")
    )


@pytest.fixture
async def service_url(pg_url: str, key: bytes) -> AsyncIterator[str]:
    """The store created by its owner (the test admin), and a URL for a new role given the README's grants."""
    role, password = f"cs_app_{os.urandom(4).hex()}", os.urandom(8).hex()
    schema = dict(parse_qsl(urlsplit(pg_url).query))["search_path"]
    await (await PostgresStore.open(pg_url, key)).close()
    grants = readme_grants().replace("callshield_app", role)
    grants = grants.replace("SCHEMA callshield ", f"SCHEMA {schema} ").replace("callshield.", f"{schema}.")
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await admin.execute(grants)
        yield as_role(pg_url, role, password)
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_the_service_role_can_do_everything_callshield_does(service_url: str, key: bytes) -> None:
    store = await PostgresStore.open(service_url, key)
    try:
        refusal = NewEntry(N1, Scope(), Source.CUSTOMER_OPTOUT, "no", T0 + timedelta(days=1))
        await store.add(refusal, "pbx", T0)
        await store.add(refusal, "pbx", T0)
        assert len((await store.lookup(N1)).entries) == 1
        rows = [(bytes([7]) * 32, "+86139****0000", "global", "import", "l", "[]", 1_700_000_000, None)]
        assert await store.import_rows(rows) == 1
        await store.add_prefix(PrefixRule("+86137", Action.BLOCK, Scope(), "range", T0), "op")
        assert await store.remove_prefix("+86137", Scope(), "op", "done", T0) == 1
        assert await store.purge_expired("purger", T0 + timedelta(days=2)) == 1
        await store.add(refusal, "pbx", T0)
        assert await store.remove(N1, None, "op", "consent", T0) == 1
        assert (await store.stats(T0)).entries == 1
        assert len([e async for e in store.entries()]) == 1
        report = await store.verify_audit()
        assert (report.ok, report.checked) == (True, 7)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "ALTER TABLE audit DISABLE TRIGGER ALL",
        "DROP TABLE entries",
        "DROP TABLE audit",
        "UPDATE meta SET value = 'x'",
        "CREATE TABLE shadow (id int)",
    ],
)
async def test_the_service_role_cannot_rewrite_the_audit_log_or_drop_tables(
    service_url: str, key: bytes, statement: str
) -> None:
    store = await PostgresStore.open(service_url, key)
    await store.add(NewEntry(N1, Scope(), Source.ADMIN, "no", None), "pbx", T0)
    await store.close()
    con = await asyncpg.connect(service_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await con.execute(statement)
        assert await con.fetchval("SELECT count(*) FROM audit") == 1
    finally:
        await con.close()


async def test_a_due_migration_tells_the_service_role_to_run_init_as_owner(
    service_url: str, pg_url: str, key: bytes
) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    finally:
        await admin.close()
    with pytest.raises(StoreError, match="callshield init' once as the role that owns the schema"):
        await PostgresStore.open(service_url, key)
