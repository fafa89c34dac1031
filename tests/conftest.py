"""Fixtures shared by every test folder: keys, clocks, stores on real files and a real PostgreSQL.

PostgreSQL: ``$CALLSHIELD_TEST_PG`` is the DSN of a server the tests may create schemas (and, for
the grants test, roles) on; ``scripts/test`` starts a throwaway one (``scripts/pg``) and sets it.
Without it the PostgreSQL tests are skipped, with the reason, except under ``CI=true``, where
they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from callshield.store.base import ShieldStore
from callshield.store.postgres import PostgresStore
from callshield.store.sqlite import SqliteStore

PG_ENV = "CALLSHIELD_TEST_PG"


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The store backends every contract test runs against."""
    return str(request.param)


def pg_dsn() -> str:
    """The test server's DSN; skips the test without one (fails it under CI)."""
    dsn = os.environ.get(PG_ENV)
    if dsn:
        return dsn
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but ${PG_ENV} is not set: scripts/test starts PostgreSQL (scripts/pg)")
    pytest.skip(f"no PostgreSQL server: set ${PG_ENV} to a DSN, or run scripts/test, which starts one")


@pytest.fixture
def pg_cluster() -> str:
    """The directory of the test server made by ``scripts/pg start`` (for a restart or its log)."""
    found = os.environ.get("CALLSHIELD_TEST_PG_DIR")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but $CALLSHIELD_TEST_PG_DIR is not set (scripts/pg start sets it)")
    pytest.skip("needs a cluster made by scripts/pg start ($CALLSHIELD_TEST_PG_DIR)")


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added (or replaced)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


@asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[str]:
    """An empty schema on the test server, dropped afterwards; yields a store URL that selects it."""
    schema = f"t_{os.urandom(6).hex()}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
    finally:
        await admin.close()
    try:
        yield with_params(dsn, search_path=schema)
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A store URL on the test PostgreSQL server, in a fresh schema of its own."""
    async with fresh_schema(pg_dsn()) as url:
        yield url


@pytest.fixture
async def store(backend: str, key: bytes, tmp_path: Path) -> AsyncIterator[ShieldStore]:
    if backend == "postgresql":
        async with fresh_schema(pg_dsn()) as url:
            opened: ShieldStore = await PostgresStore.open(url, key)
            try:
                yield opened
            finally:
                await opened.close()
        return
    opened = await SqliteStore.open(tmp_path / "shield.db", key)
    try:
        yield opened
    finally:
        await opened.close()
