"""The import driver: reads the file in chunks, parses them (in worker processes for large files),
and inserts the rows batch by batch. See :mod:`callshield.import_parse` for the formats."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from callshield.errors import InvalidInput
from callshield.import_parse import (
    MAX_LINE,
    Chunk,
    ChunkResult,
    ChunkSpec,
    RejectWriter,
    check_hash_header,
    csv_column,
    open_input,
    parse_chunk,
    read_chunks,
)
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore

FORMATS = ("text", "csv", "hashes")
CHUNK_LINES = 20_000
PARALLEL_ABOVE = 4 << 20
"""Files smaller than this (bytes) are parsed in-process: starting workers costs more."""


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
    """Lines per chunk, and so at most rows per transaction."""


@dataclass(frozen=True)
class ImportSummary:
    lines: int
    added: int
    already_present: int
    invalid: int
    rejects: Path | None


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
) -> ImportSummary:
    """Import ``req.path`` into ``store``; see the module docstring."""
    if req.fmt not in FORMATS:
        raise InvalidInput(f"unknown import format {req.fmt!r}: use one of {', '.join(FORMATS)}")
    with open_input(req.path) as f:
        column, first = _read_headers(f, req, store.key_fingerprint)
        spec = _spec(req, key, rules, column, now)
        start = {"file": req.path.name, "format": req.fmt, "scope": str(req.scope), "source": str(req.source)}
        await store.audit(actor, "import-start", "", start, now)
        rejects = RejectWriter(req.rejects)
        lines = valid = added = 0
        try:
            async for result in _parsed(f, first, spec, _workers(req), req.batch_lines):
                lines += len(result.rows) + len(result.rejects)
                rejects.write(result.rejects, report)
                valid += len(result.rows)
                if result.rows:
                    added += await store.import_rows(result.rows)
                progress(result.size)
        finally:
            rejects.close()
    summary = ImportSummary(
        lines, added, valid - added, rejects.count, req.rejects if rejects.count else None
    )
    done = {**start, "added": added, "already_present": valid - added, "invalid": rejects.count}
    await store.audit(actor, "import", "", done, now)
    return summary


def _workers(req: ImportRequest) -> int:
    if req.workers is not None:
        return req.workers
    size = req.path.stat().st_size if req.path.is_file() else 0
    return (os.cpu_count() or 1) if size > PARALLEL_ABOVE else 0


async def _parsed(
    f: BinaryIO, first: int, spec: ChunkSpec, workers: int, batch_lines: int
) -> AsyncIterator[ChunkResult]:
    chunks = read_chunks(f, first, batch_lines)
    if workers <= 0:
        for chunk in chunks:
            yield parse_chunk(spec, chunk)
        return
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[asyncio.Future[ChunkResult]] = deque()
        for chunk in chunks:
            pending.append(_submit(loop, pool, spec, chunk))
            if len(pending) >= 2 * workers:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()


def _submit(
    loop: asyncio.AbstractEventLoop, pool: Executor, spec: ChunkSpec, chunk: Chunk
) -> asyncio.Future[ChunkResult]:
    return loop.run_in_executor(pool, parse_chunk, spec, chunk)
