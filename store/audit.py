"""The audit log's hash chain: pure functions, shared by every store backend.

Each record carries the chain hash of the one before it. The chain hash is an HMAC under a key
derived from the deployment key, so a record cannot be edited, inserted or removed and the chain
recomputed without that key. :func:`verify_chain` names the first record that does not fit.

Truncating the newest records cannot be seen from inside the log; ``callshield audit verify``
prints the head (last sequence number and hash) so it can be noted elsewhere and compared later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditRecord:
    """One audit log entry, fields in their stored text form (the chain hashes exactly these)."""

    seq: int
    at: str
    """UTC time, ISO 8601 with microseconds."""
    actor: str
    action: str
    masked: str
    """The number as shown (``+86138****8000``), or empty."""
    detail: str
    """JSON object: what was done, counts, the entry's hash reference, the reason."""
    prev_hash: bytes
    hash: bytes

    def details(self) -> dict[str, Any]:
        value = json.loads(self.detail)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying the chain."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problem: str = ""
    """For a broken chain: which record, and what is wrong with it."""


def chain_key(key: bytes) -> bytes:
    """The audit chain's own key, derived from the deployment key."""
    return hmac.new(key, b"callshield audit chain v1", hashlib.sha256).digest()


def encode_detail(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def record_hash(
    ckey: bytes, prev: bytes, seq: int, at: str, actor: str, action: str, masked: str, detail: str
) -> bytes:
    """The chain hash of one record; ``at`` and ``detail`` in their stored text form."""
    body = json.dumps([seq, at, actor, action, masked, detail], separators=(",", ":"), ensure_ascii=True)
    return hmac.new(ckey, prev + body.encode("ascii"), hashlib.sha256).digest()


def format_at(at: datetime) -> str:
    """The canonical, stored form of a record's time (UTC, microseconds)."""
    return at.isoformat(timespec="microseconds")


class ChainWalker:
    """Verifies the chain one record at a time, so a log of any length is checked in flat memory."""

    def __init__(self, ckey: bytes) -> None:
        self._ckey = ckey
        self._prev = GENESIS
        self._next_seq = 1
        self._checked = 0
        self._problem = ""
        self._bad: AuditRecord | None = None

    def step(self, rec: AuditRecord) -> bool:
        """Check the next record; False (and stop feeding) at the first problem."""
        problem = _check(self._ckey, rec, self._prev, self._next_seq)
        if problem:
            self._problem, self._bad = problem, rec
            return False
        self._prev, self._next_seq, self._checked = rec.hash, rec.seq + 1, self._checked + 1
        return True

    def report(self) -> ChainReport:
        if self._bad is not None:
            return ChainReport(False, self._checked, self._bad.seq, self._bad.hash.hex(), self._problem)
        return ChainReport(True, self._checked, self._next_seq - 1, self._prev.hex())


def verify_chain(ckey: bytes, records: Iterable[AuditRecord]) -> ChainReport:
    """Walk the records in sequence order and report the first that is edited, inserted or missing."""
    walker = ChainWalker(ckey)
    for rec in records:
        if not walker.step(rec):
            break
    return walker.report()


def _check(ckey: bytes, rec: AuditRecord, prev: bytes, expected_seq: int) -> str:
    if rec.seq != expected_seq:
        kind = "missing (deleted)" if rec.seq > expected_seq else "out of order (inserted)"
        return f"record {expected_seq} is {kind}: found record {rec.seq} in its place"
    if rec.prev_hash != prev:
        return f"record {rec.seq} does not follow record {rec.seq - 1}: a record was deleted or inserted"
    expect = record_hash(ckey, prev, rec.seq, rec.at, rec.actor, rec.action, rec.masked, rec.detail)
    if not hmac.compare_digest(expect, rec.hash):
        return f"record {rec.seq} was edited: its content does not match its hash"
    return ""
