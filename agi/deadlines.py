"""The read deadlines of all of a FastAGI server's connections, kept by one timer.

A timer of its own per connection costs every call a timer handle, a push on the event loop's
heap, a cancel and the loop's clean-up of the cancelled handle, while a gate call takes a
millisecond against deadlines of seconds: nearly every such timer is cancelled unused. Here the
server has one timer, armed at the earliest deadline that may be pending. When it fires, it asks
every connection to check its read (one past its deadline is cancelled then, as its own timer
would have cancelled it) and re-arms at the earliest deadline still pending: a timer per
deadline that actually comes, none per call.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


class Bounded(Protocol):
    """A connection whose reads have deadlines (:class:`callshield.agi.stream.AgiStream`)."""

    def check(self, now: float) -> float | None:
        """Expire the read in progress if it is due by ``now``; else return its due time (None:
        no read is bounded now)."""


class Deadlines:
    """One timer for the deadlines of every connection added (until it is discarded)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watched: set[Bounded] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.fires_at = math.inf
        """When the timer fires (loop time; infinity when none is set): a read due later needs no
        :meth:`watch`, the usual case (every read is due a whole timeout after the one armed first)."""

    def add(self, stream: Bounded) -> None:
        self._watched.add(stream)

    def discard(self, stream: Bounded) -> None:
        self._watched.discard(stream)

    def watch(self, due: float) -> None:
        """A read of a watched connection is due at ``due`` (loop time): fire by then."""
        if due < self.fires_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(due, self._fire)
            self.fires_at = due

    def close(self) -> None:
        """Stop the timer (the server is closed: no connection is left to bound)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.fires_at = math.inf

    def _fire(self) -> None:
        self._timer, self.fires_at = None, math.inf
        now = self._loop.time()
        pending = [due for stream in tuple(self._watched) if (due := stream.check(now)) is not None]
        if pending:
            self.watch(min(pending))
