"""The FastAGI server: accept Asterisk's connections, route them by script path, run a handler.

The socket layer only pumps (the aioquic way): read the header block under a deadline, pick the
handler for ``request.script``, hand it an :class:`AgiSession`, and close the socket the moment
the handler returns or anything fails (or earlier, when the handler closes it itself), because
Asterisk keeps the channel alive until then. The socket is closed once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from callshield.agi.deadlines import Deadlines
from callshield.agi.protocol import AgiRequest, parse_block
from callshield.agi.session import AgiSession
from callshield.agi.stream import AgiStream
from callshield.errors import PeerError, PeerProtocolError, PeerUnavailable
from callshield.privacy import mask

log = logging.getLogger(__name__)

Handler = Callable[[AgiSession], Awaitable[None]]
"""A script: receives the session, returns when done; the server then closes the socket."""

_DIGIT_RUN = re.compile(r"\+?\d{4,}")


def scrub(text: str) -> str:
    """Mask every run of 4 or more digits in ``text``: for messages callshield did not write."""
    return _DIGIT_RUN.sub(lambda m: mask(m[0]), text)


class AgiServer:
    """A FastAGI server on asyncio streams.

    ``routes`` maps script paths (``callshield/gate``; surrounding slashes ignored) to handlers.
    A request for any other script is logged at WARNING and closed without a single command.

    Limits: ``header_timeout`` seconds for the whole header block; ``command_timeout`` seconds for
    each reply (``media_timeout`` for commands that play audio or run applications);
    ``max_line`` bytes per line and ``max_header_lines`` lines per header block. A peer over a
    limit is logged and disconnected; other sessions are not affected.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler],
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        header_timeout: float = 5.0,
        command_timeout: float = 10.0,
        media_timeout: float = 300.0,
        max_line: int = 8192,
        max_header_lines: int = 128,
    ) -> None:
        self._routes = {path.strip("/"): handler for path, handler in routes.items()}
        self._host = host
        self._port = port
        self._header_timeout = header_timeout
        self._command_timeout = command_timeout
        self._media_timeout = media_timeout
        self._max_line = max_line
        self._max_header_lines = max_header_lines
        self._server: asyncio.Server | None = None
        self._deadlines: Deadlines | None = None
        """The read deadlines of every connection (one timer), made by :meth:`start`."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The port listened on (the one the system picked, after ``start()`` with port 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_sessions(self) -> int:
        """Connections currently being served (header read, handler running or closing)."""
        return len(self._tasks)

    async def start(self) -> None:
        """Listen. Raises PeerUnavailable if the address cannot be bound."""
        if self._server is not None:
            raise RuntimeError("AgiServer already started")
        self._closing = False
        self._deadlines = Deadlines(asyncio.get_running_loop())
        try:
            self._server = await asyncio.start_server(
                self._on_connect, self._host, self._port, limit=self._max_line
            )
        except OSError as exc:
            raise PeerUnavailable(f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        log.info("FastAGI listening on %s:%d for %s", self._host, self.port, sorted(self._routes))

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting; let sessions in flight finish for ``grace`` seconds, then cancel them.

        Every socket is closed when this returns.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        leftovers = set(self._tasks)
        if leftovers:
            log.warning("cancelling %d FastAGI sessions still running after %g s", len(leftovers), grace)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await server.wait_closed()
        if self._deadlines is not None:
            self._deadlines.close()
        await asyncio.sleep(0)  # the sockets closed last are released on this turn of the loop
        log.info("FastAGI server closed")

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, start to finish. Never raises, not even when cancelled.

        Python 3.11's stream machinery calls ``task.exception()`` on the finished connection task,
        which raises for a cancelled task ("Exception in callback"): so the cancellation by
        ``close()`` (or a loop shutting down) ends here, after the socket is closed.
        """
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        assert self._deadlines is not None  # made by start(), before the first connection
        stream = AgiStream(reader, writer, self._max_line, task, self._deadlines)
        try:
            if not self._closing:
                await self._serve(stream)
        except asyncio.CancelledError:
            log.info(
                "FastAGI session cancelled (%s)", "server closing" if self._closing else "task cancelled"
            )
            if task is not None:
                task.uncancel()
        finally:
            if not stream.closed:
                await stream.close()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, stream: AgiStream) -> None:
        """Read the request, run its handler; log how it ended. Exceptions stop here (cancellation
        excepted). The handler runs right in this coroutine: each reply it awaits comes back through
        one frame less."""
        request = await self._read_request(stream)
        if request is None:
            return
        handler = self._routes.get(request.script)
        if handler is None:
            log.warning("[%s] no handler for AGI script %r; closing", request.uniqueid, scrub(request.script))
            return
        session = AgiSession(
            request, stream, command_timeout=self._command_timeout, media_timeout=self._media_timeout
        )
        try:
            await handler(session)
        except PeerUnavailable as exc:
            log.info("[%s] %s: Asterisk went away: %s", request.uniqueid, request.script, exc)
        except PeerError as exc:
            log.warning("[%s] %s: %s: %s", request.uniqueid, request.script, type(exc).__name__, exc)
        except Exception as exc:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            name, text = type(exc).__name__, scrub(str(exc))
            log.error(
                "[%s] %s: handler raised %s: %s\n%s", request.uniqueid, request.script, name, text, frames
            )
        else:
            if log.isEnabledFor(logging.DEBUG):  # its arguments cost more than the check
                log.debug("[%s] %s: done (hung up: %s)", request.uniqueid, request.script, session.hung_up)
        finally:
            if not stream.closed:  # the handler did not close it itself
                await session.close()

    async def _read_request(self, stream: AgiStream) -> AgiRequest | None:
        """The header block, or None (logged) when the peer fails to send one in time."""
        stream.arm(self._header_timeout)
        try:
            return parse_block(await stream.read_block(self._max_header_lines))
        except TimeoutError:
            log.warning(
                "%s: no complete AGI header block within %g s; closing",
                stream.peername(),
                self._header_timeout,
            )
        except PeerUnavailable as exc:
            log.info("%s: left before the end of the AGI header block: %s", stream.peername(), exc)
        except PeerProtocolError as exc:
            log.warning("%s: AGI protocol error in the header block: %s; closing", stream.peername(), exc)
        finally:
            stream.disarm()
        return None
