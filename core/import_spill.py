"""Hash buckets for large imports: rows parked on disk by key range, then inserted range by range.

The store's key is a keyed hash, so a file's rows arrive in random key order, and inserting them
batch by batch dirties one B-tree page per row: the import slows to a crawl as the table outgrows
the cache. A large file is therefore imported in two phases. First every line is parsed (in worker
processes) and its row appended to one of N bucket files, chosen by where its hash falls in the hash
space (bucket ``i`` of ``N`` holds the ``i``-th of ``N`` equal ranges). Then the buckets are read in
order and each is inserted in one transaction, sorted by hash on the way in (the SQLite store sorts
a batch in its insert statement): every transaction writes one narrow, contiguous key range (into an
empty store, only the B-tree's right edge).

N comes from the file size, so that a bucket holds at most about :data:`TARGET_ROWS` rows: a
transaction of a fraction of a second, far below the busy timeout of the store's other writers. A
bucket file that still comes out large (more than :data:`MAX_BUCKETS` buckets' worth of file, or
very short lines) is split once more before it is read, and a part that cannot be split (the same
number over and over) is read without its repeats: memory stays flat whatever the file.

The files live in a private temporary directory (mode 0700, files 0600), removed at the end, on
error and on cancellation. They hold what the store will hold (keyed hashes, masked numbers, the
import's scope, source, reason and evidence), never a plaintext number. Each write is one frame:
a list of rows in ``marshal`` format (C speed both ways; unlike pickle, reading runs no code)
after its length (4 bytes, little-endian).
"""

from __future__ import annotations

import marshal
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callshield.errors import InputFileError
from callshield.import_parse import Chunk, ChunkSpec, parse_chunk
from callshield.store.base import ImportRow

TARGET_ROWS = 100_000
SHORTEST_LINE = 12
"""Bytes of the shortest usual line (``13800138000`` and its end): the file size over this is an
upper estimate of its rows."""
MAX_BUCKETS = 512
"""Bucket files open at once while parsing (half the usual limit of open files)."""
SPLIT_ABOVE = 16 << 20
"""A bucket file larger than this (bytes; ~200k rows of a list) is split again before it is read."""


def bucket_count(size: int) -> int:
    """Buckets for a file of ``size`` bytes."""
    return max(1, min(MAX_BUCKETS, -(-size // (SHORTEST_LINE * TARGET_ROWS))))


def bucket_of(number_hash: bytes, scale: int) -> int:
    """Which of ``scale`` equal ranges of the hash space ``number_hash`` falls in. Consistent across
    scales: the hashes of range ``i`` of ``n`` fall in ranges ``i*k .. i*k+k-1`` of ``n*k``."""
    return int.from_bytes(number_hash, "big") * scale >> (8 * len(number_hash))


@dataclass(frozen=True)
class SplitChunk:
    """A parsed chunk with its rows marshalled per bucket (what a worker sends back)."""

    frames: list[bytes]
    """One marshal frame per bucket; empty for a bucket the chunk has no row for."""
    valid: int
    rejects: list[tuple[int, str]]
    size: int


def parse_split(spec: ChunkSpec, buckets: int, chunk: Chunk) -> SplitChunk:
    """:func:`~callshield.import_parse.parse_chunk`, then the rows split by bucket (in a worker)."""
    result = parse_chunk(spec, chunk)
    frames = _frames(result.rows, buckets, buckets, 0)
    return SplitChunk(frames, len(result.rows), result.rejects, result.size)


def _frames(rows: Sequence[ImportRow], parts: int, scale: int, first: int) -> list[bytes]:
    """``rows`` split into buckets ``first .. first+parts-1`` of ``scale``, one frame each."""
    split: list[list[ImportRow]] = [[] for _ in range(parts)]
    for row in rows:
        split[bucket_of(row[0], scale) - first].append(row)
    return [_frame(part) if part else b"" for part in split]


def _frame(rows: list[ImportRow]) -> bytes:
    data = marshal.dumps(rows)
    return len(data).to_bytes(4, "little") + data


class Spill:
    """The bucket files of one import; a context manager: the directory goes on exit."""

    def __init__(self, buckets: int, parent: Path | None = None) -> None:
        self.buckets = buckets
        where = parent or Path(tempfile.gettempdir())
        with _translate(where):
            self.dir = Path(tempfile.mkdtemp(prefix="callshield-import-", dir=where))
        self._files: list[BinaryIO] = []
        try:
            with _translate(self.dir):
                self._files = [_create(self._path(buckets, i)) for i in range(buckets)]
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the files and their directory."""
        for f in self._files:
            with suppress(OSError):  # unwritten rows of files about to go
                f.close()
        self._files = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, frames: Sequence[bytes]) -> None:
        """Append a chunk's frames (one per bucket, from :func:`parse_split`)."""
        with _translate(self.dir):
            for f, frame in zip(self._files, frames, strict=True):
                if frame:
                    f.write(frame)

    def finish(self) -> None:
        """Close the files: every row is written."""
        with _translate(self.dir):
            for f in self._files:
                f.close()
        self._files = []

    def drain(self) -> Iterator[list[ImportRow]]:
        """The rows bucket by bucket, in hash order (within a bucket, in the file's order); a file
        goes once read."""
        self.finish()
        with _translate(self.dir):
            for i in range(self.buckets):
                path = self._path(self.buckets, i)
                if path.stat().st_size > SPLIT_ABOVE:
                    yield from self._split(path, self.buckets, i)
                else:
                    yield _load(path, unique=False)

    def _split(self, path: Path, scale: int, index: int) -> Iterator[list[ImportRow]]:
        """Bucket ``index`` of ``scale``, too large to read at once, split into parts of half the
        limit (frame by frame) and read part by part."""
        parts = -(-path.stat().st_size * 2 // SPLIT_ABOVE)
        paths = [self._path(scale * parts, index * parts + j) for j in range(parts)]
        with ExitStack() as stack:
            files = [stack.enter_context(_create(p)) for p in paths]
            for frame in _read_frames(path):
                for f, part in zip(files, _frames(frame, parts, scale * parts, index * parts), strict=True):
                    if part:
                        f.write(part)
        path.unlink()
        for part_path in paths:
            big = part_path.stat().st_size > SPLIT_ABOVE
            yield _load(part_path, unique=big)

    def _path(self, scale: int, index: int) -> Path:
        return self.dir / f"{scale}-{index}"


def _create(path: Path) -> BinaryIO:
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _read_frames(path: Path) -> Iterator[list[ImportRow]]:
    """The frames of a file, one read each (``marshal.load`` reads a file value by value: 10x slower)."""
    with path.open("rb") as f:
        while head := f.read(4):
            frame: list[ImportRow] = marshal.loads(f.read(int.from_bytes(head, "little")))
            yield frame


def _load(path: Path, *, unique: bool) -> list[ImportRow]:
    """A bucket file's rows, then the file removed. ``unique``: only the first of the rows with the
    same hash and scope (what the store would keep anyway), for a part that could not be split."""
    rows: list[ImportRow] = []
    if unique:
        first: dict[tuple[bytes, str], ImportRow] = {}
        for frame in _read_frames(path):
            for row in frame:
                first.setdefault((row[0], row[2]), row)
        rows = list(first.values())
    else:
        for frame in _read_frames(path):
            rows += frame
    path.unlink()
    return rows


@contextmanager
def _translate(where: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise InputFileError(
            f"the import's temporary files in {where} failed: {e.strerror}"
            " (they need about the size of the list; set TMPDIR to a directory with room)"
        ) from None
