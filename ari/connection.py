"""A long-lived ARI events connection: connect, hand the events over, reconnect for ever.

The gate's Stasis application and the guard both keep one websocket per Asterisk server up for
the life of the service. :class:`AriConnection` is that loop, written once: a lost or refused
connection is retried with capped backoff (the first retry within a second), each state change is
logged once, and :meth:`AriConnection.stop` lets the work in flight finish before it closes.
Subclasses say what to open (:meth:`_open`), what to do once connected (:meth:`_after_connect`:
Asterisk replays nothing, so each looks for what it missed) and how to consume (:meth:`_consume`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from typing import Any

from callshield.ari.client import AriClient
from callshield.ari.websocket import EventStream
from callshield.errors import AriRequestError, PeerUnavailable

log = logging.getLogger(__name__)


class Backoff:
    """Capped exponential delays with jitter: 0.5 s, 1 s, 2 s ... 30 s; reset on success."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def delay(self) -> float:
        current = self._next
        self._next = min(self.cap, current * 2)
        return current * random.uniform(0.8, 1.0)  # jitter, not a secret

    def reset(self) -> None:
        self._next = self.first


class AriConnection(abc.ABC):
    """Runs until :meth:`stop`; see the module docstring."""

    label = "ARI"
    """How log lines name this kind of connection."""

    def __init__(self, name: str, app: str, client: AriClient, backoff: Backoff | None = None) -> None:
        self.name = name
        self.app = app
        self._client = client
        self._backoff = backoff or Backoff()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._stream: EventStream | None = None
        self.connected = asyncio.Event()
        """Set while the events websocket is up (tests and health checks wait on it)."""

    @abc.abstractmethod
    def _open(self) -> EventStream:
        """A new, not yet connected, events stream."""

    @abc.abstractmethod
    async def _consume(self, stream: EventStream) -> None:
        """Handle the stream's events until it ends."""

    @abc.abstractmethod
    async def _after_connect(self) -> None:
        """Run (as a task, alongside :meth:`_consume`) after each (re)connect. A REST request sent
        on the stream (:meth:`EventStream.request`) is answered only while :meth:`_consume` reads
        it: one awaited here is answered once :meth:`_consume` runs, not before."""

    async def run(self) -> None:
        """Connect, consume, reconnect; returns only after :meth:`stop`."""
        healthy = True
        while not self._stopping.is_set():
            try:
                async with self._open() as stream:
                    self._stream = stream
                    if self._stopping.is_set():
                        break
                    self._backoff.reset()
                    self.connected.set()
                    again = "" if healthy else " (again)"
                    log.info("%s %s: connected, application %s%s", self.label, self.name, self.app, again)
                    healthy = True
                    self._spawn(self._after_connect())
                    await self._consume(stream)
            except (PeerUnavailable, AriRequestError) as e:
                if healthy:
                    log.warning(
                        "%s %s: connection lost or refused (%s); reconnecting", self.label, self.name, e
                    )
                healthy = False
            self.connected.clear()
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._backoff.delay())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking events, let the work in flight finish (up to ``grace`` s), close."""
        self._stopping.set()
        if self._stream is not None:
            await self._stream.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        await self._client.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("%s %s: a task failed", self.label, self.name, exc_info=error)
