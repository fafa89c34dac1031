"""core/journal.py: durable, confidential appends; crash-safe, idempotent replay."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from callshield.errors import StoreUnavailable
from callshield.journal import Journal, Pending, ReplayReport, new_id
from callshield.models import Scope, Source
from callshield.store.base import NewEntry
from testkit import T0

NUMBER = "+8613800138000"


def pending(number: str = NUMBER, days: int | None = 365, actor: str = "agent-7") -> Pending:
    expires = None if days is None else T0 + timedelta(days=days)
    evidence = {"channel": "PJSIP/agent-7-00000001", "digits": "*9"}
    entry = NewEntry(
        number, Scope("acme", "summer"), Source.AGENT_KEYPAD, "customer refused", expires, evidence
    )
    return Pending(new_id(), entry, actor)


class Sink:
    """A stand-in for the store: what it took, in order; refuses whatever ``refuse`` says."""

    def __init__(self, refuse: Callable[[Pending], bool] = lambda _: False) -> None:
        self.taken: list[Pending] = []
        self.refuse = refuse

    async def __call__(self, item: Pending) -> bool:
        if self.refuse(item):
            return False
        self.taken.append(item)
        return True


@pytest.fixture
def journal(tmp_path: Path, key: bytes) -> Journal:
    return Journal(tmp_path / "var" / "refusals.journal", key)


def test_append_writes_one_private_line_without_the_number(journal: Journal) -> None:
    previous = os.umask(0)
    try:
        journal.append(pending())
    finally:
        os.umask(previous)
    raw = journal.path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n")
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert b"8613800138000" not in raw and b"13800138000" not in raw
    assert b"+86138****8000" in raw
    assert b"PJSIP" not in raw and b"acme" not in raw  # the evidence and scope are sealed too


def test_append_fsyncs_the_file_and_its_new_directory_before_returning(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal.append(pending())
    file, folder = journal.path.stat(), journal.path.parent.stat()
    assert (file.st_dev, file.st_ino) in synced
    assert (folder.st_dev, folder.st_ino) in synced


def test_append_tightens_a_journal_others_can_read(journal: Journal) -> None:
    journal.path.parent.mkdir(parents=True)
    journal.path.touch(mode=0o644)
    os.chmod(journal.path, 0o644)
    journal.append(pending())
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


def test_append_that_cannot_write_raises_store_unavailable(tmp_path: Path, key: bytes) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    journal = Journal(tmp_path / "a-file" / "refusals.journal", key)
    with pytest.raises(StoreUnavailable, match="cannot be written") as caught:
        journal.append(pending())
    assert "13800138000" not in str(caught.value)


async def test_replay_hands_every_refusal_over_in_order_then_nothing(journal: Journal) -> None:
    items = [pending("+8613800138000"), pending("+15559991234", days=None), pending("+447700900123", 30)]
    for item in items:
        journal.append(item)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=3)
    assert sink.taken == items
    assert journal.empty()
    assert not journal.replaying.exists() and not journal.done.exists()
    assert await journal.replay(sink) == ReplayReport()
    assert len(sink.taken) == 3


async def test_a_refusal_the_store_does_not_take_waits_for_the_next_pass(journal: Journal) -> None:
    first, second, third = pending("+8613800138000"), pending("+15559991234"), pending("+447700900123")
    for item in (first, second, third):
        journal.append(item)
    refusing = Sink(refuse=lambda item: item is not first and item.entry.e164 == second.entry.e164)
    assert await journal.replay(refusing) == ReplayReport(stored=2, waiting=1)
    assert not journal.empty()
    later = pending("+8613900139000")
    journal.append(later)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=2)
    assert [i.id for i in sink.taken] == [second.id, later.id]
    assert journal.empty()


async def test_torn_last_line_is_skipped_reported_and_kept_aside(journal: Journal) -> None:
    whole = pending()
    journal.append(whole)
    journal.append(pending("+15559991234"))
    raw = journal.path.read_bytes()
    cut = raw.index(b"\n") + 1 + (len(raw) - raw.index(b"\n")) // 2
    journal.path.write_bytes(raw[:cut])  # the crash hit in mid-write of the second line
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=1, unreadable=1)
    assert [i.id for i in sink.taken] == [whole.id]
    assert journal.rejected.read_bytes() == raw[raw.index(b"\n") + 1 : cut] + b"\n"
    assert stat.S_IMODE(journal.rejected.stat().st_mode) == 0o600


async def test_an_append_after_a_torn_line_starts_a_line_of_its_own(journal: Journal) -> None:
    journal.append(pending())
    raw = journal.path.read_bytes()
    journal.path.write_bytes(raw + raw[: len(raw) // 2])
    after = pending("+15559991234")
    journal.append(after)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=2, unreadable=1)
    assert sink.taken[-1] == after


async def test_tampered_or_foreign_lines_are_unreadable_not_lost(journal: Journal, tmp_path: Path) -> None:
    journal.append(pending())
    line = journal.path.read_bytes()
    tampered = line.replace(b"+86138****8000", b"+86139****8000")
    foreign = Journal(tmp_path / "other.journal", os.urandom(32))
    foreign.append(pending("+15559991234"))
    journal.path.write_bytes(tampered + foreign.path.read_bytes() + line)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=1, unreadable=2)
    assert journal.rejected.read_bytes() == tampered + foreign.path.read_bytes()


async def test_replay_after_a_crash_between_copy_and_truncate_stores_each_refusal_once(
    journal: Journal,
) -> None:
    items = [pending("+8613800138000"), pending("+15559991234")]
    for item in items:
        journal.append(item)
    raw = journal.path.read_bytes()
    journal.replaying.write_bytes(raw + raw[:10])  # copied (and a torn copy), journal not yet emptied
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=2)
    assert sink.taken == items
    assert journal.empty()


async def test_replay_after_a_crash_in_mid_replay_skips_what_the_store_took(journal: Journal) -> None:
    items = [pending("+8613800138000"), pending("+15559991234"), pending("+447700900123")]
    for item in items:
        journal.append(item)
    journal.replaying.write_bytes(journal.path.read_bytes())  # the state a kill leaves: copied,
    journal.path.write_bytes(b"")  # journal emptied, the first refusal stored and marked done
    journal.done.write_bytes(items[0].id.encode() + b"\n")
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=2)
    assert [i.id for i in sink.taken] == [items[1].id, items[2].id]
    assert journal.empty() and not journal.done.exists()


async def test_an_interrupted_replay_keeps_everything_not_yet_stored(journal: Journal) -> None:
    items = [pending("+8613800138000"), pending("+15559991234"), pending("+447700900123")]
    for item in items:
        journal.append(item)
    calls = 0

    async def dies_on_second(item: Pending) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise asyncio.CancelledError
        return True

    with pytest.raises(asyncio.CancelledError):
        await journal.replay(dies_on_second)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=2)
    assert [i.id for i in sink.taken] == [items[1].id, items[2].id]


async def test_a_stale_done_file_is_ignored(journal: Journal) -> None:
    item = pending()
    journal.done.parent.mkdir(parents=True)
    journal.done.write_bytes(item.id.encode() + b"\n")  # left after the replay file went
    journal.append(item)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=1)


async def test_only_one_replay_runs_at_a_time_and_appends_meanwhile_wait(journal: Journal) -> None:
    journal.append(pending())
    entered, release = asyncio.Event(), asyncio.Event()
    during = pending("+15559991234")

    async def slow(item: Pending) -> bool:
        entered.set()
        await release.wait()
        return True

    first = asyncio.create_task(journal.replay(slow))
    await asyncio.wait_for(entered.wait(), 5)
    assert await journal.replay(Sink()) == ReplayReport(busy=True)
    await asyncio.to_thread(journal.append, during)
    release.set()
    assert await asyncio.wait_for(first, 5) == ReplayReport(stored=1)
    sink = Sink()
    assert await journal.replay(sink) == ReplayReport(stored=1)
    assert sink.taken == [during]


async def test_a_replayed_refusal_is_the_one_appended(journal: Journal) -> None:
    item = pending(days=None, actor="cli:alice")
    journal.append(item)
    sink = Sink()
    await journal.replay(sink)
    assert sink.taken == [item]
    assert sink.taken[0].entry.expires_at is None and sink.taken[0].entry.evidence["digits"] == "*9"


async def test_peek_shows_what_waits_without_moving_anything(journal: Journal) -> None:
    assert journal.peek() == ([], 0)
    first, second, third = pending("+8613800138000"), pending("+15559991234"), pending("+447700900123")
    for item in (first, second, third):
        journal.append(item)
    before = journal.path.read_bytes()
    assert journal.peek() == ([first, second, third], 0)
    assert journal.path.read_bytes() == before and not journal.replaying.exists()
    # an unfinished replay: the second was not stored; a new one arrived meanwhile
    assert await journal.replay(Sink(refuse=lambda item: item == second)) == ReplayReport(2, 1)
    later = pending("+8613900139000")
    journal.append(later)
    with journal.path.open("ab") as f:
        f.write(b'{"torn":\n')
    assert journal.peek() == ([second, later], 0)
    await journal.replay(Sink(refuse=lambda item: True))
    assert journal.peek() == ([second, later], 1)  # the torn line now kept in .rejected


def test_peek_that_cannot_read_raises_store_unavailable(journal: Journal) -> None:
    journal.path.parent.mkdir(parents=True)
    journal.path.mkdir()  # a directory where the journal should be
    with pytest.raises(StoreUnavailable, match="cannot be read"):
        journal.peek()
