"""Every write of the PostgreSQL store.

Each audited write is one transaction that first takes the store's transaction-level advisory
lock (:data:`~callshield.store.postgres_schema.AUDIT_LOCK`), then changes the data, reads the audit
head and appends the record chained to it. The lock serialises the appends of every process and
host writing to the store, so the chain never forks; it is released by the commit, after which the
next writer's statements see the new head (READ COMMITTED takes a snapshot per statement, and the
lock is taken by its own statement, before the head is read). The audit table's primary key on
``seq`` backs this up: a second record with the same number cannot be written.

Bulk import is not audited per row and takes no lock: ``INSERT ... ON CONFLICT DO NOTHING`` is safe
against concurrent writers by itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from callshield.models import PrefixRule, Scope
from callshield.privacy import mask
from callshield.store.audit import GENESIS, encode_detail, format_at, record_hash
from callshield.store.base import AddResult, ImportRow, NewEntry
from callshield.store.postgres_schema import AUDIT_LOCK

PURGE_CHUNK = 1000

_UPSERT = """
INSERT INTO entries AS e (number_hash, scope, masked, source, reason, evidence, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
ON CONFLICT (number_hash, scope) DO UPDATE SET
    expires_at = CASE WHEN e.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
                      ELSE greatest(e.expires_at, excluded.expires_at) END,
    evidence = CASE WHEN $9::text IS NOT NULL
                         AND e.evidence @> jsonb_build_array(jsonb_build_object('refusal_id', $9::text))
                    THEN e.evidence ELSE e.evidence || excluded.evidence END,
    source = CASE WHEN {keep} THEN e.source ELSE excluded.source END,
    reason = CASE WHEN {keep} THEN e.reason ELSE excluded.reason END
RETURNING (xmax = 0) AS created, expires_at
""".format(
    # The old entry's source and reason stay only if its expiry is strictly the later one.
    keep="((e.expires_at IS NULL AND excluded.expires_at IS NOT NULL) OR e.expires_at > excluded.expires_at)"
)

_IMPORT_TABLE = """
CREATE TEMPORARY TABLE import_batch (
    number_hash bytea, masked text, scope text, source text, reason text, evidence text,
    created_at bigint, expires_at bigint
) ON COMMIT DROP
"""

_IMPORT = """
INSERT INTO entries (number_hash, masked, scope, source, reason, evidence, created_at, expires_at)
SELECT number_hash, masked, scope, source, reason, evidence::jsonb, to_timestamp(created_at),
       to_timestamp(expires_at)
FROM import_batch
ORDER BY number_hash, scope
ON CONFLICT DO NOTHING
"""

_PACKED_TABLE = "CREATE TEMPORARY TABLE import_packed (number_hash bytea, masked text) ON COMMIT DROP"

_PACKED = """
INSERT INTO entries (number_hash, masked, scope, source, reason, evidence, created_at, expires_at)
SELECT number_hash, masked, $1, $2, $3, $4::jsonb, to_timestamp($5), to_timestamp($6)
FROM import_packed
ORDER BY number_hash
ON CONFLICT DO NOTHING
"""
"""Both inserted in index order: each batch touches every index page once, not once per row. The
packed form is for a batch whose rows differ only in hash and masked form (any import of a list):
only those two columns are copied, the rest is bound once (and the evidence parsed once)."""

_PURGE = """
DELETE FROM entries WHERE (number_hash, scope) IN (
    SELECT number_hash, scope FROM entries WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2)
RETURNING number_hash, scope
"""

_PREFIX_UPSERT = """
INSERT INTO prefixes (prefix, scope, prefix_key, action, reason, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (prefix, scope) DO UPDATE SET
    prefix_key = excluded.prefix_key, action = excluded.action, reason = excluded.reason,
    created_at = excluded.created_at, expires_at = excluded.expires_at
"""


def second(at: datetime | None) -> datetime | None:
    """``at`` to the whole second, as the SQLite store keeps times."""
    return None if at is None else datetime.fromtimestamp(int(at.timestamp()), UTC)


def unix(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def count(status: str) -> int:
    """The row count of a command status (``INSERT 0 5``, ``DELETE 2``)."""
    return int(status.rsplit(" ", 1)[-1])


class Writer:
    """The writes; ``acquire`` is the store's translated pool acquisition."""

    def __init__(self, acquire: Any, ckey: bytes) -> None:
        self._acquire = acquire
        self._ckey = ckey

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """A transaction holding the store's audit lock."""
        async with self._acquire() as con, con.transaction():
            await con.execute(AUDIT_LOCK)
            yield con

    async def _append(
        self, con: Any, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        head = await con.fetchrow("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev = (1, GENESIS) if head is None else (int(head[0]) + 1, bytes(head[1]))
        at, text = format_at(now), encode_detail(detail)
        digest = record_hash(self._ckey, prev, seq, at, actor, action, masked, text)
        await con.execute(
            "INSERT INTO audit (seq, at, actor, action, masked, detail, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            seq,
            at,
            actor,
            action,
            masked,
            text,
            prev,
            digest,
        )

    async def audit_only(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        async with self._tx() as con:
            await self._append(con, actor, action, masked, detail, now)

    async def add(self, entry: NewEntry, number_hash: bytes, actor: str, now: datetime) -> AddResult:
        scope, masked = str(entry.scope), mask(entry.e164)
        item = {"at": format_at(now), "source": str(entry.source), "reason": entry.reason, **entry.evidence}
        async with self._tx() as con:
            created, expires = await con.fetchrow(
                _UPSERT,
                number_hash,
                scope,
                masked,
                str(entry.source),
                entry.reason,
                json.dumps([item]),
                second(now),
                second(entry.expires_at),
                item.get("refusal_id"),
            )
            detail = {
                "ref": number_hash.hex()[:16],
                "scope": scope,
                "created": bool(created),
                "expires_at": unix(expires),
                **item,
            }
            await self._append(con, actor, "add", masked, detail, now)
        return AddResult(bool(created), expires)

    async def remove(
        self, number_hash: bytes, e164: str, scope: Scope | None, actor: str, reason: str, now: datetime
    ) -> int:
        async with self._tx() as con:
            if scope is None:
                status = await con.execute("DELETE FROM entries WHERE number_hash = $1", number_hash)
            else:
                status = await con.execute(
                    "DELETE FROM entries WHERE number_hash = $1 AND scope = $2", number_hash, str(scope)
                )
            removed = count(status)
            detail = {
                "ref": number_hash.hex()[:16],
                "scope": str(scope or "all"),
                "removed": removed,
                "reason": reason,
            }
            await self._append(con, actor, "remove", mask(e164), detail, now)
        return removed

    async def import_rows(self, rows: Sequence[ImportRow]) -> int:
        """COPY the batch into a temporary table, then insert what is not there yet.

        COPY is the cheapest way in (binary, no per-row statement); the ``INSERT ... SELECT`` then
        does what COPY cannot: skip what is already there (``ON CONFLICT DO NOTHING``, safe against
        concurrent writers) and report how many rows were new.
        """
        if not rows:
            return 0
        tails = {row[2:] for row in rows}
        async with self._acquire() as con, con.transaction():
            if len(tails) == 1 and all(len(row[0]) == 32 for row in rows):
                await con.execute(_PACKED_TABLE)
                await con.copy_records_to_table("import_packed", records=[row[:2] for row in rows])
                return count(await con.execute(_PACKED, *tails.pop()))
            await con.execute(_IMPORT_TABLE)
            await con.copy_records_to_table("import_batch", records=rows)
            return count(await con.execute(_IMPORT))

    async def purge(self, actor: str, now: datetime) -> int:
        total = 0
        while True:
            async with self._tx() as con:
                found = await con.fetch(_PURGE, second(now), PURGE_CHUNK)
                if not found:
                    return total
                refs = [f"{bytes(h).hex()[:16]}/{s}" for h, s in found]
                await self._append(con, actor, "purge", "", {"count": len(found), "refs": refs}, now)
                total += len(found)

    async def add_prefix(self, rule: PrefixRule, prefix_key: int, actor: str) -> None:
        async with self._tx() as con:
            await con.execute(
                _PREFIX_UPSERT,
                rule.prefix,
                str(rule.scope),
                prefix_key,
                str(rule.action),
                rule.reason,
                second(rule.created_at),
                second(rule.expires_at),
            )
            detail = {
                "prefix": rule.prefix,
                "scope": str(rule.scope),
                "action": str(rule.action),
                "reason": rule.reason,
                "expires_at": unix(rule.expires_at),
            }
            await self._append(con, actor, "prefix-add", "", detail, rule.created_at)

    async def remove_prefix(self, prefix: str, scope: Scope, actor: str, reason: str, now: datetime) -> int:
        async with self._tx() as con:
            status = await con.execute(
                "DELETE FROM prefixes WHERE prefix = $1 AND scope = $2", prefix, str(scope)
            )
            removed = count(status)
            detail = {"prefix": prefix, "scope": str(scope), "removed": removed, "reason": reason}
            await self._append(con, actor, "prefix-remove", "", detail, now)
            return removed
