"""The embedded shield store: one SQLite file, WAL, through aiosqlite.

Writes go through one aiosqlite connection (its own thread), each change in a ``BEGIN IMMEDIATE``
transaction together with its audit record, ``synchronous=FULL`` so that a committed refusal
survives a power cut. A caller that is cancelled (a timeout) does not cancel its write: the
transaction finishes (commit or rollback) in the background, so the connection is never left
inside a half-done transaction.

The gate's :meth:`SqliteStore.lookup` is the one exception to the thread: it is one index point
look-up (6-9 us) on a read-only connection, run inline on the event loop, because every aiosqlite
await is a thread hop that costs 60-340 us here. Prefix rules are few and rarely change: they are
kept in memory and reloaded when their version (``meta.prefix_version``, bumped by triggers on
every change, by any connection or by hand) differs; the version comes with the entries, in the
look-up's one statement.
WAL readers never wait for writers; if SQLite ever answers BUSY (WAL recovery after a crash), the
look-up falls back to the aiosqlite thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
from callshield.errors import StoreUnavailable
from callshield.keys import fingerprint
from callshield.models import Matches, PrefixRule, Scope, ShieldEntry, Source
from callshield.store import sqlite_rows as rows
from callshield.store.audit import AuditRecord, chain_key
from callshield.store.base import (
    AddResult,
    ImportRow,
    NewEntry,
    ShieldStore,
    Stats,
    prefix_candidates,
)
from callshield.store.sqlite_tx import Writer, open_writer, prepare, translate

log = logging.getLogger(__name__)

_ENTRIES = (
    "SELECT 0, scope, masked, source, reason, created_at, expires_at FROM entries WHERE number_hash = ?"
    " UNION ALL SELECT 2, NULL, NULL, NULL, NULL, NULL, value FROM meta WHERE key = 'prefix_version'"
)
"""The number's entries, then (kind 2) the prefix rules' version."""
_PREFIX_RULES = "SELECT 1, scope, prefix, action, reason, created_at, expires_at FROM prefixes"
_LOOKUP = (
    "SELECT 0, scope, masked, source, reason, created_at, expires_at FROM entries WHERE number_hash = ?"
    " UNION ALL SELECT 1, scope, prefix, action, reason, created_at, expires_at FROM prefixes"
    " WHERE prefix IN (" + ",".join("?" * 15) + ")"
)


class SqliteStore(ShieldStore):
    """Open with :meth:`open`; see the module docstring for how the work is split."""

    inline_lookup = True

    def __init__(self, path: Path, key: bytes, writer: aiosqlite.Connection, reader: sqlite3.Connection):
        super().__init__(key)
        self.path = path
        self._db = writer
        self._reader = reader
        self._w = Writer(writer, path)
        self._rules: dict[str, list[rows.Row]] = {}
        self._rules_version: object = None
        self._cursor = reader.cursor()

    @classmethod
    async def open(cls, path: Path, key: bytes, *, create: bool = True) -> SqliteStore:
        """Open (creating and migrating as needed) the store at ``path`` with the deployment key.

        Raises StoreUnavailable (missing with ``create=False``, unreadable), StoreCorrupt (damaged,
        foreign, or from a newer callshield) or KeyFileError (the store belongs to another key).
        """
        if not create and not path.exists():
            raise StoreUnavailable(f"store {path} does not exist (run 'callshield init')")
        await prepare(path, fingerprint(key))
        with translate(path):
            writer = await open_writer(path, chain_key(key))
            reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout=0")
        return cls(path, key, writer, reader)

    async def lookup(self, e164: str) -> Matches:
        number_hash = self.hash(e164)
        try:
            found = self._lookup_inline(number_hash, e164)
        except sqlite3.Error as e:
            found = await self._lookup_on_thread(number_hash, e164, e)
        return rows.matches(found, number_hash)

    def _lookup_inline(self, number_hash: bytes, e164: str) -> list[rows.Row]:
        """The number's entries and the prefix rules' version in one query; the rules (a handful,
        rarely changed) from memory, reloaded whenever their version is not the one kept."""
        found: list[rows.Row] = self._cursor.execute(_ENTRIES, (number_hash,)).fetchall()
        version = found.pop()[6] if found and found[-1][0] == 2 else None
        if version != self._rules_version or version is None:
            table: dict[str, list[rows.Row]] = {}
            for rule in self._reader.execute(_PREFIX_RULES):
                table.setdefault(rule[2], []).append(rule)
            self._rules, self._rules_version = table, version
        if self._rules:
            for n in range(2, len(e164) + 1):
                found.extend(self._rules.get(e164[:n], ()))
        return found

    async def _lookup_on_thread(self, number_hash: bytes, e164: str, error: sqlite3.Error) -> list[rows.Row]:
        """SQLite answered BUSY inline (WAL recovery after a crash): ask again on the store thread,
        where a busy timeout may wait. Any other error is translated and raised."""
        try:
            with translate(self.path):
                raise error
        except StoreUnavailable:
            log.info("inline look-up busy, retrying on the store thread")
        with translate(self.path):
            return list(await self._db.execute_fetchall(_LOOKUP, self._lookup_params(number_hash, e164)))

    @staticmethod
    def _lookup_params(number_hash: bytes, e164: str) -> tuple[object, ...]:
        candidates = prefix_candidates(e164)
        candidates += [candidates[-1]] * (15 - len(candidates))
        return (number_hash, *candidates[:15])

    async def add(self, entry: NewEntry, actor: str, now: datetime) -> AddResult:
        return await asyncio.shield(self._w.add(entry, self.hash(entry.e164), actor, now))

    async def remove(self, e164: str, scope: Scope | None, actor: str, reason: str, now: datetime) -> int:
        return await asyncio.shield(self._w.remove(self.hash(e164), e164, scope, actor, reason, now))

    async def import_rows(self, batch: Sequence[ImportRow]) -> int:
        return await asyncio.shield(self._w.import_rows(batch))

    async def entries(
        self, scope: Scope | None = None, source: Source | None = None, active_at: datetime | None = None
    ) -> AsyncIterator[ShieldEntry]:
        sql, params = rows.entries_query(scope, source, active_at)
        with translate(self.path):
            async with self._db.execute(sql, params) as cursor:
                cursor.arraysize = 1000
                while batch := await cursor.fetchmany():
                    for row in batch:
                        yield rows.entry(row)

    async def purge_expired(self, actor: str, now: datetime) -> int:
        return await asyncio.shield(self._w.purge(actor, now))

    async def add_prefix(self, rule: PrefixRule, actor: str) -> None:
        await asyncio.shield(self._w.add_prefix(rule, actor))

    async def remove_prefix(self, prefix: str, scope: Scope, actor: str, reason: str, now: datetime) -> int:
        return await asyncio.shield(self._w.remove_prefix(prefix, scope, actor, reason, now))

    async def prefixes(self) -> list[PrefixRule]:
        with translate(self.path):
            found = await self._db.execute_fetchall(
                "SELECT prefix, scope, action, reason, created_at, expires_at FROM prefixes ORDER BY prefix"
            )
        return [rows.prefix_rule(r) for r in found]

    async def audit(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        await asyncio.shield(self._w.audit_only(actor, action, masked, detail, now))

    async def audit_records(self, since_seq: int = 0) -> AsyncIterator[AuditRecord]:
        sql = (
            "SELECT seq, at, actor, action, masked, detail, prev_hash, hash FROM audit"
            " WHERE seq > ? ORDER BY seq"
        )
        with translate(self.path):
            async with self._db.execute(sql, (since_seq,)) as cursor:
                cursor.arraysize = 1000
                while batch := await cursor.fetchmany():
                    for r in batch:
                        yield AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]))

    async def stats(self, now: datetime) -> Stats:
        with translate(self.path):
            return await rows.stats(self._db, int(now.timestamp()))

    async def close(self) -> None:
        self._reader.close()
        await self._db.close()
