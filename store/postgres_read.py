"""The gate's look-up connections: a bare free list beside the asyncpg pool.

A look-up is one statement on an idle connection. Through asyncpg's pool it would also pay the
pool's acquire and release (a holder queue, a proxy object, timers: about as much as the statement's
own client-side cost), so look-ups take a connection from this list instead: ``pop``, run,
``append``. At most ``size`` connections are open here; a look-up that finds none idle and the list
full uses the pool. A connection that failed or whose look-up was cancelled (the gate's deadline) is
cut rather than reused, because its state is unknown; a closed one (the server restarted) is dropped
when found, and the next look-up connects anew.

The statement timeout (the store's ``command_timeout``) is kept by one watchdog task rather than by
asyncpg, which would arm and cancel a timer for every statement (about a tenth of a look-up's CPU):
each statement notes when it started, the watchdog looks a few times per timeout, and cuts the
connection of a statement running too long, which then raises :class:`TimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

CHECKS_PER_TIMEOUT = 4
"""How often the watchdog looks, per timeout: a statement is cut within 1.25 timeouts."""


class Readers:
    """Connections made by ``connect`` (without a statement timeout of their own); ``fetch`` runs
    one statement on one of them, for at most ``timeout`` seconds (about)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int, timeout: float) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False
        self._started: dict[Any, float] = {}
        """Connections running a statement, and when it started (``time.monotonic``)."""
        self._overdue: set[Any] = set()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        """True when no connection is idle and no more may be opened (use the pool instead)."""
        return not self._idle and self._open >= self._size

    async def fetch(self, sql: str, *args: object) -> Any:
        con = await self._take()
        self._started[con] = time.monotonic()
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        try:
            found = await con.fetch(sql, *args)
        except BaseException:
            self._cut(con)
            if con in self._overdue:
                raise TimeoutError from None
            raise
        finally:
            del self._started[con]
            self._overdue.discard(con)
        if self._closed or con.is_closed():
            self._cut(con)
        else:
            self._idle.append(con)
        return found

    async def _watch(self) -> None:
        """Cut the connections whose statement has run longer than the timeout."""
        while not self._closed:
            await asyncio.sleep(self._timeout / CHECKS_PER_TIMEOUT)
            late = time.monotonic() - self._timeout
            for con, started in list(self._started.items()):
                if started <= late and con not in self._overdue:
                    log.warning("a look-up ran longer than %.1f s; cutting its connection", self._timeout)
                    self._overdue.add(con)
                    con.terminate()

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        while self._idle:
            con = self._idle.pop()
            self._open -= 1
            try:
                await con.close(timeout=2)
            except Exception as e:  # the server may be gone already; the socket is closed anyway
                log.debug("closing a look-up connection: %s", e)
                con.terminate()
