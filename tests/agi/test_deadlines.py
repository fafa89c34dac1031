"""callshield.agi.deadlines: one timer for the read deadlines of every connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from callshield.agi.deadlines import Deadlines


async def test_a_timer_is_set_only_for_a_deadline_earlier_than_the_one_it_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, callback, *args)

    monkeypatch.setattr(loop, "call_at", counted)
    deadlines = Deadlines(loop)
    now = loop.time()
    for n in range(50):  # fifty reads armed one after another: each due after the first
        deadlines.watch(now + 10 + n)
    deadlines.watch(now + 5)  # one due earlier: the timer moves
    deadlines.watch(now + 7)
    assert armed == [now + 10, now + 5]
    assert deadlines.fires_at == now + 5
    deadlines.close()
    deadlines.watch(now + 20)  # closed, then armed again: a timer again
    assert armed[-1] == now + 20
    deadlines.close()
