"""Bulk import: formats, rejects, idempotence, parallel parsing, flat memory."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from callshield.errors import InputFileError, InvalidInput
from callshield.importer import ImportRequest, ImportSummary, import_file
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore
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
