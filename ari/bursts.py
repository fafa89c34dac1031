"""Calls (or legs) decided one after another by as few tasks as the waiting allows.

The gate's Stasis application and the guard both get their work in bursts: several ``StasisStart``
or ``Dial`` events read from one websocket segment, dispatched without a turn of the event loop in
between. Deciding a burst in a row, in one task, keeps the store's code and pages in the CPU's
caches (a decision between two REST calls finds them evicted: measured about three times slower),
and costs one task for the burst instead of one per item.

One rule keeps that from ever holding up an item: a decision that really waits (a store over the
network, SQLite busy after a crash, a slow delivery) must not stand in front of the items behind it.
So a decider counts as *waiting* while it is suspended in such a step, and while every decider
waits, the next item starts another one. With a store that always waits, that is a task per item,
as if each had its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

FollowUp = Coroutine[Any, Any, None]
"""What acting on a decision takes (a delivery, a hang-up): run in a task of its own, or by the
decider itself when nothing else is queued."""


class Bursts(Generic[T]):
    """Items handed to ``decide`` one after another (see the module docstring).

    ``decide(item)`` returns the follow-up to run, or None when there is nothing more to do.
    ``spawn`` runs a coroutine in a task of its owner's (who waits for them when it stops).
    """

    def __init__(
        self, decide: Callable[[T], Awaitable[FollowUp | None]], spawn: Callable[[FollowUp], None]
    ) -> None:
        self._decide = decide
        self._spawn = spawn
        self._queue: deque[T] = deque()
        self._deciders = 0
        self._waiting = 0
        """Deciders running, and those of them suspended in a step that may wait."""

    def put(self, item: T) -> None:
        """Queue ``item``; start a decider unless one is running that is not waiting."""
        self._queue.append(item)
        if self._deciders == self._waiting:  # none, or each one waits
            self._deciders += 1
            self._spawn(self._run())

    async def _run(self) -> None:
        """Decide the queued items in turn; each follow-up goes to a task of its own, but the
        last one of the burst runs here (one task per item when they come one at a time)."""
        try:
            while self._queue:
                follow_up = await self._waited(self._decide(self._queue.popleft()))
                if follow_up is None:
                    continue
                if self._queue:
                    self._spawn(follow_up)
                else:
                    await self._waited(follow_up)
        finally:
            self._deciders -= 1

    async def _waited(self, step: Awaitable[R]) -> R:
        self._waiting += 1
        try:
            return await step
        finally:
            self._waiting -= 1
