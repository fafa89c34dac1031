"""Row <-> message conversion and the read queries of the PostgreSQL store."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from callshield.models import Action, PrefixRule, Scope, ShieldEntry, Source
from callshield.store.audit import AuditRecord
from callshield.store.base import Stats

PAGE = 1000
"""Rows per page of the streaming reads (keyset pagination: no transaction stays open between pages)."""

LOOKUP = """
SELECT 0, scope, masked, source, reason, created_at, expires_at FROM entries WHERE number_hash = $1
UNION ALL
SELECT 1, NULL, value, NULL, NULL, NULL, NULL FROM meta WHERE key = 'prefix_version'
"""
"""The gate's one statement: the number's entries (all scopes, kind 0) and the version of the prefix
rules (kind 1), in one snapshot."""

RULES = """
SELECT 1, NULL, value, NULL, NULL, NULL, NULL FROM meta WHERE key = 'prefix_version'
UNION ALL
SELECT 0, scope, prefix, action, reason, created_at, expires_at FROM prefixes
"""
"""Every prefix rule (kind 0) and the version they are (kind 1), in one snapshot."""

ENTRY_COLUMNS = "number_hash, masked, scope, source, reason, created_at, expires_at, evidence::text"

AUDIT_PAGE = (
    "SELECT seq, at, actor, action, masked, detail, prev_hash, hash FROM audit"
    " WHERE seq > $1 ORDER BY seq LIMIT $2"
)

PREFIXES = (
    "SELECT prefix, scope, action, reason, created_at, expires_at FROM prefixes"
    ' ORDER BY prefix COLLATE "C", scope COLLATE "C"'
)


@lru_cache(maxsize=1024)
def scope_of(text: str) -> Scope:
    return Scope.parse(text)


_SOURCES = {str(s): s for s in Source}
_ACTIONS = {str(a): a for a in Action}


class Rules:
    """The prefix rules of one version, by prefix (what a look-up keeps between look-ups)."""

    def __init__(self, found: Iterable[Sequence[Any]]) -> None:
        self.version: str | None = None
        by_prefix: dict[str, tuple[PrefixRule, ...]] = {}
        for kind, scope, prefix, action, reason, created, expires in found:
            if kind == 1:
                self.version = str(prefix)
                continue
            rule = PrefixRule(
                prefix, _ACTIONS.get(action) or Action(action), scope_of(scope), reason, created, expires
            )
            by_prefix[prefix] = (*by_prefix.get(prefix, ()), rule)
        self._by_prefix = by_prefix
        self._lengths = sorted({len(prefix) for prefix in by_prefix})
        """The lengths of the prefixes there are rules for: only those are looked up."""

    def of(self, e164: str) -> tuple[PrefixRule, ...]:
        """The rules whose prefix ``e164`` starts with."""
        found: tuple[PrefixRule, ...] = ()
        for length in self._lengths:
            rules = self._by_prefix.get(e164[:length])
            if rules is not None and length <= len(e164):
                found += rules
        return found


def entries_and_version(
    found: Iterable[Sequence[Any]], number_hash: bytes
) -> tuple[list[ShieldEntry], str | None]:
    """The look-up's rows as the number's entries and the version of the prefix rules."""
    entries: list[ShieldEntry] = []
    version = None
    for kind, scope, text, source, reason, created, expires in found:
        if kind == 1:
            version = str(text)
        else:
            entries.append(
                ShieldEntry(
                    number_hash,
                    text,
                    scope_of(scope),
                    _SOURCES.get(source) or Source(source),
                    reason,
                    created,
                    expires,
                )
            )
    return entries, version


def entry(row: Sequence[Any]) -> ShieldEntry:
    number_hash, masked, scope, source, reason, created, expires, evidence = row
    return ShieldEntry(
        bytes(number_hash),
        str(masked),
        scope_of(str(scope)),
        Source(str(source)),
        str(reason),
        created,
        expires,
        tuple(json.loads(str(evidence))),
    )


def prefix_rule(row: Sequence[Any]) -> PrefixRule:
    prefix, scope, action, reason, created, expires = row
    return PrefixRule(str(prefix), Action(str(action)), scope_of(str(scope)), str(reason), created, expires)


def audit_record(r: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), bytes(r[6]), bytes(r[7])
    )


def entries_page(
    scope: Scope | None, source: Source | None, active_at: datetime | None, after: tuple[bytes, str] | None
) -> tuple[str, list[object]]:
    """One page of entries in ``(number_hash, scope)`` order, after the key ``after`` if given."""
    where: list[str] = []
    params: list[object] = []

    def param(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    if scope is not None:
        where.append(f"scope = {param(str(scope))}")
    if source is not None:
        where.append(f"source = {param(str(source))}")
    if active_at is not None:
        where.append(f"(expires_at IS NULL OR expires_at > {param(active_at)})")
    if after is not None:
        where.append(f"(number_hash, scope) > ({param(after[0])}, {param(after[1])})")
    sql = f"SELECT {ENTRY_COLUMNS} FROM entries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY number_hash, scope LIMIT {PAGE}", params


_STATS = """
WITH e AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE expires_at <= $1) AS expired,
           count(*) FILTER (WHERE expires_at IS NULL) AS permanent
    FROM entries
)
SELECT e.total, e.expired, e.permanent,
       (SELECT count(*) FROM prefixes),
       (SELECT count(*) FROM audit),
       ARRAY(SELECT ARRAY[source, count(*)::text] FROM entries GROUP BY source ORDER BY source COLLATE "C"),
       ARRAY(SELECT ARRAY[scope, count(*)::text] FROM entries GROUP BY scope ORDER BY scope COLLATE "C")
FROM e
"""


async def stats(con: Any, now: datetime) -> Stats:
    """Every count in one statement (one snapshot)."""
    entries, expired, permanent, prefixes, audit, by_source, by_scope = await con.fetchrow(_STATS, now)
    return Stats(
        entries=int(entries),
        active=int(entries) - int(expired),
        expired_pending_purge=int(expired),
        permanent=int(permanent),
        by_source={str(k): int(n) for k, n in _pairs(by_source)},
        by_scope={str(k): int(n) for k, n in _pairs(by_scope)},
        prefixes=int(prefixes),
        audit_records=int(audit),
    )


def _pairs(value: Any) -> list[tuple[str, str]]:
    """A 2-D text array from asyncpg (a list of 2-element lists) as pairs."""
    return [(str(k), str(n)) for k, n in value or ()]
