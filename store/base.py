"""The shield store's one async interface, used by the gate, the capture, the guard and the CLI.

A store holds numbers only as keyed hashes (see :mod:`callshield.privacy`); callers hand it E.164
numbers and it hashes them under the key it was opened with. Backends: SQLite (embedded default,
:mod:`callshield.store.sqlite`); PostgreSQL for several PBXs sharing one list.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callshield.errors import InvalidInput
from callshield.keys import fingerprint
from callshield.models import Action, Matches, PrefixRule, Scope, ShieldEntry, Source
from callshield.privacy import KeyedHasher, mask
from callshield.store.audit import AuditRecord, ChainReport, ChainWalker, chain_key

MAX_REASON = 500
MAX_EVIDENCE_ITEMS = 16
MAX_EVIDENCE_KEY = 40
MAX_EVIDENCE_VALUE = 256
"""Bounds on what one entry carries besides the number: evidence is a record, not a file store."""


@dataclass(frozen=True)
class NewEntry:
    """A refusal (or admin/import entry) to shield."""

    e164: str
    scope: Scope
    source: Source
    reason: str
    expires_at: datetime | None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON:
            raise InvalidInput(f"the reason is {len(self.reason)} characters long (at most {MAX_REASON})")
        if len(self.evidence) > MAX_EVIDENCE_ITEMS:
            raise InvalidInput(f"{len(self.evidence)} evidence items (at most {MAX_EVIDENCE_ITEMS})")
        for k, v in self.evidence.items():
            if len(str(k)) > MAX_EVIDENCE_KEY or len(str(v)) > MAX_EVIDENCE_VALUE:
                raise InvalidInput(
                    f"evidence {str(k)[:MAX_EVIDENCE_KEY]!r}: at most {MAX_EVIDENCE_KEY} characters "
                    f"per name and {MAX_EVIDENCE_VALUE} per value"
                )

    @property
    def masked(self) -> str:
        return mask(self.e164)


@dataclass(frozen=True)
class AddResult:
    created: bool
    """True if the number was not shielded in this scope before."""
    expires_at: datetime | None
    """The expiry now in force (the later of old and new; None is permanent)."""


ImportRow = tuple[bytes, str, str, str, str, str, int, int | None]
"""One bulk-import row, ready for the database: ``(number_hash, masked, scope, source, reason,
evidence_json, created_at, expires_at)``, times as Unix seconds. The import pipeline builds these
in worker processes; a plain tuple is the cheapest thing to pickle and to bind."""


@dataclass(frozen=True)
class Stats:
    entries: int
    active: int
    expired_pending_purge: int
    permanent: int
    by_source: Mapping[str, int]
    by_scope: Mapping[str, int]
    prefixes: int
    audit_records: int


class ShieldStore(abc.ABC):
    """Every backend implements this. All times are aware UTC datetimes."""

    inline_lookup = False
    """True when :meth:`lookup` normally completes without awaiting anything (so a deadline around
    it could never fire): SQLite's point query on the event loop."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._hasher = KeyedHasher(key)
        self._ckey = chain_key(key)
        self.key_fingerprint = fingerprint(key)

    def hash(self, e164: str) -> bytes:
        """The keyed hash under which this store knows ``e164`` (:func:`~callshield.privacy.keyed_hash`)."""
        return self._hasher(e164)

    def ref(self, e164: str) -> str:
        """The short reference audit records use for a number (the hash's first 16 hex digits)."""
        return self.hash(e164).hex()[:16]

    # the gate's hot path -------------------------------------------------------------------
    @abc.abstractmethod
    async def lookup(self, e164: str) -> Matches:
        """Entries (all scopes, expired included: :func:`~callshield.policy.decide` filters) and
        prefix rules for a number. Not audited: this is the dial-time gate's look-up."""

    # entries ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add(self, entry: NewEntry, actor: str, now: datetime) -> AddResult:
        """Shield a number. Already shielded in that scope: keep the later expiry, append the evidence."""

    @abc.abstractmethod
    async def remove(self, e164: str, scope: Scope | None, actor: str, reason: str, now: datetime) -> int:
        """Unshield a number in one scope (or all, with None); returns how many entries went."""

    @abc.abstractmethod
    async def import_rows(self, rows: Sequence[ImportRow]) -> int:
        """Insert a batch in one transaction; rows already shielded in the scope are left as they are.
        Returns how many were added. Not audited per row: the import is audited as a whole."""

    @abc.abstractmethod
    def entries(
        self, scope: Scope | None = None, source: Source | None = None, active_at: datetime | None = None
    ) -> AsyncIterator[ShieldEntry]:
        """Every entry (optionally filtered), in a stable order. Streams: memory stays flat."""

    @abc.abstractmethod
    async def purge_expired(self, actor: str, now: datetime) -> int:
        """Delete the entries whose expiry has passed, with an audit record; returns how many."""

    # prefix rules ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_prefix(self, rule: PrefixRule, actor: str) -> None:
        """Add or replace the rule for ``(prefix, scope)``."""

    @abc.abstractmethod
    async def remove_prefix(self, prefix: str, scope: Scope, actor: str, reason: str, now: datetime) -> int:
        """Remove a prefix rule; returns 1 if it existed."""

    @abc.abstractmethod
    async def prefixes(self) -> list[PrefixRule]:
        """All prefix rules."""

    # audit and reports -----------------------------------------------------------------------
    @abc.abstractmethod
    async def audit(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        """Append an audit record (operator look-ups, exports, imports)."""

    @abc.abstractmethod
    def audit_records(self, since_seq: int = 0) -> AsyncIterator[AuditRecord]:
        """The audit log in sequence order."""

    async def verify_audit(self) -> ChainReport:
        """Check the whole audit chain, one record at a time (flat memory for any log length)."""
        walker = ChainWalker(self._ckey)
        async for record in self.audit_records():
            if not walker.step(record):
                break
        return walker.report()

    @abc.abstractmethod
    async def stats(self, now: datetime) -> Stats:
        """Counts for ``callshield stats`` and the service's metrics."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    async def __aenter__(self) -> ShieldStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def prefix_candidates(e164: str) -> list[str]:
    """Every prefix of ``e164`` that a prefix rule could be stored under (``+8``, ``+86``, ...)."""
    return [e164[:n] for n in range(2, len(e164) + 1)]


__all__ = [
    "Action",
    "AddResult",
    "ImportRow",
    "NewEntry",
    "ShieldStore",
    "Stats",
    "prefix_candidates",
]
