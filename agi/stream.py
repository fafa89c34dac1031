"""The socket side of one FastAGI connection: the header block, reply lines, deadlines, the close.

One :class:`AgiStream` per connection, made by the server and used by the session. It reads the
whole header block at once (a real block of ~25 lines usually arrives in one segment: one read,
one search for its blank line, one parse), then reads reply lines one by one.

Reads are bounded by a *deadline* (the header timeout, then each command's reply timeout):
arming a read only stores its due time, and the server's one timer for all its connections
(:class:`~callshield.agi.deadlines.Deadlines`) checks it when it comes. When a read overruns its
deadline the connection's task is cancelled, and the read raises TimeoutError: the same
semantics as ``asyncio.timeout()`` around the read, cancellation from elsewhere (the server
closing) included.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from callshield.agi.arrival import Arrival, check_lines
from callshield.agi.deadlines import Deadlines
from callshield.errors import PeerProtocolError, PeerUnavailable

CLOSE_TIMEOUT = 2.0
"""Seconds to wait for a closing socket to flush before it is aborted."""

_BLOCK_END = re.compile(rb"(?:^|\n)\r?\n")
"""The blank line that ends a header block (``\\r\\n`` line endings tolerated)."""


class AgiStream:
    """Reads and writes of one FastAGI connection (``reader``'s limit must be ``max_line``).

    ``task`` is the connection's task: the stream is read in it only (a deadline cancels it).
    ``deadlines`` keeps the deadlines of the server's connections; the stream is watched until
    :meth:`close`.

    Errors: PeerUnavailable at end of stream or a reset, PeerProtocolError for a line longer than
    ``max_line`` bytes, TimeoutError for a read past its deadline (see :meth:`arm`).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_line: int,
        task: asyncio.Task[object] | None,
        deadlines: Deadlines,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.write: Callable[[bytes], None] = writer.transport.write
        """Write ``data`` (the transport's own write: StreamWriter.write only forwards to it)."""
        self._max_line = max_line
        self._pending = b""
        """Bytes that arrived after the header block (a ``HANGUP`` notice, say): read first."""
        self._loop = asyncio.get_running_loop()
        self._deadlines = deadlines
        self._due: float | None = None
        self._task = task
        """The connection's task: the one that reads (and that a deadline cancels)."""
        self._cancelling = 0
        self._expired = False
        self.closed = False
        deadlines.add(self)

    def peername(self) -> object:
        return self._writer.get_extra_info("peername")

    def arm(self, seconds: float) -> None:
        """Bound the reads from now until :meth:`disarm` to ``seconds`` in all."""
        due = self._loop.time() + seconds
        self._due = due
        if self._task is not None:
            self._cancelling = self._task.cancelling()
        if due < self._deadlines.fires_at:
            self._deadlines.watch(due)

    def disarm(self) -> None:
        self._due = None

    def check(self, now: float) -> float | None:
        """For the deadlines' timer: cancel the read in progress if it is due by ``now``; else
        return its due time (None when no read is bounded)."""
        due = self._due
        if due is None or self._task is None:
            return None
        if now < due:
            return due
        self._due = None
        self._expired = True
        self._task.cancel()
        return None

    def _timed_out(self) -> bool:
        """After a CancelledError in a read: True if it was the deadline's alone (then swallowed)."""
        if not self._expired:
            return False
        self._expired = False
        assert self._task is not None
        return self._task.uncancel() <= self._cancelling

    async def read_block(self, max_lines: int) -> bytes:
        """The header block up to and including its blank line.

        A line longer than ``max_line`` bytes or more than ``max_lines`` header lines:
        PeerProtocolError.
        """
        data: bytes | bytearray = b""  # the first piece as read; a bytearray if more follow
        arrival: Arrival | None = None  # made if the block comes in pieces
        crlf = False
        try:
            while True:
                chunk = await self._reader.read(self._max_line)
                if not chunk:
                    where = "between lines" if data.endswith(b"\n") or not data else "in the middle of a line"
                    raise PeerUnavailable(f"Asterisk closed the connection {where}")
                if not data:
                    data = chunk
                elif isinstance(data, bytes):
                    data = bytearray(data) + chunk
                else:
                    data += chunk
                crlf = crlf or b"\r" in chunk
                end = _block_end(data, max(0, len(data) - len(chunk) - 2), crlf)
                if end > 0:
                    break
                arrival = arrival or Arrival(self._max_line, max_lines)
                arrival.add(data, chunk)
        except asyncio.CancelledError:
            if self._timed_out():
                raise TimeoutError from None
            raise
        except ConnectionError as exc:
            raise PeerUnavailable(f"connection lost ({type(exc).__name__})") from exc
        block, self._pending = bytes(data[:end]), bytes(data[end:])
        check_lines(block[:-1], self._max_line, max_lines)
        return block

    async def read_line(self) -> bytes:
        """The next line, with its ``\\n``."""
        try:
            if self._pending:
                return await self._read_pending()
            return await self._reader.readuntil(b"\n")
        except asyncio.CancelledError:
            if self._timed_out():
                raise TimeoutError from None
            raise
        except asyncio.IncompleteReadError as exc:
            where = "in the middle of a line" if exc.partial else "between lines"
            raise PeerUnavailable(f"Asterisk closed the connection {where}") from exc
        except asyncio.LimitOverrunError as exc:
            raise PeerProtocolError(f"line longer than {self._max_line} bytes") from exc
        except ConnectionError as exc:
            raise PeerUnavailable(f"connection lost ({type(exc).__name__})") from exc

    async def _read_pending(self) -> bytes:
        """The next line when bytes read past the header block are still there."""
        pending, self._pending = self._pending, b""
        end = pending.find(b"\n")
        if end >= 0:
            line, self._pending = pending[: end + 1], pending[end + 1 :]
        else:
            line = pending + await self._reader.readuntil(b"\n")
        if len(line) - 1 > self._max_line:
            raise PeerProtocolError(f"line longer than {self._max_line} bytes")
        return line

    async def close(self) -> None:
        """Close the socket now, once. If unsent bytes remain, wait briefly for them, then abort."""
        if self.closed:
            return
        self.closed = True
        self._due = None
        self._deadlines.discard(self)
        writer = self._writer
        flushed = writer.transport.get_write_buffer_size() == 0
        writer.close()
        if flushed:
            return  # the transport closes the socket on the next turn of the loop
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()


def _block_end(data: bytes | bytearray, start: int, crlf: bool) -> int:
    """Where the header block in ``data`` ends (just past its blank line), or 0 if not there yet
    (``crlf``: a ``\r`` is in ``data``)."""
    if not crlf:  # Asterisk's own line ends: a plain search will do
        if data.startswith(b"\n"):
            return 1
        at = data.find(b"\n\n", start)
        return at + 2 if at >= 0 else 0
    match = _BLOCK_END.search(data, start)
    return match.end() if match is not None else 0
