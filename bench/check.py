"""Benchmark: the gate's per-call check (normalise + hash + look-up + decide) against its floors.

For each store size (default 1M and 10M entries) this builds, or reuses, a SQLite store of random
Chinese mobile numbers in ``bench/out/`` and then measures, in one process and one asyncio loop,
sequentially, over a sample of numbers of which half are in the store and half are not:

* the real path, as the gate runs it per call::

      target = classify(raw, rules)                 # raw: national form, e.g. "13800138000"
      matches = await store.lookup(target.e164)     # keyed hash + entry and prefix look-up
      decision = decide(CallContext(...), matches, now)

* its floors, each on the same inputs and the same file: phonenumbers ``parse`` + ``format_number``
  (E.164), HMAC-SHA256 of the E.164 string, and one raw ``sqlite3`` point look-up
  ``SELECT ... FROM entries WHERE number_hash = ?`` on a fresh read-only connection;

and prints us/check for each, the real path over the sum of the floors (target <= 1.5x), a
breakdown of the real path by stage, and the cost of one aiosqlite ``execute_fetchall`` round trip
(the reason the look-up runs inline on the event loop rather than on aiosqlite's thread).

Every figure is the best and the median over ``--repeat`` passes; the passes interleave the
measurements so that background load hits all of them alike. Nothing is asserted.

    .venv/bin/python bench/check.py                        # 1M and 10M entries (the issue's sizes)
    .venv/bin/python bench/check.py --entries 100000 --checks 5000 --repeat 3   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import phonenumbers
from bench_version import code_version
from callshield.keys import fingerprint
from callshield.models import NO_MATCHES, Matches
from callshield.numbers import NumberRules, classify
from callshield.policy import CallContext, Decision, decide
from callshield.privacy import keyed_hash, mask
from callshield.store.sqlite import _ENTRIES, SqliteStore

OUT = Path(__file__).resolve().parent / "out"
FORMAT = 1
"""Version of the generated store; a cached store of another version is rebuilt."""

# Three-digit mobile prefixes whose every 8-digit continuation is a valid CN number.
PREFIXES: tuple[int, ...] = (
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    150,
    151,
    152,
    153,
    155,
    156,
    157,
    158,
    159,
)
PREFIXES += tuple(range(180, 190))
SPACE = len(PREFIXES) * 10**8
STEP = 2_654_435_761
"""Multiplier of the permutation i -> (STEP * i + OFFSET) mod SPACE (coprime with SPACE)."""
OFFSET = 123_456_789
ENTRY_SQL = "SELECT scope, masked, source, reason, created_at, expires_at FROM entries WHERE number_hash = ?"


def national(i: int) -> str:
    """The i-th number of the benchmark's sequence, national digits (``13800138000``).

    Numbers 0..N-1 are in a store of N entries, numbers N.. are not: the map is a permutation of
    the number space, so no two indices give the same number.
    """
    v = (STEP * i + OFFSET) % SPACE
    return f"{PREFIXES[v // 10**8]}{v % 10**8:08d}"


def spaced(digits: str) -> str:
    """``13800138000`` -> ``138 0013 8000`` (phonenumbers' NATIONAL format for CN mobiles)."""
    return f"{digits[:3]} {digits[3:7]} {digits[7:]}"


def e164(digits: str) -> str:
    return "+86" + digits


def masked(e: str) -> str:
    """mask() for +86 and 11 digits, without its generality (checked against mask() below)."""
    return f"{e[:6]}****{e[-4:]}"


# -- the store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    path: Path
    key: bytes
    entries: int


def _meta_path(db: Path) -> Path:
    return db.with_suffix(".json")


def _cached(db: Path, key_file: Path, entries: int) -> bytes | None:
    meta_file = _meta_path(db)
    if not (db.exists() and key_file.exists() and meta_file.exists()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
        key = bytes.fromhex(key_file.read_text().strip())
    except (OSError, ValueError):
        return None
    wanted = {"format": FORMAT, "entries": entries, "key": fingerprint(key), "step": STEP, "offset": OFFSET}
    return key if meta == wanted else None


def _rows(key: bytes, start: int, stop: int, now: int) -> Iterator[tuple[object, ...]]:
    for i in range(start, stop):
        e = "+86" + national(i)
        yield (keyed_hash(key, e), "global", masked(e), "import", "bench", now)


async def prepare_store(entries: int, log: Callable[[str], None]) -> Store:
    """The store of ``entries`` numbers, built unless a matching one is in bench/out/."""
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / f"check-{entries}.db"
    key_file = OUT / f"check-{entries}.key"
    key = _cached(db, key_file, entries)
    if key is not None:
        log(f"reusing {db} ({entries:,} entries, key in {key_file.name})")
        return Store(db, key, entries)
    for stale in (db, _meta_path(db), Path(f"{db}-wal"), Path(f"{db}-shm"), key_file):
        stale.unlink(missing_ok=True)
    key = secrets.token_bytes(32)
    key_file.write_text(key.hex() + "\n")
    key_file.chmod(0o600)
    store = await SqliteStore.open(db, key)  # creates the schema and the meta rows
    await store.close()
    log(f"building {db} with {entries:,} entries ...")
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # a half-built file has no .json: never reused
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1500000")  # 1.5 GB: random-key inserts stay in memory
        conn.execute("BEGIN")
        batch = 200_000
        now = int(time.time())
        for start in range(0, entries, batch):
            conn.executemany(
                "INSERT INTO entries (number_hash, scope, masked, source, reason, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                _rows(key, start, min(entries, start + batch), now),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
        count = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        conn.close()
    if count != entries:
        raise SystemExit(f"built {count} entries, wanted {entries}")
    meta = {"format": FORMAT, "entries": entries, "key": fingerprint(key), "step": STEP, "offset": OFFSET}
    _meta_path(db).write_text(json.dumps(meta))
    size = db.stat().st_size / 2**20
    log(f"built in {time.perf_counter() - started:.1f} s ({size:,.0f} MiB)")
    return Store(db, key, entries)


# -- measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    raw: list[str]
    """What classify() gets."""
    e164: list[str]
    hashes: list[bytes]
    present: int


def make_sample(store: Store, checks: int, form: str, seed: int) -> Sample:
    rng = random.Random(seed)
    half = checks // 2
    inside = [rng.randrange(store.entries) for _ in range(half)]
    outside = [store.entries + rng.randrange(SPACE - store.entries) for _ in range(checks - half)]
    indices = inside + outside
    rng.shuffle(indices)
    digits = [national(i) for i in indices]
    raw = [spaced(d) for d in digits] if form == "spaced" else digits
    numbers = [e164(d) for d in digits]
    return Sample(raw, numbers, [keyed_hash(store.key, e) for e in numbers], half)


def per_call(started: float, n: int) -> float:
    return (time.perf_counter() - started) / n * 1e6


async def real_path(store: SqliteStore, rules: NumberRules, sample: Sample, now: datetime) -> float:
    blocked = 0
    started = time.perf_counter()
    for raw in sample.raw:
        target = classify(raw, rules)
        matches = await store.lookup(target.e164) if target.e164 else NO_MATCHES
        decision = decide(CallContext(target.e164, target.exempt), matches, now)
        blocked += not decision.allowed
    took = per_call(started, len(sample.raw))
    if blocked != sample.present:
        raise SystemExit(f"real path blocked {blocked} calls, {sample.present} numbers are in the store")
    return took


def floor_parse(sample: Sample) -> float:
    parse, fmt, e164_format = (
        phonenumbers.parse,
        phonenumbers.format_number,
        phonenumbers.PhoneNumberFormat.E164,
    )
    started = time.perf_counter()
    for raw in sample.raw:
        fmt(parse(raw, "CN"), e164_format)
    return per_call(started, len(sample.raw))


def floor_hmac(key: bytes, sample: Sample) -> float:
    digest = hmac.digest
    started = time.perf_counter()
    for e in sample.e164:
        digest(key, e.encode("ascii"), "sha256")
    return per_call(started, len(sample.e164))


def floor_sqlite(conn: sqlite3.Connection, sample: Sample) -> float:
    found = 0
    started = time.perf_counter()
    for h in sample.hashes:
        found += len(conn.execute(ENTRY_SQL, (h,)).fetchall())
    took = per_call(started, len(sample.hashes))
    if found != sample.present:
        raise SystemExit(f"raw look-up found {found} rows, {sample.present} numbers are in the store")
    return took


# stages of the real path, for the breakdown


def stage_classify(rules: NumberRules, sample: Sample) -> float:
    started = time.perf_counter()
    for raw in sample.raw:
        classify(raw, rules)
    return per_call(started, len(sample.raw))


def stage_valid(sample: Sample) -> float:
    """parse + is_valid_number + format: what classify() must do for a national number."""
    parse, fmt, valid = phonenumbers.parse, phonenumbers.format_number, phonenumbers.is_valid_number
    e164_format = phonenumbers.PhoneNumberFormat.E164
    started = time.perf_counter()
    for raw in sample.raw:
        number = parse(raw, "CN")
        if valid(number):
            fmt(number, e164_format)
    return per_call(started, len(sample.raw))


def stage_keyed_hash(store: SqliteStore, sample: Sample) -> float:
    """The store's own hashing (``store.hash``: a :class:`~callshield.privacy.KeyedHasher`)."""
    started = time.perf_counter()
    for e in sample.e164:
        store.hash(e)
    return per_call(started, len(sample.e164))


async def stage_lookup(store: SqliteStore, sample: Sample) -> tuple[float, list[Matches]]:
    found: list[Matches] = []
    started = time.perf_counter()
    for e in sample.e164:
        found.append(await store.lookup(e))
    return per_call(started, len(sample.e164)), found


def stage_union_sql(conn: sqlite3.Connection, sample: Sample) -> float:
    """The store's own inline statement, raw, pre-hashed: the entry point query with the prefix
    rules' version."""
    started = time.perf_counter()
    cursor = conn.cursor()
    for h in sample.hashes:
        cursor.execute(_ENTRIES, (h,)).fetchall()
    return per_call(started, len(sample.hashes))


def stage_decide(sample: Sample, found: list[Matches], now: datetime) -> float:
    out: list[Decision] = []
    started = time.perf_counter()
    for e, m in zip(sample.e164, found, strict=True):
        out.append(decide(CallContext(e, False), m, now))
    return per_call(started, len(sample.e164))


async def aiosqlite_round_trip(path: Path, sample: Sample, calls: int) -> float:
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        hashes = sample.hashes[:calls]
        started = time.perf_counter()
        for h in hashes:
            await db.execute_fetchall(ENTRY_SQL, (h,))
        return per_call(started, len(hashes))


# -- reporting ------------------------------------------------------------------------------


class Figures:
    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}

    def add(self, name: str, us: float) -> None:
        self.runs.setdefault(name, []).append(us)

    def best(self, name: str) -> float:
        return min(self.runs[name])

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def spread(self, name: str) -> float:
        """(max - min) / min over the passes, in percent: how noisy the figure was."""
        values = self.runs[name]
        return (max(values) - min(values)) / min(values) * 100


def line(fig: Figures, name: str, label: str) -> str:
    return (
        f"  {label:<54} best {fig.best(name):7.2f}  median {fig.median(name):7.2f}"
        f"  us/check   (spread {fig.spread(name):4.1f}%)"
    )


async def measure(
    store: SqliteStore, raw_conn: sqlite3.Connection, built: Store, sample: Sample, args: argparse.Namespace
) -> Figures:
    rules = NumberRules()
    now = datetime.now(UTC)
    fig = Figures()
    # warm the OS and SQLite caches on the sampled pages, and phonenumbers' metadata
    await real_path(store, rules, sample, now)
    floor_sqlite(raw_conn, sample)
    for _ in range(args.repeat):
        gc.collect()
        fig.add("real", await real_path(store, rules, sample, now))
        fig.add("parse", floor_parse(sample))
        fig.add("hmac", floor_hmac(built.key, sample))
        fig.add("sqlite", floor_sqlite(raw_conn, sample))
        fig.add("classify", stage_classify(rules, sample))
        fig.add("valid", stage_valid(sample))
        fig.add("keyed_hash", stage_keyed_hash(store, sample))
        took, found = await stage_lookup(store, sample)
        fig.add("lookup", took)
        fig.add("union", stage_union_sql(raw_conn, sample))
        fig.add("decide", stage_decide(sample, found, now))
        fig.add("aiosqlite", await aiosqlite_round_trip(built.path, sample, args.aiosqlite_calls))
    return fig


def report(fig: Figures, entries: int, form: str, sample: Sample, args: argparse.Namespace) -> None:
    floors = ("parse", "hmac", "sqlite")
    best_sum = sum(fig.best(f) for f in floors)
    median_sum = sum(fig.median(f) for f in floors)
    print(
        f"\n== {entries:,} entries, {args.checks:,} checks ({sample.present:,} present), input form"
        f" {form!r} e.g. {sample.raw[0]!r}, {args.repeat} passes"
    )
    print(line(fig, "real", "real path: classify + await lookup + decide"))
    print(line(fig, "parse", "floor: phonenumbers parse + format E.164"))
    print(line(fig, "hmac", "floor: HMAC-SHA256 of the E.164 (hmac.digest)"))
    print(line(fig, "sqlite", "floor: raw sqlite3 point look-up of the hash"))
    print(f"  {'sum of floors':<54} best {best_sum:7.2f}  median {median_sum:7.2f}  us/check")
    print(
        f"  RATIO real / floors: best {fig.best('real') / best_sum:.2f}x,"
        f" median {fig.median('real') / median_sum:.2f}x   (target <= 1.50x)"
    )
    print("  breakdown of the real path:")
    print(line(fig, "classify", "  classify(raw)"))
    print(line(fig, "valid", "    of which floor: parse + is_valid + format"))
    print(line(fig, "lookup", "  await store.lookup(e164)"))
    print(line(fig, "keyed_hash", "    store.hash (KeyedHasher)"))
    print(line(fig, "union", "    raw sqlite3, the store's SQL (entry + rules' version)"))
    print(line(fig, "decide", "  decide(...)"))
    stages = fig.best("classify") + fig.best("lookup") + fig.best("decide")
    print(f"  {'  sum of stages':<54} best {stages:7.2f}")
    calls = min(args.aiosqlite_calls, args.checks)
    print(line(fig, "aiosqlite", f"aiosqlite execute_fetchall of the point query ({calls:,})"))
    print(
        f"  aiosqlite round trip / inline raw look-up: best"
        f" {fig.best('aiosqlite') / fig.best('sqlite'):.1f}x,"
        f" median {fig.median('aiosqlite') / fig.median('sqlite'):.1f}x"
    )
    sys.stdout.flush()


async def bench_size(entries: int, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    built = await prepare_store(entries, log)
    store = await SqliteStore.open(built.path, built.key, create=False)
    raw_conn = sqlite3.connect(f"file:{built.path}?mode=ro", uri=True)
    try:
        for form in args.forms:
            sample = make_sample(built, args.checks, form, args.seed)
            if mask(sample.e164[0]) != masked(sample.e164[0]):
                raise SystemExit("masked() disagrees with callshield's mask()")
            report(await measure(store, raw_conn, built, sample, args), entries, form, sample, args)
    finally:
        raw_conn.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entries",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="store sizes (default: 1000000 10000000)",
    )
    parser.add_argument("--checks", type=int, default=50_000, help="numbers checked per pass (default 50000)")
    parser.add_argument("--repeat", type=int, default=7, help="passes; best and median reported (default 7)")
    parser.add_argument(
        "--forms",
        nargs="+",
        choices=["digits", "spaced"],
        default=["digits", "spaced"],
        help="national input forms: digits as dialled (13800138000), spaced (138 0013 8000)",
    )
    parser.add_argument(
        "--aiosqlite-calls", type=int, default=5000, help="aiosqlite round trips per pass (default 5000)"
    )
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    versions = f"sqlite {sqlite3.sqlite_version}, phonenumbers {phonenumbers.__version__}"
    print(
        f"python {sys.version.split()[0]}, {versions}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.2f} at start; {code_version()}"
    )
    for entries in args.entries:
        asyncio.run(bench_size(entries, args, log))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
