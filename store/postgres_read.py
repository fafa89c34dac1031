"""The gate's look-up connections: a bare free list beside the asyncpg pool.

A look-up is one statement on an idle connection. Through asyncpg's pool it would also pay the
pool's acquire and release (a holder queue, a proxy object, timers: about as much as the statement's
own client-side cost), so look-ups take a connection from this list instead: ``pop``, run,
``append``. At most ``size`` connections are open here; a look-up that finds none idle and the list
full uses the pool. A connection that failed or whose look-up was cancelled (the gate's deadline) is
cut rather than reused, because its state is unknown; a closed one (the server restarted) is dropped
when found, and the next look-up connects anew.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Readers:
    """Connections made by ``connect``; ``fetch`` runs one statement on one of them."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False

    @property
    def full(self) -> bool:
        """True when no connection is idle and no more may be opened (use the pool instead)."""
        return not self._idle and self._open >= self._size

    async def fetch(self, sql: str, *args: object) -> Any:
        con = await self._take()
        try:
            found = await con.fetch(sql, *args)
        except BaseException:
            self._cut(con)
            raise
        if self._closed or con.is_closed():
            self._cut(con)
        else:
            self._idle.append(con)
        return found

    async def _take(self) -> Any:
        while self._idle:
            con = self._idle.pop()
            if not con.is_closed():
                return con
            self._cut(con)
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            raise

    def _cut(self, con: Any) -> None:
        self._open -= 1
        con.terminate()

    def expire(self) -> None:
        """Cut every idle connection (after a lost connection: they are likely broken too)."""
        while self._idle:
            self._cut(self._idle.pop())

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            con = self._idle.pop()
            self._open -= 1
            try:
                await con.close(timeout=2)
            except Exception as e:  # the server may be gone already; the socket is closed anyway
                log.debug("closing a look-up connection: %s", e)
                con.terminate()
