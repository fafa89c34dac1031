"""No refusal is ever lost: a worker recording a burst of refusals (through real store outages) is
killed with SIGKILL at random points, restarted, and every refusal it acknowledged is in the store."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from callshield.journal import Journal
from callshield.store.sqlite import SqliteStore

WORKER = Path(__file__).with_name("refusal_worker.py")
PATTERN = "+86139{:08d}"
ROUNDS = 6
ROUND_BOUND = 30.0


class Worker:
    """One run of refusal_worker.py; ``acks`` maps each acknowledged index to store/journal."""

    def __init__(self, folder: Path, key: bytes, log: Path) -> None:
        self.folder, self.key, self.log = folder, key, log
        self.acks: dict[int, str] = {}
        self.lines: list[str] = []

    async def run(self, first: int, count: int, kill_after: str | None, pause: float) -> int:
        """Run until the worker prints ``kill_after`` (then SIGKILL it after ``pause``) or exits."""
        with self.log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                str(self.folder),
                str(first),
                str(count),
                PATTERN,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "CALLSHIELD_KEY": self.key.hex()},
            )
        assert proc.stdout is not None
        async with asyncio.timeout(ROUND_BOUND):
            while line := (await proc.stdout.readline()).decode():
                self.note(line.strip())
                if kill_after is not None and line.startswith(kill_after):
                    await asyncio.sleep(pause)
                    proc.send_signal(signal.SIGKILL)
                    kill_after = None
            return await proc.wait()  # what it printed before it died counts as acknowledged

    def note(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("ACK "):
            _, index, where = line.split()
            self.acks[int(index)] = where


async def test_every_acknowledged_refusal_survives_sigkill(tmp_path: Path, key: bytes) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    worker = Worker(tmp_path, key, tmp_path / "worker.log")
    for n in range(ROUNDS):
        # every third kill during the start-up replay of what the last kill left in the journal,
        # the others in the burst, somewhere after a random acknowledgement
        trigger = "REPLAYING" if n % 3 == 2 else f"ACK {n * 10_000 + rng.randint(5, 30)} "
        status = await worker.run(n * 10_000, 1000, trigger, rng.uniform(0, 0.02))
        assert status == -signal.SIGKILL, f"seed {seed}, round {n}: {worker.lines[-3:]}"
    assert await worker.run(0, 0, None, 0) == 0, (tmp_path / "worker.log").read_text()[-2000:]
    assert "DONE" in worker.lines

    where = set(worker.acks.values())
    assert where == {"store", "journal"}, f"seed {seed}: both paths must have been taken, saw {where}"
    store = await SqliteStore.open(tmp_path / "shield.db", key, create=False)
    try:
        lost = [i for i in sorted(worker.acks) if not (await store.lookup(PATTERN.format(i))).entries]
        report = await store.verify_audit()
    finally:
        await store.close()
    assert not lost, f"seed {seed}: acknowledged refusals missing: {[(i, worker.acks[i]) for i in lost]}"
    assert report.ok, report.problem
    assert Journal(tmp_path / "refusals.journal", key).empty()
