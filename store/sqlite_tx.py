"""SQLite store internals: opening and migrating the file, translating errors, and every write.

Each change is one ``BEGIN IMMEDIATE`` transaction that also appends its audit record, so a change
and its record land together or not at all. An audit record is appended by one statement
(:data:`APPEND`): it reads the chain's head and computes the record's hash (the SQL function
:data:`HASH_FUNCTION`, registered on the writing connection) under that statement's write lock.
A record with no change (the guard's ``bypass-blocked``, a look-up) is that statement alone, in
autocommit mode: its own transaction, one crossing to the store's thread instead of four. Such
records that queue up behind another write are committed together, in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from callshield.errors import (
    CallShieldError,
    KeyFileError,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
)
from callshield.models import PrefixRule, Scope
from callshield.privacy import mask
from callshield.store.audit import encode_detail, format_at, record_hash
from callshield.store.base import AddResult, ImportRow, NewEntry
from callshield.store.sqlite_schema import APPLICATION, LATEST, MIGRATIONS

PURGE_CHUNK = 1000
HASH_FUNCTION = "callshield_record_hash"
"""``record_hash`` under the store's chain key, as an SQL function of the writing connection."""
APPEND = (
    "INSERT INTO audit (seq, at, actor, action, masked, detail, prev_hash, hash)"
    f" SELECT seq, ?1, ?2, ?3, ?4, ?5, prev, {HASH_FUNCTION}(prev, seq, ?1, ?2, ?3, ?4, ?5)"
    " FROM (SELECT coalesce(head.seq, 0) + 1 AS seq, coalesce(head.hash, zeroblob(32)) AS prev"
    " FROM (SELECT 1) LEFT JOIN (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) AS head)"
)
"""Appends one audit record (at, actor, action, masked, detail) after the chain's head (or first,
after the genesis hash: 32 zero bytes). A writing statement takes its write lock when it starts,
before it reads, so the head it reads is the last one committed by any connection."""


@contextmanager
def translate(path: Path) -> Iterator[None]:
    """Turn sqlite3/OS errors into callshield's store errors (messages name the file, never a number)."""
    try:
        yield
    except CallShieldError:
        raise
    except sqlite3.IntegrityError as e:
        raise StoreError(f"store {path}: {e}") from None
    except sqlite3.OperationalError as e:
        text = str(e)
        if any(w in text for w in ("locked", "busy", "unable to open", "readonly", "disk I/O")):
            raise StoreUnavailable(f"store {path} is unavailable: {text}") from None
        raise StoreError(f"store {path}: {text}") from None
    except sqlite3.DatabaseError as e:
        raise StoreCorrupt(f"store {path} is damaged or not a SQLite database: {e}") from None
    except sqlite3.Error as e:
        raise StoreError(f"store {path}: {e}") from None
    except OSError as e:
        raise StoreUnavailable(f"store {path} cannot be opened: {e.strerror}") from None


async def prepare(path: Path, key_fingerprint: str) -> None:
    """Create or migrate the store file and check it belongs to this key (runs in a thread)."""
    await asyncio.to_thread(_prepare, path, key_fingerprint)


def _prepare(path: Path, key_fingerprint: str) -> None:
    with translate(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("BEGIN IMMEDIATE")
            try:
                _migrate(conn, path, key_fingerprint)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()


def _migrate(conn: sqlite3.Connection, path: Path, key_fingerprint: str) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        version = 0
    elif "meta" not in tables:
        raise StoreCorrupt(f"{path} is a SQLite database but not a callshield store; refusing to touch it")
    else:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("application") != APPLICATION:
            raise StoreCorrupt(f"{path} is not a callshield store; refusing to touch it")
        version = int(meta.get("schema_version", "0"))
        if version > LATEST:
            raise StoreCorrupt(
                f"{path} has schema version {version}, newer than this callshield knows ({LATEST}): upgrade"
            )
        if meta.get("key_fingerprint") != key_fingerprint:
            raise KeyFileError(
                f"the key does not match store {path} (key {key_fingerprint}, store made with "
                f"{meta.get('key_fingerprint')}): use the key file the store was created with"
            )
    for step in range(version, LATEST):
        for statement in _statements(MIGRATIONS[step]):
            conn.execute(statement)
    if version == 0:
        now = format_at(datetime.now(UTC))
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("application", APPLICATION), ("key_fingerprint", key_fingerprint), ("created_at", now)],
        )
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(LATEST),))
    elif version < LATEST:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(LATEST),))


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (trigger bodies contain ';' too)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""


def ts(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def later(a: int | None, b: int | None) -> int | None:
    """The later of two expiries; None (permanent) is latest."""
    return None if a is None or b is None else max(a, b)


def seen_before(known: list[dict[str, Any]], item: Mapping[str, Any]) -> bool:
    """True if ``item`` is a refusal (it has an id) whose evidence the entry already holds."""
    refusal_id = item.get("refusal_id")
    return refusal_id is not None and any(ev.get("refusal_id") == refusal_id for ev in known)


async def open_writer(path: Path, ckey: bytes) -> aiosqlite.Connection:
    """The store's one writing connection, with the chain hash as :data:`HASH_FUNCTION`.

    ``trusted_schema=OFF`` keeps that function to the statements written here: a trigger or a view
    put into the file by someone who can write it but has no key cannot call it (SQLite refuses
    "unsafe use"), so the connection never hashes records of their making.
    """
    writer = await aiosqlite.connect(path, isolation_level=None)
    try:
        await writer.execute("PRAGMA synchronous=FULL")
        await writer.execute("PRAGMA busy_timeout=5000")
        await writer.execute("PRAGMA foreign_keys=ON")
        await writer.execute("PRAGMA trusted_schema=OFF")
        await writer.create_function(HASH_FUNCTION, 7, partial(record_hash, ckey), deterministic=True)
    except BaseException:
        await writer.close()
        raise
    return writer


class Writer:
    """Every write of the SQLite store, serialised on its one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[tuple[str, ...], asyncio.Future[None]]] = []
        """Records alone queued for :meth:`audit_only` (with their callers' futures), in call order."""

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A transaction under the writer's lock."""
        async with self._lock, self._transaction() as db:
            yield db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any failure (the caller holds the lock)."""
        with translate(self._path):
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:  # a failed COMMIT too (a deferred constraint): it stays open
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise

    async def _append(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        await self._db.execute(APPEND, (format_at(now), actor, action, masked, encode_detail(detail)))

    async def audit_only(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        """The record alone, committed when this returns.

        Records that queue up while another write holds the connection are committed together
        (group commit: one transaction, one fsync, three crossings to the store's thread however
        many they are), in the order of the calls; a record that finds the connection free is
        :data:`APPEND` in autocommit mode, its own transaction, one crossing. If a group fails,
        its records are written one by one, so each caller gets its own record's outcome.
        """
        params = (format_at(now), actor, action, masked, encode_detail(detail))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((params, done))
        if len(self._waiting) == 1:  # none queued before: this call writes the queue when its turn comes
            async with self._lock:
                queued, self._waiting = self._waiting, []
                try:
                    await self._commit(queued)
                finally:  # cancelled (the loop closing): no caller is left waiting for ever
                    for _, left in queued:
                        if not left.done():
                            left.set_exception(StoreUnavailable(f"store {self._path}: record not written"))
        await done

    async def _commit(self, queued: list[tuple[tuple[str, ...], asyncio.Future[None]]]) -> None:
        """Commit the queued records (under the lock); settle each one's future."""
        if len(queued) > 1:
            try:
                await self._commit_together([params for params, _ in queued])
            except Exception:  # one of them, or the moment: each is tried on its own below
                pass
            else:
                for _, done in queued:
                    done.set_result(None)
                return
        for params, done in queued:
            try:
                with translate(self._path):
                    await self._db.execute(APPEND, params)
            except Exception as exc:  # this caller's own record failed: it is told so
                done.set_exception(exc)
            else:
                done.set_result(None)

    async def _commit_together(self, records: list[tuple[str, ...]]) -> None:
        async with self._transaction() as db:
            await db.executemany(APPEND, records)

    async def add(self, entry: NewEntry, number_hash: bytes, actor: str, now: datetime) -> AddResult:
        scope, masked = str(entry.scope), mask(entry.e164)
        item = {"at": format_at(now), "source": str(entry.source), "reason": entry.reason, **entry.evidence}
        async with self._tx() as db:
            old = await db.execute_fetchall(
                "SELECT expires_at, evidence FROM entries WHERE number_hash = ? AND scope = ?",
                (number_hash, scope),
            )
            new_exp = ts(entry.expires_at)
            if not old:
                await db.execute(
                    "INSERT INTO entries (number_hash, scope, masked, source, reason, evidence,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        number_hash,
                        scope,
                        masked,
                        entry.source,
                        entry.reason,
                        json.dumps([item]),
                        ts(now),
                        new_exp,
                    ),
                )
                expires = new_exp
            else:
                (old_exp, old_evidence), *_ = old
                expires = later(old_exp, new_exp)
                known = json.loads(old_evidence)
                evidence = known if seen_before(known, item) else [*known, item]
                keep_old = expires == old_exp and old_exp != new_exp
                await db.execute(
                    "UPDATE entries SET expires_at = ?, evidence = ?, source = CASE WHEN ? THEN source"
                    " ELSE ? END, reason = CASE WHEN ? THEN reason ELSE ? END"
                    " WHERE number_hash = ? AND scope = ?",
                    (
                        expires,
                        json.dumps(evidence),
                        keep_old,
                        entry.source,
                        keep_old,
                        entry.reason,
                        number_hash,
                        scope,
                    ),
                )
            detail = {
                "ref": number_hash.hex()[:16],
                "scope": scope,
                "created": not old,
                "expires_at": expires,
                **item,
            }
            await self._append(actor, "add", masked, detail, now)
        return AddResult(not old, None if expires is None else datetime.fromtimestamp(expires, UTC))

    async def remove(
        self, number_hash: bytes, e164: str, scope: Scope | None, actor: str, reason: str, now: datetime
    ) -> int:
        where, params = "number_hash = ?", list[object]([number_hash])
        if scope is not None:
            where, params = where + " AND scope = ?", [number_hash, str(scope)]
        async with self._tx() as db:
            cursor = await db.execute(f"DELETE FROM entries WHERE {where}", params)
            removed = cursor.rowcount
            detail = {
                "ref": number_hash.hex()[:16],
                "scope": str(scope or "all"),
                "removed": removed,
                "reason": reason,
            }
            await self._append(actor, "remove", mask(e164), detail, now)
        return removed

    async def import_rows(self, rows: Sequence[ImportRow]) -> int:
        """Insert a batch in one transaction, skipping rows already there; returns how many were new.

        The rows go in sorted by hash (repeats in their given order): a batch of a narrow key range
        (a bucket of a large import) then writes its pages one after the other. A batch whose rows
        differ only in hash and masked form (any import of a list) is one statement: the hashes as
        one blob, the masked forms as a JSON array, unpacked by ``json_each`` and sorted by SQLite,
        several times faster than ``executemany`` binding eight parameters per row, which the other
        batches (a hash export's rows) use.
        """
        if not rows:
            return 0
        hashes = [row[0] for row in rows]
        tails = {row[2:] for row in rows}
        packed: tuple[object, ...] | None = None
        if len(tails) == 1 and set(map(len, hashes)) == {32}:
            masked = json.dumps([row[1] for row in rows], ensure_ascii=False)
            packed = (b"".join(hashes), masked, *tails.pop())
        else:
            rows = sorted(rows, key=lambda row: row[0])
        async with self._tx() as db:
            if packed is not None:
                cursor = await db.execute(
                    "INSERT INTO entries (number_hash, masked, scope, source, reason, evidence,"
                    " created_at, expires_at) SELECT substr(?1, 32 * j.key + 1, 32), j.value,"
                    " ?3, ?4, ?5, ?6, ?7, ?8 FROM json_each(?2) AS j ORDER BY 1, j.key"
                    " ON CONFLICT DO NOTHING",
                    packed,
                )
            else:
                cursor = await db.executemany(
                    "INSERT INTO entries (number_hash, masked, scope, source, reason, evidence,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    rows,
                )
            return cursor.rowcount

    async def purge(self, actor: str, now: datetime) -> int:
        total = 0
        while True:
            async with self._tx() as db:
                found = list(
                    await db.execute_fetchall(
                        "SELECT number_hash, scope FROM entries"
                        " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
                        (ts(now), PURGE_CHUNK),
                    )
                )
                if not found:
                    return total
                await db.executemany("DELETE FROM entries WHERE number_hash = ? AND scope = ?", found)
                refs = [f"{bytes(h).hex()[:16]}/{s}" for h, s in found]
                await self._append(actor, "purge", "", {"count": len(found), "refs": refs}, now)
                total += len(found)

    async def add_prefix(self, rule: PrefixRule, actor: str) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT OR REPLACE INTO prefixes (prefix, scope, action, reason, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    rule.prefix,
                    str(rule.scope),
                    rule.action,
                    rule.reason,
                    ts(rule.created_at),
                    ts(rule.expires_at),
                ),
            )
            detail = {
                "prefix": rule.prefix,
                "scope": str(rule.scope),
                "action": str(rule.action),
                "reason": rule.reason,
                "expires_at": ts(rule.expires_at),
            }
            await self._append(actor, "prefix-add", "", detail, rule.created_at)

    async def remove_prefix(self, prefix: str, scope: Scope, actor: str, reason: str, now: datetime) -> int:
        async with self._tx() as db:
            cursor = await db.execute(
                "DELETE FROM prefixes WHERE prefix = ? AND scope = ?", (prefix, str(scope))
            )
            detail = {"prefix": prefix, "scope": str(scope), "removed": cursor.rowcount, "reason": reason}
            await self._append(actor, "prefix-remove", "", detail, now)
            return cursor.rowcount
