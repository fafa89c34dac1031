"""The gate benchmarks' workload: a filled shield store and the stream of calls to gate.

The store holds ``entries`` random Chinese mobile numbers (global scope, source ``import``, all
expiring one year after the store was built), built once through ``SqliteStore.import_rows`` in
``bench/out/gate-ENTRIES-SEED.db`` (key in ``.key``, description in ``.json``) and reused while
its size and seed match. The calls cycle through a pool of ``pool`` numbers, national format as
dialled (``13800138000``): ``blocked_share`` of them drawn from the store (blocked, reason
``shielded``), the rest not in it (allowed, ``clean``). The pool is written to a ``.calls`` file
(``NUMBER 0|1`` per line) that the peer and the floors read: the floors need the verdict mix to
make the same REST calls and AGI commands without doing any shield work.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callshield.privacy import keyed_hash, mask
from callshield.store.base import ImportRow
from callshield.store.sqlite import SqliteStore

OUT = Path(__file__).resolve().parent / "out"
FORMAT = 1
"""Version of the generated store; a cached store of another version is rebuilt."""
BATCH = 20_000
MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "158", "159")
"""Three-digit CN mobile prefixes whose every 8-digit continuation is a valid number."""
COMPANY, CAMPAIGN = "acme", "spring"
"""The Stasis / AGI arguments after the number: ``gate,NUMBER,acme,spring``."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call to gate: the number as dialled and whether the store shields it."""

    number: str
    blocked: bool


@dataclass(frozen=True)
class Workload:
    """Everything a subject process needs, as files."""

    db: Path
    key_file: Path
    calls_file: Path
    calls: tuple[Call, ...]
    until: str
    """``SHIELD_UNTIL`` of every blocked call (all entries expire together)."""

    def subject_args(self) -> list[str]:
        return ["--store", str(self.db), "--key-file", str(self.key_file), "--calls", str(self.calls_file)]


def until_text(expires: int) -> str:
    """``SHIELD_UNTIL`` as the gate writes it: ISO 8601 UTC to the second."""
    return datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_calls(path: Path) -> tuple[Call, ...]:
    """The ``.calls`` file written by :func:`prepare`."""
    calls = []
    for line in path.read_text(encoding="ascii").splitlines():
        number, flag = line.split()
        calls.append(Call(number, flag == "1"))
    return tuple(calls)


def _numbers(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct national mobile numbers, in generation order (deterministic per seed)."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        number = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
        if number not in seen:
            seen.add(number)
            out.append(number)
    return out


async def _build_store(db: Path, key: bytes, stored: list[str], created: int, expires: int) -> None:
    store = await SqliteStore.open(db, key)
    try:
        for start in range(0, len(stored), BATCH):
            rows: list[ImportRow] = []
            for national in stored[start : start + BATCH]:
                e164 = "+86" + national
                rows.append(
                    (keyed_hash(key, e164), mask(e164), "global", "import", "bench", "[]", created, expires)
                )
            await store.import_rows(rows)
    finally:
        await store.close()


async def _store(entries: int, seed: int, stored: list[str]) -> tuple[Path, Path, int]:
    """The cached store for (entries, seed), built if missing; returns db, key file, expiry."""
    stem = OUT / f"gate-{entries}-{seed}"
    db, key_file, meta_file = (stem.with_suffix(s) for s in (".db", ".key", ".json"))
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("format") == FORMAT and db.exists() and key_file.exists():
            return db, key_file, int(meta["expires"])
    for stale in (meta_file, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    key_file.write_text(key.hex() + "\n")
    key_file.chmod(0o600)
    now = datetime.now(UTC)
    created, expires = int(now.timestamp()), int((now + timedelta(days=365)).timestamp())
    print(f"building {db.name}: {entries:,} entries ...", flush=True)
    await _build_store(db, key, stored, created, expires)
    meta_file.write_text(json.dumps({"format": FORMAT, "entries": entries, "seed": seed, "expires": expires}))
    return db, key_file, expires


async def prepare(entries: int, pool: int, blocked_share: float, seed: int) -> Workload:
    """Build or reuse the store; write the call pool; return the workload."""
    rng = random.Random(seed)
    blocked_count = min(entries, round(pool * blocked_share))
    numbers = _numbers(entries + pool - blocked_count, rng)
    stored, clean = numbers[:entries], numbers[entries:]
    db, key_file, expires = await _store(entries, seed, stored)
    calls = [Call(n, True) for n in rng.sample(stored, blocked_count)] + [Call(n, False) for n in clean]
    rng.shuffle(calls)
    calls_file = OUT / f"gate-{entries}-{seed}-{pool}-{blocked_count}.calls"
    calls_file.write_text("".join(f"{c.number} {int(c.blocked)}\n" for c in calls), encoding="ascii")
    return Workload(db, key_file, calls_file, tuple(calls), until_text(expires))


def load_key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())
