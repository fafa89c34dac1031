"""Several processes and PBXs on one PostgreSQL store: one audit chain, no entry lost or doubled,
every PBX sees every other's refusals at once, and the pool outlives a server restart."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callshield.gate import Gate
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import NewEntry
from callshield.store.postgres import PostgresStore
from testkit import T0

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
RULES = NumberRules(default_region="CN")
NUMBERS = [f"+86138{i:08d}" for i in range(40)]

WRITER = """
import asyncio, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from callshield.models import Scope, Source
from callshield.store.base import NewEntry
from callshield.store.postgres import PostgresStore

async def main(url, key, name, barrier, writers, numbers):
    store = await PostgresStore.open(url, bytes.fromhex(key))
    Path(barrier, name).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(barrier).iterdir())) < writers and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    now = datetime.now(UTC)
    async def add(number):
        entry = NewEntry(number, Scope(), Source.AGENT_KEYPAD, "refused", now + timedelta(days=365),
                         {"writer": name})
        await store.add(entry, name, now)
    try:
        await asyncio.gather(*(add(n) for n in numbers))
    finally:
        await store.close()

url, key, name, barrier, writers, *numbers = sys.argv[1:]
asyncio.run(main(url, key, name, barrier, int(writers), numbers))
"""


def refusal(number: str, days: int = 365) -> NewEntry:
    return NewEntry(number, Scope(), Source.CUSTOMER_OPTOUT, "said no", T0 + timedelta(days=days))


async def test_processes_marking_overlapping_numbers_keep_one_chain_and_every_entry(
    pg_url: str, key: bytes, tmp_path: Path
) -> None:
    writers = 4
    barrier = tmp_path / "ready"
    barrier.mkdir()
    await (await PostgresStore.open(pg_url, key)).close()
    share = {f"w{i}": [NUMBERS[(10 * i + j) % 40] for j in range(30)] for i in range(writers)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, pg_url, key.hex(), name, str(barrier), str(writers), *numbers
        )
        for name, numbers in share.items()
    ]
    async with asyncio.timeout(120):
        assert [await p.wait() for p in procs] == [0] * writers
    store = await PostgresStore.open(pg_url, key)
    try:
        report = await store.verify_audit()
        records = [r async for r in store.audit_records()]
        entries = [e async for e in store.entries()]
    finally:
        await store.close()
    assert report.ok, report.problem
    assert report.checked == writers * 30
    added = Counter(r.details()["ref"] for r in records)
    created = Counter(r.details()["ref"] for r in records if r.details()["created"])
    assert len(entries) == 40
    assert sorted(added.values()) == [3] * 40
    assert sorted(created.values()) == [1] * 40
    for e in entries:
        writer_names = sorted(ev["writer"] for ev in e.evidence)
        assert len(writer_names) == 3 and len(set(writer_names)) == 3


async def test_concurrent_imports_of_the_same_rows_add_each_once(pg_url: str, key: bytes) -> None:
    stores = [await PostgresStore.open(pg_url, key) for _ in range(3)]
    batch = [
        (i.to_bytes(32, "big"), "+86138****0000", "global", "import", "l", "[]", 1_700_000_000, None)
        for i in range(3000)
    ]
    try:
        added = await asyncio.gather(*(s.import_rows(batch) for s in stores))
        assert sum(added) == 3000
        assert (await stores[0].stats(T0)).entries == 3000
    finally:
        for s in stores:
            await s.close()


async def test_a_refusal_through_one_pbx_blocks_the_next_call_on_the_other(pg_url: str, key: bytes) -> None:
    pbx_a, pbx_b = await PostgresStore.open(pg_url, key), await PostgresStore.open(pg_url, key)
    gate_a, gate_b = Gate(pbx_a, RULES), Gate(pbx_b, RULES)
    try:
        assert (await gate_b.check("13800138000")).decision.allowed
        await pbx_a.add(refusal("+8613800138000"), "pbx-a", datetime.now(UTC))
        blocked = (await gate_b.check("13800138000")).decision
        assert (blocked.allowed, blocked.reason) == (False, "shielded")
        await pbx_b.remove("+8613800138000", None, "pbx-b", "consent", datetime.now(UTC))
        assert (await gate_a.check("13800138000")).decision.allowed
        rule = PrefixRule("+86139", Action.BLOCK, Scope(), "range", datetime.now(UTC))
        await pbx_b.add_prefix(rule, "pbx-b")
        assert (await gate_a.check("13900139000")).decision.reason == "prefix-block"
        assert (await pbx_a.verify_audit()).checked == 3
    finally:
        await pbx_a.close()
        await pbx_b.close()


async def test_the_pool_reconnects_by_itself_after_a_server_restart(
    pg_url: str, key: bytes, pg_cluster: str
) -> None:
    store = await PostgresStore.open(pg_url, key)
    gate = Gate(store, RULES, timeout=3.0)
    try:
        await store.add(refusal("+8613800138000"), "test", datetime.now(UTC))
        # several connections in the pool, all of which the restart breaks
        warm = await asyncio.gather(*(gate.check("13800138000") for _ in range(6)))
        assert {v.decision.reason for v in warm} == {"shielded"}
        restart = await asyncio.create_subprocess_exec("bash", str(SCRIPTS / "pg"), "restart", pg_cluster)
        during: Counter[str] = Counter()
        async with asyncio.timeout(90):
            while restart.returncode is None:
                during[(await gate.check("13800138000")).decision.reason] += 1
                await asyncio.sleep(0.01)
            assert await restart.wait() == 0
        assert set(during) <= {"shielded", "error"}, during
        first = await gate.check("13800138000")
        assert first.decision.reason in ("shielded", "error")
        after = await asyncio.gather(*(gate.check("13800138000") for _ in range(8)))
        assert [v.decision.reason for v in after] == ["shielded"] * 8
        assert (await gate.check("13900139000")).decision.allowed
        await store.add(refusal("+8613900139000"), "test", datetime.now(UTC))
        assert (await store.verify_audit()).ok
    finally:
        await store.close()
