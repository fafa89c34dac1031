"""The gate's record of the calls it allowed, which the guard consults before any store work.

After an ALLOW, and before it continues the channel, the gate records (caller channel id, E.164);
when that channel dials out, the guard finds the leg's number there and has nothing to do. Entries
expire after ``ttl`` seconds (a gate pass is good for one call attempt, not for ever) and their
number is bounded, so memory stays flat on a busy PBX.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class GateLedger:
    """Calls the gate allowed lately: (caller channel id, E.164), each kept ``ttl`` seconds.

    The gate calls :meth:`allowed` after an ALLOW, before it continues the channel; the guard
    asks :meth:`was_allowed` when that channel dials out. Plain methods, no awaits: safe to share
    between the gate and the guards of one event loop. Holds numbers in memory only, never shows
    them (``repr`` gives the size).
    """

    def __init__(
        self, ttl: float = 60.0, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str]]] = deque()

    def __repr__(self) -> str:
        return f"<GateLedger {len(self._expiry)} entries, ttl={self.ttl:g}s>"

    @property
    def size(self) -> int:
        """Entries held now (expired ones go at the next call)."""
        return len(self._expiry)

    def allowed(self, caller_channel_id: str, e164: str) -> None:
        """Record that the gate allowed ``e164`` for the channel ``caller_channel_id``."""
        now = self._clock()
        self._prune(now)
        key = (caller_channel_id, e164)
        self._expiry[key] = now + self.ttl
        self._order.append((now + self.ttl, key))
        while len(self._expiry) > self._max:
            self._drop_oldest()

    def was_allowed(self, caller_channel_id: str | None, e164: str) -> bool:
        """Did the gate allow ``e164`` for this channel (None: for any channel) in the last ``ttl`` s?"""
        self._prune(self._clock())
        if caller_channel_id is None:
            return any(number == e164 for _, number in self._expiry)
        return (caller_channel_id, e164) in self._expiry

    def _prune(self, now: float) -> None:
        while self._order and self._order[0][0] <= now:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        expiry, key = self._order.popleft()
        if self._expiry.get(key) == expiry:
            del self._expiry[key]
