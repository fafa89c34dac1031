"""Export of the shield list, and the row format of hash exports.

Two forms, never plaintext numbers:

- masked (default): for people. ``masked,scope,source,reason,created_at,expires_at``.
- hashes: for moving a list to another instance that shares the key. The first line names the key's
  fingerprint, so an instance with another key refuses the file instead of importing hashes that
  can never match.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TextIO

from callshield.errors import InputFileError, InvalidInput
from callshield.models import Scope, ShieldEntry, Source
from callshield.store.base import ImportRow

HASH_HEADER = "# callshield-export hashes v1"
MASKED_COLUMNS = ["masked", "scope", "source", "reason", "created_at", "expires_at"]
HASH_COLUMNS = ["hash", *MASKED_COLUMNS]
_EVIDENCE = json.dumps([{"imported_from": "hash export"}])


def _iso(at: datetime | None) -> str:
    return "" if at is None else at.isoformat(timespec="seconds")


async def write_export(
    entries: AsyncIterator[ShieldEntry], out: TextIO, *, hashes: bool, fingerprint: str
) -> int:
    """Write every entry to ``out``; returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    if hashes:
        out.write(f"{HASH_HEADER} key={fingerprint}\n")
    writer.writerow(HASH_COLUMNS if hashes else MASKED_COLUMNS)
    count = 0
    async for e in entries:
        row = [e.masked, str(e.scope), str(e.source), e.reason, _iso(e.created_at), _iso(e.expires_at)]
        writer.writerow([e.number_hash.hex(), *row] if hashes else row)
        count += 1
    return count


def parse_hash_row(text: str) -> ImportRow:
    """One data line of a hash export as an import row."""
    try:
        fields = next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration) as e:
        raise InputFileError(f"broken CSV row: {e}") from None
    if len(fields) != len(HASH_COLUMNS):
        raise InputFileError(
            f"expected {len(HASH_COLUMNS)} fields ({','.join(HASH_COLUMNS)}), got {len(fields)}"
        )
    digest, masked, scope, source, reason, created, expires = fields
    try:
        number_hash = bytes.fromhex(digest)
        if len(number_hash) != 32:
            raise ValueError
    except ValueError:
        raise InputFileError("the hash field is not 64 hex digits") from None
    try:
        Scope.parse(scope)
        Source(source)
        return (
            number_hash,
            masked,
            scope,
            source,
            reason,
            _EVIDENCE,
            _ts(created),
            _ts(expires) if expires else None,
        )
    except InvalidInput as e:
        raise InputFileError(str(e)) from None
    except ValueError:
        raise InputFileError(f"unknown source {source[:32]!r} or bad date") from None


def _ts(text: str) -> int:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp())
