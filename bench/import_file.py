"""Benchmark: ``callshield import`` of a large text file, end to end, against its floors.

Generates (once; cached in ``bench/out/``) a text file of ``--lines`` numbers, by default 10M:
mostly E.164 (``+8613800138000``), some in national format (``138 0013 8000``), a few duplicates
and a few invalid lines, from a fixed seed. Then, for each ``--workers`` setting, it creates a
fresh store with ``callshield init`` and times ``callshield --config X import FILE [--workers N]``
in a subprocess, the real pipeline, and reports:

* wall time, lines/s and numbers/s (valid numbers added per second; target >= 100,000/s),
* peak memory of the whole process tree (the CLI, its parser workers, the resource tracker),
  polled every 0.2 s from /proc: the peak of the summed RSS (target <= 200 MB), the peak of the
  summed PSS (shared pages split between the processes) and the largest single VmHWM,
* the CLI's own summary line (lines, added, already present, invalid), checked against what the
  generator wrote.

The first setting's store is then imported into again: an idempotent re-run adds 0.

Floors, for comparison: one core's parse cost per line (``parse_chunk`` in-process, lines/s), and
raw ``sqlite3`` inserts of as many pre-hashed rows into the same schema the way the import now
stores a large file: one transaction per hash bucket (as many buckets as the import uses for the
file), the store's packed statement and pragmas; hashing and reading the buckets excluded.

``--profile`` also runs the import in-process under cProfile (the main process's thread only:
reading, pickling, the event loop) with the time spent in ``store.import_rows`` measured apart;
the top functions are printed and the profile is saved in ``bench/out/``.

Figures are printed, never asserted. Repeat with ``--repeat`` to see the noise (best and median).

    .venv/bin/python bench/import_file.py                           # 10M lines (the issue's size)
    .venv/bin/python bench/import_file.py --lines 200000 --workers default 0   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench_version import code_version
from callshield.import_parse import ChunkSpec, open_input, parse_chunk, read_chunks
from callshield.import_spill import bucket_count, bucket_of
from callshield.importer import CHUNK_LINES, ImportRequest, import_file
from callshield.models import GLOBAL, Source
from callshield.numbers import NumberRules
from callshield.privacy import keyed_hash
from callshield.store.base import ImportRow
from callshield.store.sqlite import SqliteStore

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
CLI = Path(sys.executable).with_name("callshield")
FORMAT = 1
"""Version of the generated file; a cached file of another version is regenerated."""

PREFIXES: tuple[int, ...] = (130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156)
PREFIXES += (157, 158, 159, *range(180, 190))
SPACE = len(PREFIXES) * 10**8
STEP = 2_654_435_761
OFFSET = 987_654_321
INVALID = ("+86 12345", "1380013800", "+861380013800012345", "not a number", "110", "+999 1234 5678")
"""Too short for CN, 10 digits, too long, letters, an emergency code, an unassigned country code."""
SHARE_NATIONAL = 0.10
SHARE_DUPLICATE = 0.01
SHARE_INVALID = 0.04
INSERT_SQL = (
    "INSERT INTO entries (number_hash, masked, scope, source, reason, evidence, created_at, expires_at)"
    " SELECT substr(?1, 32 * j.key + 1, 32), j.value, ?3, ?4, ?5, ?6, ?7, ?8 FROM json_each(?2) AS j"
    " ORDER BY 1, j.key ON CONFLICT DO NOTHING"
)
"""The store's statement for a batch of a list (``Writer.import_rows`` in store/sqlite_tx.py)."""
YEAR = 365 * 86400


def digits_of(i: int) -> str:
    """The i-th distinct CN mobile number (national digits): a permutation of the number space."""
    v = (STEP * i + OFFSET) % SPACE
    return f"{PREFIXES[v // 10**8]}{v % 10**8:08d}"


# -- the input file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    path: Path
    lines: int
    unique: int
    """Distinct valid numbers (numbers 0..unique-1 of :func:`digits_of`)."""
    duplicates: int
    invalid: int


def input_file(lines: int, seed: int, log: Callable[[str], None]) -> InputFile:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"import-{lines}-{seed}.txt"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == FORMAT and meta.get("size") == path.stat().st_size:
            log(f"reusing {path}")
            return InputFile(path, meta["lines"], meta["unique"], meta["duplicates"], meta["invalid"])
    log(f"generating {path} ({lines:,} lines) ...")
    started = time.perf_counter()
    rng = random.Random(seed)
    unique = duplicates = invalid = 0
    with path.open("w", encoding="ascii", buffering=1 << 20) as f:
        buf: list[str] = []
        for _ in range(lines):
            r = rng.random()
            if r < SHARE_INVALID:
                buf.append(INVALID[int(r / SHARE_INVALID * len(INVALID))])
                invalid += 1
            elif r < SHARE_INVALID + SHARE_DUPLICATE and unique:
                buf.append("+86" + digits_of(rng.randrange(unique)))
                duplicates += 1
            elif r < SHARE_INVALID + SHARE_DUPLICATE + SHARE_NATIONAL:
                d = digits_of(unique)
                buf.append(f"{d[:3]} {d[3:7]} {d[7:]}")
                unique += 1
            else:
                buf.append("+86" + digits_of(unique))
                unique += 1
            if len(buf) >= 100_000:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
    meta = {
        "format": FORMAT,
        "lines": lines,
        "seed": seed,
        "unique": unique,
        "duplicates": duplicates,
        "invalid": invalid,
        "size": path.stat().st_size,
    }
    meta_path.write_text(json.dumps(meta))
    log(f"generated in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
    return InputFile(path, lines, unique, duplicates, invalid)


# -- memory of a process tree -------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (in parentheses) may contain spaces: fields after the last ')'
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(root: int) -> list[int]:
    tree = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _status_kib(pid: int, fields: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                for text in f:
                    key, _, rest = text.partition(":")
                    if key in fields:
                        out[f"{name}.{key}"] = int(rest.split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def _role(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return "?"
    if b"spawn_main" in cmdline:
        return "worker"
    return "tracker" if b"resource_tracker" in cmdline else "other"


@dataclass
class TreeMemory:
    """Peaks of a process tree, polled."""

    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    hwm: dict[int, int] = field(default_factory=dict)
    """Last VmHWM seen per process (KiB)."""
    roles: dict[int, str] = field(default_factory=dict)

    def sample(self, root: int) -> None:
        rss = pss = 0
        pids = _descendants(root)
        for pid in pids:
            s = _status_kib(pid, ("VmRSS", "VmHWM", "Pss"))
            rss += s.get("status.VmRSS", 0)
            pss += s.get("smaps_rollup.Pss", 0)
            if "status.VmHWM" in s:
                self.hwm[pid] = max(self.hwm.get(pid, 0), s["status.VmHWM"])
                if pid not in self.roles:
                    self.roles[pid] = "main" if pid == root else _role(pid)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(pids))


# -- running the CLI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    label: str
    wall: float
    lines: int
    added: int
    present: int
    invalid: int
    memory: TreeMemory
    output: str


SUMMARY = re.compile(
    r": (\d+) lines, (\d+) added, (\d+) already present, (\d+) invalid",
)


def make_config(workdir: Path) -> Path:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config = workdir / "callshield.toml"
    config.write_text(f'[store]\npath = "{workdir / "shield.db"}"\nkey_file = "{workdir / "shield.key"}"\n')
    subprocess.run([str(CLI), "--config", str(config), "init"], check=True, capture_output=True)
    return config


def run_import(config: Path, data: InputFile, workers: str, label: str, poll: float) -> Run:
    cmd = [str(CLI), "--config", str(config), "--actor", "bench", "import", str(data.path)]
    cmd += ["--rejects", str(config.with_name("rejects.tsv"))]
    if workers != "default":
        cmd += ["--workers", workers]
    memory = TreeMemory()
    out_file = config.with_name(f"{label}.out")
    with out_file.open("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            memory.sample(proc.pid)
            time.sleep(poll)
        wall = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")
    found = SUMMARY.search(output)
    if found is None:
        raise SystemExit(f"no summary line in the output of {' '.join(cmd)}:\n{output}")
    lines, added, present, invalid = (int(g) for g in found.groups())
    return Run(label, wall, lines, added, present, invalid, memory, output.strip().splitlines()[-1])


def show_run(run: Run, data: InputFile) -> None:
    m = run.memory
    print(
        f"  {run.label:<24} wall {run.wall:7.1f} s  {run.lines / run.wall:>9,.0f} lines/s"
        f"  {run.added / run.wall:>9,.0f} added/s   peak tree RSS {m.peak_rss / 1024:6.1f} MiB"
        f"  PSS {m.peak_pss / 1024:6.1f} MiB"
    )
    print(
        f"  {'':<24} per-process peak VmHWM: largest {max(m.hwm.values(), default=0) / 1024:5.1f} MiB,"
        f" sum {sum(m.hwm.values()) / 1024:5.1f} MiB over {len(m.hwm)} processes (an upper bound of the"
        " tree's peak)"
    )
    each = ", ".join(f"{m.roles.get(pid, '?')} {kib / 1024:.0f}" for pid, kib in sorted(m.hwm.items()))
    print(f"  {'':<24} VmHWM by process, MiB: {each}")
    print(f"  {'':<24} cli: {run.output}")
    expected_valid = data.unique + data.duplicates
    if (run.lines, run.invalid) != (data.lines, data.invalid) or run.added + run.present != expected_valid:
        print(
            f"  !! expected {data.lines} lines, {expected_valid} valid ({data.unique} distinct),"
            f" {data.invalid} invalid"
        )


# -- floors -------------------------------------------------------------------------------------


def _spec(key: bytes) -> ChunkSpec:
    now = int(time.time())
    evidence = json.dumps([{"import": "bench", "at": datetime.now(UTC).isoformat(timespec="seconds")}])
    return ChunkSpec("text", 0, key, NumberRules(), "global", "import", "imported list", evidence, now, None)


def floor_parse(data: InputFile, sample_lines: int) -> float:
    """One core: parse_chunk over the first ``sample_lines`` lines, in us per line."""
    spec = _spec(secrets.token_bytes(32))
    with open_input(data.path) as f:
        chunks = []
        for chunk in read_chunks(f, 1, CHUNK_LINES):
            chunks.append(chunk)
            if sum(len(c.lines) for c in chunks) >= sample_lines:
                break
    lines = sum(len(c.lines) for c in chunks)
    started = time.perf_counter()
    for chunk in chunks:
        parse_chunk(spec, chunk)
    return (time.perf_counter() - started) / lines * 1e6


def _floor_spill(key: bytes, count: int, buckets: int, where: Path) -> list[Path]:
    """Numbers 0..count-1 hashed and masked into one file per hash bucket, as the import spills them
    (records: 32-byte hash, 14-byte masked form; not timed)."""
    paths = [where / f"bucket-{i}" for i in range(buckets)]
    files = [p.open("wb") for p in paths]
    try:
        for i in range(count):
            e = "+86" + digits_of(i)
            digest = keyed_hash(key, e)
            files[bucket_of(digest, buckets)].write(digest + f"{e[:6]}****{e[-4:]}".encode())
    finally:
        for f in files:
            f.close()
    return paths


async def _fresh_store(path: Path, key: bytes) -> None:
    store = await SqliteStore.open(path, key)  # schema, WAL, meta rows: as the CLI's store
    await store.close()


def floor_insert(
    workdir: Path, count: int, buckets: int, log: Callable[[str], None]
) -> tuple[float, list[tuple[int, float]]]:
    """Raw sqlite3: ``count`` pre-hashed rows in ``buckets`` hash buckets, each one transaction of
    the store's packed statement (hashes as a blob, masked forms as JSON, sorted in SQLite), with an
    expiry (its index kept, as for the CLI's default) and the store's settings (WAL,
    synchronous=FULL). Returns the insert time (hashing and reading the buckets excluded) and, per
    tenth of the buckets, the rows inserted and the time they took."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db, key = workdir / "floor.db", secrets.token_bytes(32)
    asyncio.run(_fresh_store(db, key))
    spec = _spec(key)
    tail = (spec.scope, spec.source, spec.reason, spec.evidence, spec.created_at, spec.created_at + YEAR)
    log(f"floor: hashing {count:,} rows into {buckets} buckets ...")
    paths = _floor_spill(key, count, buckets, workdir)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")
    tenths: list[tuple[int, float]] = []
    mark_rows = done = 0
    spent = mark_time = 0.0
    log(f"floor: inserting {count:,} rows ...")
    try:
        for n, path in enumerate(paths, 1):
            data = path.read_bytes()
            blob = b"".join(data[i : i + 32] for i in range(0, len(data), 46))
            masked = json.dumps([data[i + 32 : i + 46].decode() for i in range(0, len(data), 46)])
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_SQL, (blob, masked, *tail))
            conn.execute("COMMIT")
            spent += time.perf_counter() - started
            done += len(data) // 46
            if n * 10 // buckets > (n - 1) * 10 // buckets or n == buckets:
                tenths.append((done - mark_rows, spent - mark_time))
                mark_rows, mark_time = done, spent
    finally:
        conn.close()
        shutil.rmtree(workdir)
    return spent, tenths


# -- profile of the main process ------------------------------------------------------------------


async def _profiled_import(data: InputFile, workdir: Path, workers: int | None) -> tuple[float, float]:
    key = secrets.token_bytes(32)
    store = await SqliteStore.open(workdir / "profile.db", key)
    inserting = 0.0
    original = store.import_rows

    async def timed(batch: Sequence[ImportRow]) -> int:
        nonlocal inserting
        started = time.perf_counter()
        try:
            return await original(batch)
        finally:
            inserting += time.perf_counter() - started

    setattr(store, "import_rows", timed)  # noqa: B010  (mypy refuses assigning to a method)
    req = ImportRequest(
        data.path, "text", None, GLOBAL, Source.IMPORT, "imported list", None, workdir / "rejects", workers
    )
    started = time.perf_counter()
    try:
        await import_file(store, req, key, NumberRules(), "bench", datetime.now(UTC))
    finally:
        await store.close()
    return time.perf_counter() - started, inserting


def profile_main(data: InputFile, workdir: Path, workers: int | None, top: int) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    profiler = cProfile.Profile()
    profiler.enable()
    wall, inserting = asyncio.run(_profiled_import(data, workdir, workers))
    profiler.disable()
    shutil.rmtree(workdir)
    saved = OUT / "import-main.prof"
    profiler.dump_stats(saved)
    print(
        f"\n== profile of the main process (in-process import_file, workers={workers}, under cProfile;"
        f" saved to {saved.relative_to(ROOT)})"
    )
    print(
        f"  wall {wall:.1f} s, of which awaiting store.import_rows (aiosqlite thread: the insert +"
        f" commit) {inserting:.1f} s ({inserting / wall:.0%}); the rest is reading, feeding the"
        " workers, waiting for them and unpickling their rows"
    )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    body = text.getvalue()
    print(body[body.index("ncalls") - 3 :] if "ncalls" in body else body)


# -- main ---------------------------------------------------------------------------------------


def stats_line(values: list[float], unit: str, fmt: str = ",.1f") -> str:
    if len(values) == 1:
        return f"{values[0]:{fmt}} {unit}"
    return f"best {min(values):{fmt}}  median {statistics.median(values):{fmt}} {unit} ({len(values)} runs)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines of the file (default 10000000)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--workers",
        nargs="*",
        default=["default", "0", "2"],
        help="settings to run: 'default' (no --workers: one per core above 4 MB) or a number"
        " (default: default 0 2; none: skip the imports)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting (default 1)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the idempotent re-run")
    parser.add_argument("--no-floor", action="store_true", help="skip the raw sqlite3 insert floor")
    parser.add_argument(
        "--parse-sample",
        type=int,
        default=200_000,
        help="lines for the one-core parse floor (default 200000)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the main process (cProfile)")
    parser.add_argument("--profile-workers", type=int, default=2, help="workers for --profile (default 2)")
    parser.add_argument("--poll", type=float, default=0.2, help="memory poll interval, s (default 0.2)")
    return parser.parse_args()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def imports(data: InputFile, args: argparse.Namespace, workdir: Path) -> None:
    """Every --workers setting, --repeat times, each into a fresh store; then the re-run."""
    print("\n== callshield import (subprocess; fresh store each run)")
    first_config: Path | None = None
    runs: dict[str, list[Run]] = {}
    for workers in args.workers:
        for n in range(args.repeat):
            label = f"workers={workers}" + (f" #{n + 1}" if args.repeat > 1 else "")
            log(f"importing, {label} ...")
            here = workdir / f"w{workers}-{n}"
            config = make_config(here)
            run = run_import(config, data, workers, label, args.poll)
            runs.setdefault(workers, []).append(run)
            show_run(run, data)
            sys.stdout.flush()
            if first_config is None:
                first_config = config
            else:
                shutil.rmtree(here)
    if len(args.workers) > 1 or args.repeat > 1:
        print("\n  summary per setting:")
        for workers, done in runs.items():
            rates = [r.added / r.wall for r in done]
            walls = [r.wall for r in done]
            rss = [r.memory.peak_rss / 1024 for r in done]
            print(
                f"  workers={workers:<8} added/s {stats_line(rates, '', ',.0f')}  wall"
                f" {stats_line(walls, 's')}  peak RSS {stats_line(rss, 'MiB')}"
                "   (targets: >= 100,000/s, <= 200 MB)"
            )
    if first_config is None:
        return
    if not args.no_rerun:
        log("re-running the first import on the same store ...")
        print(f"\n== idempotent re-run of workers={args.workers[0]} on the store it filled")
        rerun = run_import(first_config, data, args.workers[0], "re-run", args.poll)
        show_run(rerun, data)
        print(f"  re-run added {rerun.added} (expected 0), {rerun.present:,} already present")
    shutil.rmtree(first_config.parent)


def floors(data: InputFile, args: argparse.Namespace, workdir: Path) -> None:
    print("\n== floors")
    us = floor_parse(data, args.parse_sample)
    print(
        f"  parse_chunk on one core ({min(args.parse_sample, data.lines):,} lines): {us:.2f} us/line ="
        f" {1e6 / us:,.0f} lines/s per core, {2e6 / us:,.0f} lines/s on 2 cores if nothing else ran"
    )
    if not args.no_floor:
        buckets = bucket_count(data.path.stat().st_size)
        spent, tenths = floor_insert(workdir / "floor", data.unique, buckets, log)
        print(
            f"  raw sqlite3 of {data.unique:,} pre-hashed rows, the store's packed statement, one"
            f" transaction per hash bucket ({buckets}, as the import of a file this size above 4 MB),"
            " synchronous=FULL, WAL:"
            f" {spent:.1f} s = {data.unique / spent:,.0f} rows/s"
        )
        per_tenth = ", ".join(f"{rows / t / 1000:,.0f}k" for rows, t in tenths)
        print(f"    rows/s by tenth of the buckets, as the table grows: {per_tenth}")


def main() -> None:
    args = parse_args()
    data = input_file(args.lines, args.seed, log)
    valid = data.unique + data.duplicates
    size = data.path.stat().st_size / 2**20
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.2f} at start; {code_version()}"
    )
    print(
        f"input {data.path.relative_to(ROOT)}: {data.lines:,} lines, {size:.0f} MiB; {valid:,} valid"
        f" ({data.unique:,} distinct, {data.duplicates:,} repeated), {data.invalid:,} invalid"
    )
    workdir = OUT / "import-run"
    if args.workers:
        imports(data, args, workdir)
    floors(data, args, workdir)
    if args.profile:
        profile_main(data, workdir / "profile", args.profile_workers, 25)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
