"""A burst of refusals, for the SIGKILL test (test_refusal_durability.py), run as its own process:

    python refusal_worker.py DIR FIRST COUNT PATTERN        (the key in $CALLSHIELD_KEY, hex)

Opens the real SQLite store ``DIR/shield.db`` and the journal ``DIR/refusals.journal``, prints
``REPLAYING``, replays the journal (a previous run's), prints ``REPLAYED <n>``; then, with a replay
loop running beside it as in the service, records refusals ``FIRST`` .. ``FIRST+COUNT-1`` for the
numbers ``PATTERN.format(i)``, printing ``ACK <i> <store|journal>`` once each is durable.

Outages are real: for four refusals out of every eight another connection holds the store's write
lock, so the store's writes do not answer within the recorder's timeout (they finish later).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from callshield.capture import Refusal, RefusalRecorder, replay_forever
from callshield.config import ShieldPeriods
from callshield.journal import Journal
from callshield.models import Scope, Source
from callshield.store.sqlite import SqliteStore

STORE_TIMEOUT = 0.02
REPLAY_INTERVAL = 0.03


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Outage:
    """Holds the store's write lock from a second connection while on."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10)

    def set(self, on: bool) -> None:
        if on and not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
        elif not on and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


async def burst(recorder: RefusalRecorder, outage: Outage, first: int, count: int, pattern: str) -> None:
    for i in range(first, first + count):
        outage.set((i - first) // 4 % 2 == 1)
        refusal = Refusal(
            pattern.format(i),
            Scope("acme"),
            Source.AGENT_KEYPAD,
            "customer refused",
            {"call_id": f"call-{i}", "digits": "*9"},
            datetime.now(UTC),
        )
        recorded = await recorder.record(refusal)
        say(f"ACK {i} {recorded.where}")
    outage.set(False)


async def main(folder: Path, first: int, count: int, pattern: str) -> None:
    key = bytes.fromhex(os.environ["CALLSHIELD_KEY"])
    store = await SqliteStore.open(folder / "shield.db", key)
    journal = Journal(folder / "refusals.journal", key)
    recorder = RefusalRecorder(store, ShieldPeriods(), journal, "worker", store_timeout=STORE_TIMEOUT)
    say("REPLAYING")
    say(f"REPLAYED {await recorder.replay()}")
    loop = asyncio.create_task(replay_forever(recorder, REPLAY_INTERVAL))
    try:
        await burst(recorder, Outage(folder / "shield.db"), first, count, pattern)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await store.close()
    say("DONE")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
