"""Benchmark: bulk import into the PostgreSQL store, end to end and the store's part alone.

Against a real local PostgreSQL (``--dsn``, else ``$CALLSHIELD_TEST_PG``, else a throwaway cluster
started with ``scripts/pg`` and removed afterwards), this generates (once; cached in ``bench/out/``)
a text file of ``--lines`` distinct valid E.164 numbers, then:

1. ``callshield --config X import FILE`` in a subprocess into a fresh schema (``store.url`` in the
   config, the password in ``$PGPASSWORD``): wall time and numbers added per second (target >=
   100,000/s), the CPU seconds of the CLI (with its parser workers) and of the server (when it
   runs on this machine: read from /proc), and the CLI's summary line; then the same file again
   (adds 0, the re-run);
2. with ``--hashes``: ``callshield export --hashes`` of that store, imported into another fresh
   schema: the same pipeline without phone-number parsing (what the store and the CLI cost);
3. the store's part alone, in-process: ``PostgresStore.import_rows`` over ``--store-rows``
   pre-hashed rows in 20k-row batches (COPY into a temporary table, then ``INSERT ... ON CONFLICT
   DO NOTHING``), and, as its floor, asyncpg's binary ``COPY`` of the same rows straight into an
   empty copy of the entries table (no conflict handling, so not a sound import by itself).

With ``--phases``, the import also runs in-process (into another fresh schema) with its two phases
timed apart: reading (parsing in worker processes, rows spilled to hash buckets) and inserting
(each bucket COPYed and merged into the indexed table), with the CPU seconds of the main process,
the workers and the server in each: where the time goes.

Figures are printed, never asserted.

    .venv/bin/python bench/pg_import.py                       # 10M lines (the issue's size); long
    .venv/bin/python bench/pg_import.py --lines 1000000 --hashes --phases
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from callshield.importer import ImportRequest, import_file
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.privacy import keyed_hash, mask
from callshield.store import describe
from callshield.store.base import ImportRow
from callshield.store.postgres import PostgresStore
from pg_check import ServerCpu, fresh_schema, local_cluster

OUT = Path(__file__).resolve().parent / "out"
CLI = Path(sys.executable).with_name("callshield")
PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "186", "187", "188")
SPACE = len(PREFIXES) * 10**8
STEP = 2_654_435_761  # coprime with SPACE: i -> (STEP * i + OFFSET) % SPACE visits distinct numbers
OFFSET = 987_654_321
BATCH = 20_000


def number(i: int) -> str:
    n = (STEP * i + OFFSET) % SPACE
    return f"+86{PREFIXES[n // 10**8]}{n % 10**8:08d}"


def input_file(lines: int) -> Path:
    path = OUT / f"pg-import-{lines}.txt"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for start in range(0, lines, 100_000):
                f.write("".join(number(i) + "\n" for i in range(start, min(lines, start + 100_000))))
        tmp.rename(path)
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"callshield {args[2]} failed ({done.returncode}): {done.stderr.strip()}")
    return wall, (done.stdout + done.stderr).strip()


def cpu_text(client: float, server: float | None) -> str:
    shown = f"cpu: callshield {client:.1f} s"
    return shown + ("" if server is None else f", server {server:.1f} s")


def pipeline_env(url: str, workdir: Path, name: str) -> dict[str, str]:
    """A config for ``url`` (password moved to $PGPASSWORD) sharing one key file."""
    config = workdir / f"{name}.toml"
    config.write_text(f'[store]\nurl = "{describe(url)}"\nkey_file = "{workdir}/shield.key"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")}
    password = re.search(r"//[^:/@]*:([^@]*)@", url)
    if password:
        env["PGPASSWORD"] = password.group(1)
    return env | {"CALLSHIELD_CONFIG": str(config), "CALLSHIELD_ACTOR": "bench"}


def report(label: str, wall: float, count: int, summary: str, cpu: str = "") -> None:
    line = summary.splitlines()[-1] if summary else ""
    print(f"  {label:28} wall {wall:8.1f} s   {count / wall:10,.0f} numbers/s   ({line})")
    if cpu:
        print(f"  {'':28} {cpu}")


async def timed_cli(env: dict[str, str], server: ServerCpu, *args: str) -> tuple[float, str, str]:
    """``cli`` with the CPU it and the server used."""
    client, before = children_cpu(), server.seconds()
    wall, out = cli(env, *args)
    after = server.seconds()
    used = None if before is None or after is None else after - before
    return wall, out, cpu_text(children_cpu() - client, used)


def added(summary: str) -> int:
    found = re.search(r"(\d+) added", summary)
    return int(found.group(1)) if found else 0


async def pipelines(dsn: str, path: Path, lines: int, args: argparse.Namespace) -> None:
    workdir = OUT / "pg-import-run"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "shield.key").unlink(missing_ok=True)
    env = pipeline_env(await fresh_schema(dsn, "bench_import"), workdir, "text")
    cli(env, "--config", env["CALLSHIELD_CONFIG"], "init")
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    rejects = str(workdir / "rejects.tsv")
    server = await ServerCpu.of(dsn)
    print("\n== callshield import (subprocess, fresh schema)")
    text_args = ("--config", env["CALLSHIELD_CONFIG"], "import", str(path), "--rejects", rejects, *extra)
    wall, out, cpu = await timed_cli(env, server, *text_args)
    report("text, first run", wall, added(out), out, cpu)
    wall, out, cpu = await timed_cli(env, server, *text_args)
    report("text, re-run (adds 0)", wall, lines, out, cpu)
    if args.hashes:
        export = workdir / "export.csv"
        cli(env, "--config", env["CALLSHIELD_CONFIG"], "export", "--hashes", "-o", str(export))
        other = pipeline_env(await fresh_schema(dsn, "bench_import_hashes"), workdir, "hashes")
        config = other["CALLSHIELD_CONFIG"]
        import_args = ("--config", config, "import", str(export), "--format", "hashes", *extra)
        wall, out, cpu = await timed_cli(other, server, *import_args)
        report("hash export, first run", wall, added(out), out, cpu)
        export.unlink()


def rows(key: bytes, count: int) -> Iterator[list[ImportRow]]:
    created = int(time.time())
    for start in range(0, count, BATCH):
        batch: list[ImportRow] = []
        for i in range(start, min(count, start + BATCH)):
            e164 = number(i)
            batch.append(
                (keyed_hash(key, e164), mask(e164), "global", "import", "bench", "[]", created, None)
            )
        yield batch


async def store_part(dsn: str, count: int) -> None:
    key = os.urandom(32)
    batches = list(rows(key, count))
    store = await PostgresStore.open(await fresh_schema(dsn, "bench_import_rows"), key)
    try:
        start = time.perf_counter()
        total = sum([await store.import_rows(b) for b in batches])
        wall = time.perf_counter() - start
        again = time.perf_counter()
        readded = sum([await store.import_rows(b) for b in batches[:5]])
        again_wall = time.perf_counter() - again
    finally:
        await store.close()
    print(f"\n== the store's part alone ({count:,} pre-hashed rows, {BATCH:,} per batch)")
    print(f"  PostgresStore.import_rows    wall {wall:8.1f} s   {total / wall:10,.0f} rows/s")
    redo = sum(len(b) for b in batches[:5])
    print(f"  the same rows again          {redo / again_wall:10,.0f} rows/s (added {readded})")
    con = await asyncpg.connect(await fresh_schema(dsn, "bench_import_floor"))
    try:
        await con.execute("CREATE TABLE entries (LIKE bench_import_rows.entries INCLUDING ALL)")
        start = time.perf_counter()
        for b in batches:
            records = [
                (h, m, s, src, r, ev, datetime.fromtimestamp(c, UTC), None) for h, m, s, src, r, ev, c, _ in b
            ]
            await con.copy_records_to_table("entries", records=records)
        wall = time.perf_counter() - start
    finally:
        await con.close()
    label = "floor: COPY into entries"
    print(f"  {label:28} wall {wall:8.1f} s   {count / wall:10,.0f} rows/s (no conflict check)")


async def phases(dsn: str, path: Path, server: ServerCpu) -> None:
    """The import in-process, its phases timed apart, with the CPU of each part."""
    key = os.urandom(32)
    store = await PostgresStore.open(await fresh_schema(dsn, "bench_import_phases"), key)
    marks: list[tuple[str, float, float, float, float | None]] = []

    def mark(label: str, total: int = 0) -> None:
        own = os.times()
        marks.append((label, time.perf_counter(), own.user + own.system, children_cpu(), server.seconds()))

    rejects = OUT / "pg-import-run" / "phases.rejects"
    req = ImportRequest(path, "text", None, Scope(), Source.IMPORT, "bench", None, rejects)
    try:
        mark("setup")
        summary = await import_file(
            store, req, key, NumberRules(default_region="CN"), "bench", datetime.now(UTC), phase=mark
        )
        mark("end")
    finally:
        await store.close()
    print(f"\n== in-process, by phase ({summary.added:,} added)")
    for (label, wall, own, workers, pg), (_, wall2, own2, workers2, pg2) in itertools.pairwise(marks):
        used = "" if pg is None or pg2 is None else f"   server {pg2 - pg:6.1f} s"
        print(
            f"  {label:10} wall {wall2 - wall:6.1f} s   cpu: main {own2 - own:6.1f} s"
            f"   workers {workers2 - workers:6.1f} s{used}"
        )
    total = marks[-1][1] - marks[0][1]
    print(f"  {'all':10} wall {total:6.1f} s   {summary.added / total:10,.0f} numbers/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN (default: $CALLSHIELD_TEST_PG, else a throwaway cluster)"
    )
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, help="callshield import --workers (default: its own)")
    parser.add_argument("--hashes", action="store_true", help="also import a hash export (no parsing)")
    parser.add_argument("--store-rows", type=int, default=1_000_000, help="rows for the store-only run")
    parser.add_argument("--skip-cli", action="store_true", help="only the store's part")
    parser.add_argument("--phases", action="store_true", help="also run in-process, phases timed apart")
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, asyncpg {asyncpg.__version__}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.2f} at start"
    )
    path = input_file(args.lines)
    print(f"input {path}: {args.lines:,} distinct E.164 numbers, {path.stat().st_size / 2**20:,.0f} MiB")
    with local_cluster(args.dsn) as dsn:

        async def run() -> None:
            if not args.skip_cli:
                await pipelines(dsn, path, args.lines, args)
            if args.phases:
                await phases(dsn, path, await ServerCpu.of(dsn))
            await store_part(dsn, args.store_rows)

        asyncio.run(run())


if __name__ == "__main__":
    main()
