"""Bulk import: formats, rejects, idempotence, parallel parsing, flat memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from callshield.errors import InputFileError, InvalidInput, StoreUnavailable
from callshield.importer import ImportRequest, ImportSummary, import_file
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ImportRow, ShieldStore
from callshield.transfer import write_export
from testkit import T0

RULES = NumberRules()


def request(path: Path, fmt: str = "text", **kw: object) -> ImportRequest:
    fields: dict[str, object] = {
        "path": path,
        "fmt": fmt,
        "column": None,
        "scope": Scope(),
        "source": Source.IMPORT,
        "reason": "lawful list",
        "expires_at": T0 + timedelta(days=365),
        "rejects": path.with_name(path.name + ".rejects"),
        "workers": 0,
    }
    fields.update(kw)
    return ImportRequest(**fields)  # type: ignore[arg-type]


async def run(store: ShieldStore, key: bytes, req: ImportRequest) -> ImportSummary:
    return await import_file(store, req, key, RULES, "test", T0)


MIXED = b"".join(
    [
        b"# a comment line\n",
        b"+8613800138000\n",
        b"138 0013 8001\r\n",
        b"\n",
        b"0086-138-0013-8002\n",
        b"not a number\n",
        b"\xff\xfe13800138003\n",
        b"1" * (1 << 20) + b"\n",
        b"110\n",
        b"+8613800138000\n",
        b"13800138004",
    ]
)


async def test_text_import_summary_and_rejects(store: ShieldStore, key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(MIXED)
    summary = await run(store, key, request(path))
    assert (summary.added, summary.already_present, summary.invalid) == (4, 1, 4)
    assert summary.lines == 9
    rejects = path.with_name("list.txt.rejects").read_text().splitlines()
    assert [line.split("\t")[0] for line in rejects[1:]] == ["6", "7", "8", "9"]
    assert "not digits" in rejects[1]
    assert "not UTF-8" in rejects[2]
    assert "longer than" in rejects[3]
    assert "short code" in rejects[4]
    assert "13800138003" not in path.with_name("list.txt.rejects").read_text()
    assert (await store.stats(T0)).entries == 4


async def test_reimporting_the_same_file_changes_nothing(
    store: ShieldStore, key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(MIXED)
    await run(store, key, request(path))
    before = [e async for e in store.entries()]
    again = await run(store, key, request(path))
    assert (again.added, again.already_present) == (0, 5)
    assert [e async for e in store.entries()] == before


async def test_csv_named_column_and_broken_rows(store: ShieldStore, key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "name,phone,city\n"
        "Wang,13800138000,Beijing\n"
        '"Li, Jr",+86 139 0013 9000,Shanghai\n'
        "short\n"
        '"unclosed,1,2\n'
    )
    summary = await run(store, key, request(path, "csv", column="phone"))
    assert (summary.added, summary.invalid) == (2, 2)
    rejects = summary.rejects.read_text() if summary.rejects else ""
    assert "\n4\tCSV row has 1 fields" in rejects
    assert "\n5\tbroken CSV row" in rejects


async def test_csv_without_the_column_is_refused_before_any_change(
    store: ShieldStore, key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("name,mobile\nWang,13800138000\n")
    with pytest.raises(InputFileError, match="no column 'phone'"):
        await run(store, key, request(path, "csv", column="phone"))
    with pytest.raises(InvalidInput, match="--column"):
        await run(store, key, request(path, "csv"))
    assert (await store.stats(T0)).entries == 0


@pytest.mark.parametrize("make", ["missing", "directory"])
async def test_unreadable_files_are_clear_errors(
    store: ShieldStore, key: bytes, tmp_path: Path, make: str
) -> None:
    path = tmp_path / "in"
    if make == "directory":
        path.mkdir()
    with pytest.raises(InputFileError, match="does not exist" if make == "missing" else "is a directory"):
        await run(store, key, request(path))


async def test_parallel_workers_give_the_same_result(store: ShieldStore, key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    lines = [f"+86138{i:08d}" if i % 7 else f"bad{i}" for i in range(5000)]
    path.write_text("\n".join(lines) + "\n")
    summary = await run(store, key, request(path, workers=2, batch_lines=700))
    assert (summary.lines, summary.invalid) == (5000, 715)
    assert summary.added == 5000 - 715
    rejected = [int(r.split("\t")[0]) for r in path.with_name("big.txt.rejects").read_text().splitlines()[1:]]
    assert rejected == [i + 1 for i in range(0, 5000, 7)]


async def test_hash_export_moves_a_list_to_a_store_with_the_same_key(
    store: ShieldStore, key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "list.txt"
    path.write_text("13800138000\n13900139000\n")
    await run(store, key, request(path, scope=Scope("acme")))
    export = tmp_path / "export.csv"
    with export.open("w") as out:
        assert await write_export(store.entries(), out, hashes=True, fingerprint=store.key_fingerprint) == 2
    assert "13800138000" not in export.read_text()
    from callshield.store.sqlite import SqliteStore

    other = await SqliteStore.open(tmp_path / "other.db", key)
    try:
        summary = await run(other, key, request(export, "hashes"))
        assert summary.added == 2
        assert [e.scope async for e in other.entries()] == [Scope("acme")] * 2
        assert len((await other.lookup("+8613800138000")).entries) == 1
    finally:
        await other.close()
    stranger = await SqliteStore.open(tmp_path / "stranger.db", os.urandom(32))
    try:
        with pytest.raises(InputFileError, match="made with key"):
            await run(stranger, key, request(export, "hashes"))
    finally:
        await stranger.close()


async def test_import_is_audited_as_a_whole(store: ShieldStore, key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("13800138000\nxx\n")
    await run(store, key, request(path))
    records = [r async for r in store.audit_records()]
    assert [r.action for r in records] == ["import-start", "import"]
    details = records[1].details()
    assert (details["added"], details["invalid"], details["file"]) == (1, 1, "list.txt")


def mixed_list(count: int) -> tuple[bytes, list[int], list[int]]:
    """``count`` lines: numbers (E.164, or national with CRLF) some of them repeated, comments and
    invalid lines. Returns the file, the numbers ``n`` (of ``+86138`` and 8 digits) line by line,
    and the invalid lines' numbers."""
    lines, numbers, invalid = [], [], []
    for i in range(count):
        if i % 13 == 5:
            lines.append(b"not a number")
            invalid.append(i + 1)
        elif i % 29 == 0:
            lines.append(b"# comment")
        else:
            n = i // 2 if i % 17 == 3 else i  # some numbers twice
            lines.append(b"+86138%08d" % n if i % 3 else b"138 %04d %04d\r" % divmod(n, 10_000))
            numbers.append(n)
    return b"\n".join(lines) + b"\n", numbers, invalid


@pytest.mark.parametrize(("buckets", "workers"), [(1, 0), (5, 0), (3, 2)])
async def test_a_bucketed_import_gives_what_a_streamed_one_gives(
    store: ShieldStore, key: bytes, tmp_path: Path, buckets: int, workers: int
) -> None:
    path = tmp_path / "list.txt"
    data, numbers, invalid = mixed_list(3000)
    path.write_bytes(data)
    req = request(path, buckets=buckets, workers=workers, batch_lines=400, spill_dir=tmp_path)
    summary = await run(store, key, req)
    distinct = len(set(numbers))
    assert distinct < len(numbers)
    assert (summary.lines, summary.invalid) == (len(numbers) + len(invalid), len(invalid))
    assert (summary.added, summary.already_present) == (distinct, len(numbers) - distinct)
    rejects = path.with_name("list.txt.rejects").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rejects] == invalid
    entries = [e async for e in store.entries()]
    assert len(entries) == distinct
    assert {"+86138****0001", "+86138****2999"} <= {e.masked for e in entries}
    assert len((await store.lookup("+8613800002999")).entries) == 1
    again = await run(store, key, req)
    assert (again.added, again.already_present, again.invalid) == (0, len(numbers), len(invalid))
    assert [e async for e in store.entries()] == entries
    assert list(tmp_path.glob("callshield-import-*")) == []


async def test_spill_files_are_private_hold_no_plaintext_and_go_away(
    store: ShieldStore, key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"".join(b"+86139%08d\n" % (i * 7919) for i in range(2000)))
    spilled: list[tuple[int, set[int], bytes]] = []

    def phase(label: str, total: int) -> None:
        if label == "inserting":  # every row is in the bucket files now
            (spill,) = tmp_path.glob("callshield-import-*")
            files = sorted(spill.iterdir())
            modes = {f.stat().st_mode & 0o777 for f in files}
            spilled.append((spill.stat().st_mode & 0o777, modes, b"".join(f.read_bytes() for f in files)))

    summary = await import_file(
        store, request(path, buckets=4, spill_dir=tmp_path), key, RULES, "test", T0, phase=phase
    )
    assert summary.added == 2000
    ((directory, files, data),) = spilled
    assert (directory, files) == (0o700, {0o600})
    assert data.count(b"****") == 2000
    assert not any(b"139%08d" % (i * 7919) in data for i in range(2000))
    assert list(tmp_path.glob("callshield-import-*")) == []


async def test_an_import_that_fails_midway_leaves_whole_buckets_and_a_rerun_completes_it(
    store: ShieldStore, key: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "list.txt"
    data, numbers, _ = mixed_list(2000)
    path.write_bytes(data)
    insert, calls = store.import_rows, []

    async def failing(rows: Sequence[ImportRow]) -> int:
        calls.append(len(rows))
        if len(calls) == 3:
            raise StoreUnavailable("store is unavailable: database is locked")
        return await insert(rows)

    monkeypatch.setattr(store, "import_rows", failing)
    req = request(path, buckets=6, spill_dir=tmp_path)
    with pytest.raises(StoreUnavailable):
        await run(store, key, req)
    assert list(tmp_path.glob("callshield-import-*")) == []
    partial = (await store.stats(T0)).entries
    assert 0 < partial < len(set(numbers))
    monkeypatch.setattr(store, "import_rows", insert)
    summary = await run(store, key, req)
    assert (summary.added, summary.already_present) == (
        len(set(numbers)) - partial,
        len(numbers) - summary.added,
    )
    assert (await store.stats(T0)).entries == len(set(numbers))


async def test_a_failed_bucket_lets_the_one_in_flight_end_and_starts_no_other(
    store: ShieldStore, key: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two buckets are inserted at once: when the second fails while the first still runs, no
    third starts, the first ends (its transaction whole) and then the failure is raised."""
    path = tmp_path / "list.txt"
    data, _, _ = mixed_list(2000)
    path.write_bytes(data)
    insert, started, ended = store.import_rows, [], []

    async def slow_then_failing(rows: Sequence[ImportRow]) -> int:
        started.append(len(rows))
        if len(started) > 1:
            raise StoreUnavailable("store is unavailable: connection lost")
        await asyncio.sleep(0.2)
        ended.append(await insert(rows))
        return ended[-1]

    monkeypatch.setattr(store, "import_rows", slow_then_failing)
    req = request(path, buckets=6, spill_dir=tmp_path)
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(run(store, key, req), 30)
    assert len(started) == 2 and len(ended) == 1
    assert list(tmp_path.glob("callshield-import-*")) == []
    assert (await store.stats(T0)).entries == ended[0] > 0


@pytest.mark.parametrize("buckets", [0, 2])
async def test_progress_reports_each_phase_to_its_end(
    store: ShieldStore, key: bytes, tmp_path: Path, buckets: int
) -> None:
    path = tmp_path / "list.txt"
    data, numbers, _ = mixed_list(1000)
    path.write_bytes(data)
    phases: list[tuple[str, int]] = []
    done: list[int] = []

    def phase(label: str, total: int) -> None:
        phases.append((label, total))
        done.append(0)

    def progress(n: int) -> None:
        done[-1] += n

    req = request(path, buckets=buckets, batch_lines=100, spill_dir=tmp_path)
    await import_file(store, req, key, RULES, "test", T0, progress, None, phase)
    if buckets:
        assert phases == [("reading", len(data)), ("inserting", len(numbers))]
        assert done == [len(data), len(numbers)]
    else:
        assert phases == [("importing", len(data))]
        assert done == [len(data)]


def test_the_parser_processes_do_not_load_the_service_or_the_ari_client() -> None:
    """A spawned parser process imports the main script, hence ``callshield.cli``: that must not
    bring the rest of the command line (service, ARI client, aiohttp) into every worker."""
    code = (
        "import sys, callshield.cli, callshield.import_spill\n"
        "print(sorted(m for m in ('aiohttp', 'callshield.service', 'callshield.cli_admin',"
        " 'callshield.ari.client') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"
