"""Benchmark: the gate's check against a PostgreSQL store, beside a bare asyncpg primary-key SELECT.

Against a real local PostgreSQL (``--dsn``, else ``$CALLSHIELD_TEST_PG``, else a throwaway cluster
started with ``scripts/pg`` and removed afterwards), in a fresh schema, this loads ``--entries``
random Chinese mobile numbers through ``PostgresStore.import_rows`` and then measures, in one
process and one asyncio loop, over ``--checks`` numbers of which half are in the store:

* floor: one bare asyncpg connection, ``fetchrow("SELECT ... FROM entries WHERE number_hash = $1")``
  with the hash computed beforehand (no hashing, no pool, no prefix rules);
* ``await store.lookup(e164)``: keyed hash, prefix-key hashes, pool, the one look-up statement;
* ``await gate.check(digits)``: the whole gate (classify, look-up, decide, deadline);

each sequentially (one call at a time) and with ``--concurrency`` calls in flight (the floor then
uses that many bare connections, one per worker). It prints calls/s, p50 and p99, and the ratios
look-up/floor in throughput and in p99, and the CPU per call of this process (the client) and of the
server (when it runs on this machine). Every figure is the best and the median of ``--repeat``
passes, which interleave the measurements. Nothing is asserted.

The throughput target (>= 0.7x the floor) is read from the run with several calls in flight: one
at a time, the rate is the inverse of a round trip and both sides mostly wait (a latency figure,
as noisy as the machine's scheduling); with calls in flight, client and server keep the cores busy
and the rate is set by what each call costs in CPU, which is what bounds the calls a gate can take.
The p99 target is read from both.

    .venv/bin/python bench/pg_check.py                                  # 1M entries
    .venv/bin/python bench/pg_check.py --entries 100000 --checks 5000   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from callshield.gate import Gate
from callshield.models import Action, PrefixRule, Scope
from callshield.numbers import NumberRules
from callshield.privacy import keyed_hash, mask
from callshield.store.base import ImportRow
from callshield.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parents[1]
PRESENT_PREFIXES = ("138", "139", "150", "151", "186", "187")
ABSENT_PREFIX = "137"
BATCH = 20_000


@contextmanager
def local_cluster(dsn: str | None) -> Iterator[str]:
    """The given DSN, or ``$CALLSHIELD_TEST_PG``, or a throwaway cluster (scripts/pg) for the run."""
    found = dsn or os.environ.get("CALLSHIELD_TEST_PG")
    if found:
        yield found
        return
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg"), "start"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line)
    env = {k: shlex.split(v)[0] for k, v in env.items()}
    try:
        yield env["CALLSHIELD_TEST_PG"]
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "pg"), "stop", env["CALLSHIELD_TEST_PG_DIR"]], check=False
        )


def with_schema(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query)) | {"search_path": schema}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def fresh_schema(dsn: str, name: str) -> str:
    """Drop and create schema ``name``; returns a store URL selecting it."""
    con = await asyncpg.connect(dsn)
    try:
        await con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await con.execute(f"CREATE SCHEMA {name}")
    finally:
        await con.close()
    return with_schema(dsn, name)


def numbers(count: int, seed: int, prefixes: Sequence[str]) -> list[str]:
    """``count`` distinct national mobile numbers (11 digits) over ``prefixes``."""
    rng = random.Random(seed)
    picks = rng.sample(range(len(prefixes) * 10**8), count)
    return [f"{prefixes[p // 10**8]}{p % 10**8:08d}" for p in picks]


def import_batches(key: bytes, national: Sequence[str], created: int) -> Iterator[list[ImportRow]]:
    for start in range(0, len(national), BATCH):
        batch: list[ImportRow] = []
        for n in national[start : start + BATCH]:
            e164 = "+86" + n
            batch.append(
                (keyed_hash(key, e164), mask(e164), "global", "import", "bench", "[]", created, None)
            )
        yield batch


async def load(store: PostgresStore, key: bytes, national: Sequence[str]) -> tuple[float, float]:
    """Import the numbers; returns (seconds spent in import_rows, seconds in all)."""
    start = time.perf_counter()
    in_store = 0.0
    for batch in import_batches(key, national, int(time.time())):
        t = time.perf_counter()
        await store.import_rows(batch)
        in_store += time.perf_counter() - t
    return in_store, time.perf_counter() - start


@dataclass(frozen=True)
class Pass:
    per_second: float
    p50_us: float
    p99_us: float
    client_cpu_us: float
    """CPU of this process (client, event loop) per call."""
    server_cpu_us: float | None
    """CPU of the server per call (None: not on this machine)."""


Call = Callable[[str], Awaitable[object]]


async def run_pass(per_worker: Sequence[Call], items: Sequence[str], server: ServerCpu) -> Pass:
    """One worker per callable, all taking the next item; wall-clock rate and latency percentiles."""
    latencies: list[int] = []
    feed = iter(items)

    async def worker(call: Call) -> None:
        for item in feed:
            t = time.perf_counter_ns()
            await call(item)
            latencies.append(time.perf_counter_ns() - t)

    gc.collect()
    server_before, own = server.seconds(), os.times()
    start = time.perf_counter()
    await asyncio.gather(*(worker(call) for call in per_worker))
    wall = time.perf_counter() - start
    own_after, server_after = os.times(), server.seconds()
    calls = len(latencies)
    client = (own_after.user + own_after.system - own.user - own.system) / calls * 1e6
    used = None if server_before is None or server_after is None else server_after - server_before
    latencies.sort()
    return Pass(
        calls / wall,
        _pct(latencies, 0.50),
        _pct(latencies, 0.99),
        client,
        None if used is None else used / calls * 1e6,
    )


def _pct(sorted_ns: Sequence[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


class ServerCpu:
    """CPU seconds of a PostgreSQL server on this machine: its processes' and those it reaped."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    @classmethod
    async def of(cls, dsn: str) -> ServerCpu:
        con = await asyncpg.connect(dsn)
        try:
            return cls(_stat(int(await con.fetchval("SELECT pg_backend_pid()")))[1])
        except OSError:
            return cls(None)  # not on this machine
        finally:
            await con.close()

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        ticks = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    pid, ppid, times = _stat(int(entry.name))
                except OSError:
                    continue
                if pid == self.postmaster:
                    ticks += sum(times)  # its own time and its reaped children's
                elif ppid == self.postmaster:
                    ticks += times[0] + times[1]
        return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, list[int]]:
    """A process's pid, parent pid and (utime, stime, cutime, cstime) in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return pid, int(fields[1]), [int(x) for x in fields[11:15]]


FLOOR_SQL = "SELECT scope, masked, source, reason, created_at, expires_at FROM entries WHERE number_hash = $1"


@dataclass
class Subjects:
    """What is measured: name -> (callables, one per worker; the items they take)."""

    runs: dict[str, tuple[list[Call], list[str]]]


async def subjects(
    url: str, store: PostgresStore, key: bytes, sample: Sequence[str], workers: int
) -> tuple[Subjects, list[asyncpg.Connection]]:
    cons = [await asyncpg.connect(url) for _ in range(workers)]
    hashes = {keyed_hash(key, "+86" + n).hex(): n for n in sample}
    by_hex = list(hashes)

    def floor(con: asyncpg.Connection) -> Call:
        async def call(item: str) -> object:
            return await con.fetchrow(FLOOR_SQL, bytes.fromhex(item))

        return call

    gate = Gate(store, NumberRules(default_region="CN"), timeout=5.0)

    async def lookup(national: str) -> object:
        return await store.lookup("+86" + national)

    async def check(national: str) -> object:
        return await gate.check(national)

    runs: dict[str, tuple[list[Call], list[str]]] = {
        "floor: bare asyncpg PK SELECT": ([floor(c) for c in cons], by_hex),
        "store.lookup(e164)": ([lookup] * workers, list(sample)),
        "gate.check(digits)": ([check] * workers, list(sample)),
    }
    return Subjects(runs), cons


async def verify(store: PostgresStore, present: Sequence[str], absent: Sequence[str]) -> None:
    """The sample is what it claims: its present half found, its absent half not."""
    found = [bool((await store.lookup("+86" + n)).entries) for n in (*present[:200], *absent[:200])]
    if found != [True] * len(present[:200]) + [False] * len(absent[:200]):
        raise SystemExit("the store does not hold the sample's present half (and only it)")


def show(name: str, passes: Sequence[Pass]) -> None:
    rate = sorted(p.per_second for p in passes)
    p99 = sorted(p.p99_us for p in passes)
    p50 = sorted(p.p50_us for p in passes)
    client = statistics.median(p.client_cpu_us for p in passes)
    servers = [p.server_cpu_us for p in passes if p.server_cpu_us is not None]
    server = f" server {statistics.median(servers):5.1f}" if servers else ""
    print(
        f"  {name:30} {rate[-1]:8,.0f} /s best {statistics.median(rate):8,.0f} median"
        f"  p50 {statistics.median(p50):6.1f} us  p99 {p99[0]:7.1f} best {statistics.median(p99):7.1f} median"
        f"  cpu/call: client {client:5.1f}{server} us"
    )


def ratios(floor: Sequence[Pass], real: Sequence[Pass], label: str, workers: int) -> None:
    best = max(p.per_second for p in real) / max(p.per_second for p in floor)
    med = statistics.median(p.per_second for p in real) / statistics.median(p.per_second for p in floor)
    p99 = statistics.median(p.p99_us for p in floor) / statistics.median(p.p99_us for p in real)
    kind = "throughput" if workers > 1 else "rate (latency-bound)"
    target = " (target >= 0.70x)" if workers > 1 else ""
    print(
        f"  RATIO {label} / floor: {kind} best {best:.2f}x, median {med:.2f}x{target};"
        f" p99 floor/real {p99:.2f}x"
    )


async def measure(url: str, args: argparse.Namespace) -> None:
    key = os.urandom(32)
    store = await PostgresStore.open(url, key)
    try:
        national = numbers(args.entries, args.seed, PRESENT_PREFIXES)
        in_store, total = await load(store, key, national)
        for i in range(args.prefixes):  # ranges outside the sample: looked for, never matching
            rule = PrefixRule(f"+8617{i:04d}", Action.BLOCK, Scope(), "bench range", datetime.now(UTC))
            await store.add_prefix(rule, "bench")
        print(
            f"loaded {args.entries:,} entries: import_rows {args.entries / in_store:,.0f} rows/s"
            f" ({in_store:.1f} s; {total:.1f} s with hashing)"
        )
        con = await asyncpg.connect(url)
        await con.execute("VACUUM ANALYZE entries")
        await con.close()
        rng = random.Random(args.seed + 1)
        present = rng.sample(national, args.checks // 2)
        absent = numbers(args.checks - len(present), args.seed + 2, (ABSENT_PREFIX,))
        await verify(store, present, absent)
        sample = present + absent
        rng.shuffle(sample)
        for workers in sorted({1, args.concurrency}):
            await run_workers(url, store, key, sample, workers, args.repeat)
    finally:
        await store.close()


async def run_workers(
    url: str, store: PostgresStore, key: bytes, sample: Sequence[str], workers: int, repeat: int
) -> None:
    found, cons = await subjects(url, store, key, sample, workers)
    server = await ServerCpu.of(url)
    try:
        results: dict[str, list[Pass]] = {name: [] for name in found.runs}
        for calls, items in found.runs.values():
            await run_pass(calls, items[: len(items) // 10], server)  # warm-up
        for _ in range(repeat):
            for name, (calls, items) in found.runs.items():
                results[name].append(await run_pass(calls, items, server))
    finally:
        for c in cons:
            await c.close()
    print(f"\n== {len(sample):,} checks, {workers} in flight, {repeat} passes")
    for name, passes in results.items():
        show(name, passes)
    floor = results["floor: bare asyncpg PK SELECT"]
    ratios(floor, results["store.lookup(e164)"], "store.lookup", workers)
    ratios(floor, results["gate.check(digits)"], "gate.check", workers)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN (default: $CALLSHIELD_TEST_PG, else a throwaway cluster)"
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight in the second run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--prefixes", type=int, default=50, help="prefix rules in the store")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, asyncpg {asyncpg.__version__}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.2f} at start"
    )
    with local_cluster(args.dsn) as dsn:

        async def run() -> None:
            con = await asyncpg.connect(dsn)
            print(f"server: {await con.fetchval('SHOW server_version')}")
            await con.close()
            await measure(await fresh_schema(dsn, "bench_check"), args)

        asyncio.run(run())


if __name__ == "__main__":
    main()
