"""The import driver: reads the file in chunks, parses them (in worker processes for large files),
and stores the rows. See :mod:`callshield.import_parse` for the formats.

Two ways to store them. Small files (and any file with ``buckets=0``) are streamed: each chunk's
rows are inserted in one transaction as the chunk is parsed. Large files go through hash buckets
(:mod:`callshield.import_spill`): all rows are parsed and spilled to bucket files first, then
inserted bucket by bucket, one transaction each, in hash order. Either way a killed import leaves
whole transactions behind, and running it again adds the rest.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import stat
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar

from callshield.errors import InvalidInput
from callshield.import_parse import (
    MAX_LINE,
    Chunk,
    ChunkSpec,
    RejectWriter,
    check_hash_header,
    csv_column,
    open_input,
    parse_chunk,
    read_chunks,
)
from callshield.import_spill import Spill, bucket_count, parse_split
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ImportRow, ShieldStore

FORMATS = ("text", "csv", "hashes")
CHUNK_LINES = 10_000
PARALLEL_ABOVE = 4 << 20
"""Files larger than this (bytes) are parsed on every core and imported through hash buckets;
smaller ones are parsed in-process and streamed: starting workers costs more."""

INSERTS_IN_FLIGHT = 2
"""Buckets being inserted at once (see ``_insert``)."""

T = TypeVar("T")


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    fmt: str
    column: str | None
    scope: Scope
    source: Source
    reason: str
    expires_at: datetime | None
    rejects: Path
    workers: int | None = None
    """Worker processes; None: one per core for large files, 0: parse in-process."""
    batch_lines: int = CHUNK_LINES
    """Lines per chunk; streamed, also the most rows per transaction."""
    buckets: int | None = None
    """Hash buckets; None: by the file size above PARALLEL_ABOVE, else 0; 0: streamed."""
    spill_dir: Path | None = None
    """Where the bucket files go (in a private directory of their own); None: ``$TMPDIR``."""


@dataclass(frozen=True)
class ImportSummary:
    lines: int
    added: int
    already_present: int
    invalid: int
    rejects: Path | None


@dataclass(frozen=True)
class _Run:
    """One import under way: where the chunks come from, and where results and progress go."""

    store: ShieldStore
    req: ImportRequest
    spec: ChunkSpec
    f: BinaryIO
    first: int
    rejects: RejectWriter
    report: Callable[[str], None] | None
    progress: Callable[[int], None]
    phase: Callable[[str, int], None]

    def parsed(self, work: Callable[[Chunk], T]) -> AsyncGenerator[T, None]:
        return _parsed(self.f, self.first, work, _workers(self.req), self.req.batch_lines)


def _spec(req: ImportRequest, key: bytes, rules: NumberRules, column: int, now: datetime) -> ChunkSpec:
    evidence = json.dumps([{"import": req.path.name, "at": now.isoformat(timespec="seconds")}])
    expires = None if req.expires_at is None else int(req.expires_at.timestamp())
    return ChunkSpec(
        req.fmt,
        column,
        key,
        rules,
        str(req.scope),
        str(req.source),
        req.reason,
        evidence,
        int(now.timestamp()),
        expires,
    )


def _read_headers(f: BinaryIO, req: ImportRequest, fingerprint: str) -> tuple[int, int]:
    """Consume header lines; returns (column index, number of the first data line)."""
    if req.fmt == "csv":
        if not req.column:
            raise InvalidInput("a CSV import needs --column NAME (the header of the number column)")
        return csv_column(f.readline(MAX_LINE), req.column), 2
    if req.fmt == "hashes":
        check_hash_header(f.readline(MAX_LINE), fingerprint)
        f.readline(MAX_LINE)
        return 0, 3
    return 0, 1


async def import_file(
    store: ShieldStore,
    req: ImportRequest,
    key: bytes,
    rules: NumberRules,
    actor: str,
    now: datetime,
    progress: Callable[[int], None] = lambda n: None,
    report: Callable[[str], None] | None = None,
    phase: Callable[[str, int], None] = lambda label, total: None,
) -> ImportSummary:
    """Import ``req.path`` into ``store``; see the module docstring.

    Progress: ``phase(label, total)`` starts a phase ("importing" or "reading": bytes of the
    file; then, for a bucketed import, "inserting": rows), ``progress(n)`` advances it.
    """
    if req.fmt not in FORMATS:
        raise InvalidInput(f"unknown import format {req.fmt!r}: use one of {', '.join(FORMATS)}")
    with open_input(req.path) as f:
        column, first = _read_headers(f, req, store.key_fingerprint)
        spec = _spec(req, key, rules, column, now)
        start = {"file": req.path.name, "format": req.fmt, "scope": str(req.scope), "source": str(req.source)}
        await store.audit(actor, "import-start", "", start, now)
        rejects = RejectWriter(req.rejects)
        run = _Run(store, req, spec, f, first, rejects, report, progress, phase)
        size, buckets = _plan(req, f)
        try:
            if buckets:
                phase("reading", size)
                lines, valid, added = await _bucketed(run, buckets)
            else:
                phase("importing", size)
                lines, valid, added = await _streamed(run)
        finally:
            rejects.close()
    summary = ImportSummary(
        lines, added, valid - added, rejects.count, req.rejects if rejects.count else None
    )
    done = {**start, "added": added, "already_present": valid - added, "invalid": rejects.count}
    await store.audit(actor, "import", "", done, now)
    return summary


def _plan(req: ImportRequest, f: BinaryIO) -> tuple[int, int]:
    """The file's size (0 if not a regular file) and the buckets to use."""
    status = os.fstat(f.fileno())
    size = status.st_size if stat.S_ISREG(status.st_mode) else 0
    if req.buckets is not None:
        return size, req.buckets
    return size, bucket_count(size) if size > PARALLEL_ABOVE else 0


async def _streamed(run: _Run) -> tuple[int, int, int]:
    """Parse chunk by chunk; each chunk's rows in one transaction. Returns (lines, valid, added)."""
    lines = valid = added = 0
    async with aclosing(run.parsed(partial(parse_chunk, run.spec))) as results:
        async for result in results:
            lines += len(result.rows) + len(result.rejects)
            run.rejects.write(result.rejects, run.report)
            valid += len(result.rows)
            if result.rows:
                added += await run.store.import_rows(result.rows)
            run.progress(result.size)
    return lines, valid, added


async def _bucketed(run: _Run, buckets: int) -> tuple[int, int, int]:
    """Parse everything into bucket files, then insert bucket by bucket. Returns (lines, valid, added)."""
    lines = valid = 0
    with Spill(buckets, run.req.spill_dir) as spill:
        async with aclosing(run.parsed(partial(parse_split, run.spec, buckets))) as results:
            async for part in results:
                lines += part.valid + len(part.rejects)
                run.rejects.write(part.rejects, run.report)
                valid += part.valid
                spill.write(part.frames)
                run.progress(part.size)
        spill.finish()
        run.phase("inserting", valid)
        added = await _insert(run, spill.drain())
    return lines, valid, added


async def _insert(run: _Run, buckets: Iterator[list[ImportRow]]) -> int:
    """Insert each bucket in one transaction; returns how many rows were new.

    Up to :data:`INSERTS_IN_FLIGHT` buckets are under way at once, and the next one is read (in a
    thread) while they are: a PostgreSQL store inserts them on as many connections, which the
    server runs on as many cores; the SQLite store, one writer, takes them one after the other but
    no longer waits for the reading in between. After a failure no bucket is started, the ones
    under way are let finish (an insert cannot be stopped half-way in every store: SQLite's runs
    on in its thread), and the failure is raised.
    """
    added = 0
    sizes: dict[asyncio.Task[int], int] = {}
    try:
        while (rows := await asyncio.to_thread(next, buckets, None)) is not None:
            sizes[asyncio.create_task(run.store.import_rows(rows))] = len(rows)
            del rows  # held by its task only: gone when the task is
            while len(sizes) >= INSERTS_IN_FLIGHT:
                added += await _finished(run, sizes)
        while sizes:
            added += await _finished(run, sizes)
    finally:
        await asyncio.gather(*sizes, return_exceptions=True)
    return added


async def _finished(run: _Run, sizes: dict[asyncio.Task[int], int]) -> int:
    """Wait for one or more of the inserts; their rows added (raises the first failure)."""
    done, _ = await asyncio.wait(sizes, return_when=asyncio.FIRST_COMPLETED)
    added = 0
    for task in done:
        added += task.result()
        run.progress(sizes.pop(task))
    return added


def _workers(req: ImportRequest) -> int:
    if req.workers is not None:
        return req.workers
    size = req.path.stat().st_size if req.path.is_file() else 0
    return (os.cpu_count() or 1) if size > PARALLEL_ABOVE else 0


async def _parsed(
    f: BinaryIO, first: int, work: Callable[[Chunk], T], workers: int, batch_lines: int
) -> AsyncGenerator[T, None]:
    chunks = read_chunks(f, first, batch_lines)
    if workers <= 0:
        for chunk in chunks:
            yield work(chunk)
        return
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    # gc.freeze: the workers' collections (see parse_chunk) then skip the modules loaded at start.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=gc.freeze) as pool:
        pending: deque[asyncio.Future[T]] = deque()
        for chunk in chunks:
            pending.append(loop.run_in_executor(pool, work, chunk))
            if len(pending) >= 2 * workers:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
