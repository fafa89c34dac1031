"""Bulk import of numbers: streamed, batched, parallel, idempotent.

The file is read in chunks of lines (memory stays flat whatever its size). Each chunk is decoded,
normalised and hashed by :func:`parse_chunk` — in worker processes for large files, because
phonenumbers costs microseconds per number — and the resulting rows are inserted in batches, one
transaction each (see :mod:`callshield.importer`). Rows already shielded in the scope are left
untouched, so re-running a file (or finishing a killed import) changes nothing that is already there.

Formats: ``text`` (one number per line; blank lines and ``#`` comments skipped), ``csv`` (a named
column of a file with a header row), ``hashes`` (an export of another instance with the same key).
Rejected lines are listed, with their line numbers and the input masked, in a reject file.
"""

from __future__ import annotations

import csv
import gc
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callshield.errors import CallShieldError, InputFileError
from callshield.numbers import NumberRules, classify
from callshield.privacy import KeyedHasher, mask
from callshield.store.base import ImportRow
from callshield.transfer import HASH_HEADER, parse_hash_row

log = logging.getLogger(__name__)

MAX_LINE = 4096
"""Longer lines are rejected without being kept in memory."""
BLOCK = 1 << 18
"""Bytes read at a time."""


@dataclass(frozen=True)
class ChunkSpec:
    """Everything a worker needs to turn lines into rows (picklable)."""

    fmt: str
    column: int
    key: bytes
    rules: NumberRules
    scope: str
    source: str
    reason: str
    evidence: str
    created_at: int
    expires_at: int | None


@dataclass(frozen=True)
class Chunk:
    first_line: int
    lines: list[bytes | None]
    """Raw lines without their line ends; None for a line that was too long."""
    size: int
    """Bytes of the file read for this chunk (for the progress bar)."""


@dataclass(frozen=True)
class ChunkResult:
    rows: list[ImportRow]
    rejects: list[tuple[int, str]]
    size: int


def read_chunks(f: BinaryIO, first_line: int, chunk_lines: int, block: int = BLOCK) -> Iterator[Chunk]:
    """Yield the file's lines in chunks of ``chunk_lines``; lines longer than :data:`MAX_LINE` become
    None. The file is read in blocks and split in C; a chunk's ``size`` counts the bytes read since
    the previous chunk (a block is counted with the first chunk that ends after it is read)."""
    number, unreported = first_line, 0
    lines: list[bytes | None] = []
    for found, size in _blocks(f, block):
        lines += found
        unreported += size
        while len(lines) >= chunk_lines:
            yield Chunk(number, lines[:chunk_lines], unreported)
            number, unreported = number + chunk_lines, 0
            del lines[:chunk_lines]
    if lines:
        yield Chunk(number, lines, unreported)


def _blocks(f: BinaryIO, block: int) -> Iterator[tuple[list[bytes | None], int]]:
    """The file's lines block by block, with the bytes read; a long line is never held whole: once
    the start of a line exceeds MAX_LINE, the rest of it is dropped block by block."""
    carry, skipping = b"", False
    while data := f.read(block):
        text = carry + data
        parts = text.split(b"\n")
        carry = parts.pop()
        lines = _lines(parts, b"\r" in text)
        if skipping and lines:
            lines[0], skipping = None, False
        if skipping or len(carry) > MAX_LINE:
            carry, skipping = b"", True
        yield lines, len(data)
    if skipping or carry:
        yield _lines([carry], True) if carry else [None], 0


def _lines(parts: list[bytes], cr: bool) -> list[bytes | None]:
    """Raw lines as chunk lines: the too long ones None, the rest without trailing CRs (if ``cr``)."""
    lines: list[bytes | None] = list(parts)
    if max(map(len, parts), default=0) > MAX_LINE:
        lines = [None if len(p) > MAX_LINE else p for p in parts]
    if cr:
        lines = [p if p is None else p.rstrip(b"\r") for p in lines]
    return lines


def parse_chunk(spec: ChunkSpec, chunk: Chunk) -> ChunkResult:
    """Decode, extract, normalise and hash one chunk (pure; runs in worker processes)."""
    rows: list[ImportRow] = []
    rejects: list[tuple[int, str]] = []
    hasher = KeyedHasher(spec.key)
    for offset, raw in enumerate(chunk.lines):
        number = chunk.first_line + offset
        try:
            row = _parse_line(spec, hasher, raw)
        except CallShieldError as e:
            rejects.append((number, str(e)))
            continue
        if row is not None:
            rows.append(row)
    # phonenumbers leaves reference cycles behind (a parse error keeps its traceback): collect them
    # now, or a worker grows by tens of MB per million lines between the rare full collections.
    gc.collect()
    return ChunkResult(rows, rejects, chunk.size)


def _parse_line(spec: ChunkSpec, hasher: KeyedHasher, raw: bytes | None) -> ImportRow | None:
    if raw is None:
        raise InputFileError(f"line longer than {MAX_LINE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError("not UTF-8 text") from None
    if spec.fmt == "hashes":
        return parse_hash_row(text) if text.strip() else None
    if spec.fmt == "csv":
        text = _csv_field(text, spec.column)
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    target = classify(text, spec.rules)
    if target.e164 is None:
        raise InputFileError(f"{target.digits}: emergency/service short code, cannot be shielded")
    return (
        hasher(target.e164),
        mask(target.e164),
        spec.scope,
        spec.source,
        spec.reason,
        spec.evidence,
        spec.created_at,
        spec.expires_at,
    )


def _csv_field(text: str, column: int) -> str:
    try:
        fields = next(csv.reader([text], strict=True), [])
    except csv.Error as e:
        raise InputFileError(f"broken CSV row: {e}") from None
    if column >= len(fields):
        raise InputFileError(f"CSV row has {len(fields)} fields, the number column is field {column + 1}")
    return fields[column]


def csv_column(header: bytes, name: str) -> int:
    """Index of column ``name`` in a CSV header line (clear error if absent)."""
    try:
        fields = next(csv.reader([header.decode("utf-8-sig")], strict=True), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(f"the CSV header line cannot be read: {e}") from None
    names = [f.strip() for f in fields]
    if name not in names:
        shown = ", ".join(mask(n) if any(c.isdigit() for c in n) else repr(n) for n in names[:20])
        raise InputFileError(f"the CSV header has no column {name!r} (columns: {shown})")
    return names.index(name)


def check_hash_header(header: bytes, fingerprint: str) -> None:
    """An export of hashes is usable only with the key it was made with."""
    text = header.decode("utf-8", "replace").strip()
    if not text.startswith(HASH_HEADER):
        raise InputFileError(f"not a callshield hash export (first line should start with {HASH_HEADER!r})")
    theirs = text.removeprefix(HASH_HEADER).strip().removeprefix("key=")
    if theirs != fingerprint:
        raise InputFileError(
            f"the export was made with key {theirs}, this store uses key {fingerprint}: hashes cannot match"
        )


def open_input(path: Path) -> BinaryIO:
    """Open an import file for binary reading, with a clear error for every way that fails."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputFileError(f"import file {path} does not exist") from None
    except IsADirectoryError:
        raise InputFileError(f"import file {path} is a directory") from None
    except OSError as e:
        raise InputFileError(f"import file {path} cannot be read: {e.strerror}") from None
    return f


class RejectWriter:
    """Writes rejected lines (line number, problem; input masked) to a file opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._f: io.TextIOWrapper | None = None

    def write(self, rejects: list[tuple[int, str]], report: Callable[[str], None] | None = None) -> None:
        for line, problem in rejects:
            if self._f is None:
                try:
                    self._f = self.path.open("w", encoding="utf-8")
                except OSError as e:
                    raise InputFileError(f"reject file {self.path} cannot be written: {e.strerror}") from None
                self._f.write("line\tproblem\n")
            self._f.write(f"{line}\t{problem}\n")
            self.count += 1
            if report is not None and self.count <= 10:
                report(f"line {line}: {problem}")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
