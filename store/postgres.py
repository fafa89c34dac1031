"""The shared shield store: one PostgreSQL database for several PBXs, through an asyncpg pool.

Every ``callshield`` process (each PBX's ``callshield serve``, the operators' CLI) opens its own
pool against the same database, so a refusal committed through one is in the very next look-up
through any other. Numbers travel and rest only as keyed hashes: the look-up sends the number's
hash and keyed hashes of its prefixes (see :mod:`callshield.store.postgres_schema`).

- :meth:`PostgresStore.lookup`, the gate's hot path, is one statement and one round trip: the
  number's entries and the prefix rules of its prefixes, on a connection from a bare free list
  (:mod:`callshield.store.postgres_read`), planned once per connection.
- Writes (:mod:`callshield.store.postgres_tx`) append their audit record in the same transaction,
  under an advisory lock that keeps one chain across processes.
- A lost connection (server restarted, network cut) expires every idle connection, so each is
  replaced on its next use; a look-up, being a read, is retried once on a fresh connection. While
  the server is away, calls raise :class:`~callshield.errors.StoreUnavailable` (the gate blocks).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

from callshield.errors import StoreUnavailable
from callshield.keys import fingerprint
from callshield.models import Matches, PrefixRule, Scope, ShieldEntry, Source
from callshield.store import postgres_rows as rows
from callshield.store.audit import AuditRecord
from callshield.store.base import AddResult, ImportRow, NewEntry, ShieldStore, Stats
from callshield.store.postgres_conn import (
    PgLocation,
    connect,
    create_pool,
    is_lost,
    parse_location,
    translate_error,
    translated,
)
from callshield.store.postgres_read import Readers
from callshield.store.postgres_schema import prepare
from callshield.store.postgres_tx import Writer

log = logging.getLogger(__name__)

CLOSE_GRACE = 10.0
"""Seconds :meth:`PostgresStore.close` waits for connections in use before cutting them."""


def prefix_key_key(key: bytes) -> bytes:
    """The key of the prefix hashes, derived from the deployment key."""
    return hmac.new(key, b"callshield prefix key v1", hashlib.sha256).digest()


class PostgresStore(ShieldStore):
    """Open with :meth:`open`; see the module docstring."""

    def __init__(self, location: PgLocation, key: bytes, pool: Any) -> None:
        super().__init__(key)
        self.location = location
        self._where = location.where
        self._pool = pool
        self._pkey = prefix_key_key(key)
        self._rules = rows.Rules(())
        self._w = Writer(self._connection, self._ckey)
        readers = partial(connect, location, command_timeout=False)
        self._readers = Readers(readers, location.pool_max, location.command_timeout)
        self._closed = False

    @classmethod
    async def open(cls, url: str, key: bytes, *, create: bool = True) -> PostgresStore:
        """Connect, and create or migrate the store in the URL's schema as needed.

        Raises StoreUnavailable (server unreachable, database or store missing), ConfigError (bad
        URL, login refused), StoreCorrupt (foreign tables, newer schema) or KeyFileError (the store
        belongs to another key).
        """
        location = parse_location(url)
        with translated(location.where):
            pool = await create_pool(location)
        try:
            with translated(location.where):
                async with pool.acquire() as con:
                    await prepare(con, fingerprint(key), location.where, create=create)
        except BaseException:
            pool.terminate()
            raise
        return cls(location, key, pool)

    def prefix_key(self, prefix: str) -> int:
        """The 64-bit keyed hash (BLAKE2b under a derived key) under which a prefix rule is found."""
        digest = hashlib.blake2b(prefix.encode("ascii"), key=self._pkey, digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; errors in the body come out as callshield's store errors."""
        try:
            async with self._pool.acquire() as con:
                yield con
        except Exception as e:
            await self._lost(e)
            raise translate_error(e, self._where) from None

    async def _lost(self, error: Exception) -> None:
        if is_lost(error) and not self._closed:
            log.warning("store %s: connection lost (%s); reconnecting", self._where, type(error).__name__)
            self._readers.expire()
            await self._pool.expire_connections()

    async def lookup(self, e164: str) -> Matches:
        number_hash = self.hash(e164)
        entries, version = rows.entries_and_version(await self._read(rows.LOOKUP, number_hash), number_hash)
        rules = self._rules
        if version != rules.version:
            rules = self._rules = rows.Rules(await self._read(rows.RULES))
        return Matches(tuple(entries), rules.of(e164))

    async def _read(self, sql: str, *args: object) -> Any:
        """One read statement; after a lost connection, one more try on a fresh one (it is a read)."""
        try:
            return await self._fetch(sql, *args)
        except Exception as e:
            if not is_lost(e) or self._closed:
                raise translate_error(e, self._where) from None
            await self._lost(e)
        with translated(self._where):
            return await self._fetch(sql, *args)

    def _fetch(self, sql: str, *args: object) -> Awaitable[Any]:
        """The statement on a free-list connection (the pool's when the list is full)."""
        if self._closed:
            raise StoreUnavailable(f"store {self._where} is closed")
        if self._readers.full:
            return self._pool.fetch(sql, *args)  # type: ignore[no-any-return]
        return self._readers.fetch(sql, *args)

    async def add(self, entry: NewEntry, actor: str, now: datetime) -> AddResult:
        return await self._w.add(entry, self.hash(entry.e164), actor, now)

    async def remove(self, e164: str, scope: Scope | None, actor: str, reason: str, now: datetime) -> int:
        return await self._w.remove(self.hash(e164), e164, scope, actor, reason, now)

    async def import_rows(self, batch: Sequence[ImportRow]) -> int:
        return await self._w.import_rows(batch)

    async def entries(
        self, scope: Scope | None = None, source: Source | None = None, active_at: datetime | None = None
    ) -> AsyncIterator[ShieldEntry]:
        after: tuple[bytes, str] | None = None
        while True:
            sql, params = rows.entries_page(scope, source, active_at, after)
            async with self._connection() as con:
                page = await con.fetch(sql, *params)
            for row in page:
                yield rows.entry(row)
            if len(page) < rows.PAGE:
                return
            after = (bytes(page[-1][0]), str(page[-1][2]))

    async def purge_expired(self, actor: str, now: datetime) -> int:
        return await self._w.purge(actor, now)

    async def add_prefix(self, rule: PrefixRule, actor: str) -> None:
        await self._w.add_prefix(rule, self.prefix_key(rule.prefix), actor)

    async def remove_prefix(self, prefix: str, scope: Scope, actor: str, reason: str, now: datetime) -> int:
        return await self._w.remove_prefix(prefix, scope, actor, reason, now)

    async def prefixes(self) -> list[PrefixRule]:
        async with self._connection() as con:
            found = await con.fetch(rows.PREFIXES)
        return [rows.prefix_rule(r) for r in found]

    async def audit(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        await self._w.audit_only(actor, action, masked, detail, now)

    async def audit_records(self, since_seq: int = 0) -> AsyncIterator[AuditRecord]:
        while True:
            async with self._connection() as con:
                page = await con.fetch(rows.AUDIT_PAGE, since_seq, rows.PAGE)
            for row in page:
                yield rows.audit_record(row)
            if len(page) < rows.PAGE:
                return
            since_seq = int(page[-1][0])

    async def stats(self, now: datetime) -> Stats:
        async with self._connection() as con:
            return await rows.stats(con, now)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._readers.close()
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_GRACE)
        except Exception as e:
            log.warning("store %s: closing the pool failed (%s); cutting connections", self._where, e)
            self._pool.terminate()
