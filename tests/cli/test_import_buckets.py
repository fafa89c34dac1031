"""The parts of a large import: reading lines in blocks, hash buckets and their spill files, and
the store's packed insert of a bucket."""

from __future__ import annotations

import csv
import io
import itertools
import marshal
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from callshield import import_spill
from callshield.import_parse import MAX_LINE, Chunk, ChunkSpec, read_chunks
from callshield.import_spill import MAX_BUCKETS, Spill, SplitChunk, bucket_count, bucket_of, parse_split
from callshield.importer import ImportRequest, import_file
from callshield.keys import fingerprint
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ImportRow, ShieldStore
from callshield.transfer import HASH_COLUMNS, HASH_HEADER
from testkit import T0


def reference_chunks(f: BinaryIO, first: int, size: int) -> Iterator[Chunk]:
    """Line by line, as simply as it can be said: what read_chunks must give."""
    lines: list[bytes | None] = []
    while line := f.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := f.readline(65536)) and not rest.endswith(b"\n"):
                pass
            lines.append(None)
        else:
            lines.append(line.rstrip(b"\r\n"))
    for start in range(0, len(lines), size):
        yield Chunk(first + start, lines[start : start + size], 0)


def test_reading_in_blocks_gives_the_lines_of_a_line_by_line_reading() -> None:
    rng = random.Random(7)
    pieces = [
        b"123",
        b"+8613800138000",
        b"",
        b"\r",
        b"x" * MAX_LINE,
        b"y" * (MAX_LINE + 1),
        b"z" * (2 * MAX_LINE + 3),
    ]
    for _ in range(300):
        data = b"".join(
            rng.choice(pieces) + rng.choice([b"\n", b"\r\n", b""]) for _ in range(rng.randint(0, 30))
        )
        size = rng.randint(1, 6)
        expected = [(c.first_line, c.lines) for c in reference_chunks(io.BytesIO(data), 3, size)]
        for block in (7, 1000, MAX_LINE, MAX_LINE + 2, 1 << 20):
            chunks = list(read_chunks(io.BytesIO(data), 3, size, block))
            assert [(c.first_line, c.lines) for c in chunks] == expected
            assert sum(c.size for c in chunks) == len(data)


def test_the_bucket_count_follows_the_file_size() -> None:
    sizes = [0, 1, 4 << 20, 50 << 20, 141 << 20, 1 << 30, 1 << 40]
    counts = [bucket_count(s) for s in sizes]
    assert counts == sorted(counts)
    assert counts[0] == 1 and counts[-1] == MAX_BUCKETS
    rows_per_bucket = [
        s / import_spill.SHORTEST_LINE / c for s, c in zip(sizes, counts, strict=True) if c < MAX_BUCKETS
    ]
    assert max(rows_per_bucket) <= import_spill.TARGET_ROWS


def test_buckets_nest_when_split_again() -> None:
    for _ in range(2000):
        digest, n, k = os.urandom(32), random.randint(1, 600), random.randint(2, 40)
        assert bucket_of(digest, n * k) // k == bucket_of(digest, n) < n


def spec(fmt: str = "text") -> ChunkSpec:
    return ChunkSpec(fmt, 0, os.urandom(32), NumberRules(), "global", "import", "r", "[]", 0, None)


def split_rows(split: SplitChunk) -> list[ImportRow]:
    """The rows of a parsed chunk's frames (each: length, then marshalled rows)."""
    rows: list[ImportRow] = []
    for frame in split.frames:
        if frame:
            rows += marshal.loads(frame[4:])
    return rows


def test_a_large_bucket_is_split_again_and_a_repeated_number_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_spill, "SPLIT_ABOVE", 4096)
    lines: list[bytes | None] = [b"+86138%08d" % i for i in range(300)]
    lines += [b"+8613900000000"] * 200
    with Spill(1, tmp_path) as spill:
        split = parse_split(spec(), 1, Chunk(1, lines, 0))
        spill.write(split.frames)
        buckets = [bucket for bucket in spill.drain() if bucket]
        assert list(spill.dir.iterdir()) == []
    assert len(buckets) > 2
    for lower, upper in itertools.pairwise(buckets):
        assert max(row[0] for row in lower) < min(row[0] for row in upper)
    first_seen = {row[0]: i for i, row in reversed(list(enumerate(split_rows(split))))}
    for bucket in buckets:
        seen = [first_seen[row[0]] for row in bucket]
        assert seen == sorted(seen)  # the file's order
    assert sorted(row[0] for bucket in buckets for row in bucket) == sorted(first_seen)
    assert list(tmp_path.glob("callshield-import-*")) == []


ODD_MASKED = ["+86138****8000", 'quote " and, comma', "back\\slash", " spaces ", "tab\there", "ünï 📞", "[1]"]


@pytest.mark.parametrize("same_expiry", [True, False])
@pytest.mark.parametrize("buckets", [0, 2])
async def test_masked_forms_come_back_exactly_as_imported(
    store: ShieldStore, key: bytes, tmp_path: Path, same_expiry: bool, buckets: int
) -> None:
    """A hash export with the same scope, source, reason and dates on every row is stored in one
    packed statement (SQLite); with other dates, row by row. Either way nothing is altered."""
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        out.write(f"{HASH_HEADER} key={fingerprint(key)}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HASH_COLUMNS)
        for i, masked in enumerate(ODD_MASKED):
            expires = "2027-01-01T00:00:00+00:00" if same_expiry else f"2027-01-{i + 1:02d}T00:00:00+00:00"
            row = [
                os.urandom(32).hex(),
                masked,
                "global",
                "import",
                "moved",
                "2026-01-01T00:00:00+00:00",
                expires,
            ]
            writer.writerow(row)
    req = ImportRequest(
        path,
        "hashes",
        None,
        Scope(),
        Source.IMPORT,
        "r",
        None,
        tmp_path / "rejects",
        0,
        buckets=buckets,
        spill_dir=tmp_path,
    )
    summary = await import_file(store, req, key, NumberRules(), "test", T0)
    assert (summary.added, summary.invalid) == (len(ODD_MASKED), 0)
    assert sorted([e.masked async for e in store.entries()]) == sorted(ODD_MASKED)
