"""Row <-> message conversion and read queries of the SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache

import aiosqlite
from callshield.models import Action, Matches, PrefixRule, Scope, ShieldEntry, Source
from callshield.store.base import Stats

Row = Sequence[object]


def utc(value: object) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(str(value)), UTC)


def _utc(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)), UTC)


@lru_cache(maxsize=1024)
def scope_of(text: str) -> Scope:
    return Scope.parse(text)


def matches(found: Iterable[Row], number_hash: bytes) -> Matches:
    """The lookup query's rows (kind 0: entry, 1: prefix rule) as :class:`Matches`."""
    entries: list[ShieldEntry] = []
    prefixes: list[PrefixRule] = []
    for kind, scope, text, source, reason, created, expires in found:
        if kind == 0:
            entries.append(
                ShieldEntry(
                    number_hash,
                    str(text),
                    scope_of(str(scope)),
                    Source(str(source)),
                    str(reason),
                    _utc(created),
                    utc(expires),
                )
            )
        else:
            prefixes.append(
                PrefixRule(
                    str(text),
                    Action(str(source)),
                    scope_of(str(scope)),
                    str(reason),
                    _utc(created),
                    utc(expires),
                )
            )
    return Matches(tuple(entries), tuple(prefixes))


ENTRY_COLUMNS = "number_hash, masked, scope, source, reason, created_at, expires_at, evidence"


def entry(row: Row) -> ShieldEntry:
    number_hash, masked, scope, source, reason, created, expires, evidence = row
    return ShieldEntry(
        bytes(number_hash),  # type: ignore[call-overload]
        str(masked),
        scope_of(str(scope)),
        Source(str(source)),
        str(reason),
        _utc(created),
        utc(expires),
        tuple(json.loads(str(evidence))),
    )


def entries_query(
    scope: Scope | None, source: Source | None, active_at: datetime | None
) -> tuple[str, list[object]]:
    where: list[str] = []
    params: list[object] = []
    if scope is not None:
        where.append("scope = ?")
        params.append(str(scope))
    if source is not None:
        where.append("source = ?")
        params.append(str(source))
    if active_at is not None:
        where.append("(expires_at IS NULL OR expires_at > ?)")
        params.append(int(active_at.timestamp()))
    sql = f"SELECT {ENTRY_COLUMNS} FROM entries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY number_hash, scope", params


def prefix_rule(row: Row) -> PrefixRule:
    prefix, scope, action, reason, created, expires = row
    return PrefixRule(
        str(prefix), Action(str(action)), scope_of(str(scope)), str(reason), _utc(created), utc(expires)
    )


async def _count(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> int:
    rows = list(await db.execute_fetchall(sql, params))
    return int(rows[0][0])


async def _grouped(db: aiosqlite.Connection, column: str) -> dict[str, int]:
    rows = await db.execute_fetchall(f"SELECT {column}, count(*) FROM entries GROUP BY {column} ORDER BY 1")
    return {str(k): int(n) for k, n in rows}


async def stats(db: aiosqlite.Connection, now: int) -> Stats:
    entries = await _count(db, "SELECT count(*) FROM entries")
    expired = await _count(
        db, "SELECT count(*) FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
    )
    return Stats(
        entries=entries,
        active=entries - expired,
        expired_pending_purge=expired,
        permanent=await _count(db, "SELECT count(*) FROM entries WHERE expires_at IS NULL"),
        by_source=await _grouped(db, "source"),
        by_scope=await _grouped(db, "scope"),
        prefixes=await _count(db, "SELECT count(*) FROM prefixes"),
        audit_records=await _count(db, "SELECT count(*) FROM audit"),
    )
