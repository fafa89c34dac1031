"""Peers that are not Asterisk, or a broken one: they send something and watch what happens.

Each returns a :class:`PeerOutcome`: what the server sent back, and whether it closed the socket
within ``watch`` seconds (a bound to prove "does not hang", not a measure).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from fake_agi_channel import FakeCall

GARBAGE = bytes(range(256)) * 4 + b"\n\n"
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: callshield\r\n\r\n"
NON_UTF8 = b"agi_network: yes\n\xff\xfe\xc3\x28: \xe8\x80\n\n"


@dataclass(frozen=True)
class PeerOutcome:
    """What a hostile peer observed."""

    received: bytes
    closed_by_server: bool


def half_header(call: FakeCall | None = None) -> bytes:
    """The first half of a real header block, cut in the middle of a line."""
    block = (call or FakeCall()).header_block()
    return block[: len(block) // 2]


async def send_and_watch(
    port: int, payload: bytes, *, close: bool = False, watch: float = 30.0
) -> PeerOutcome:
    """Connect, send ``payload``; then close at once, or read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        try:
            await writer.drain()
        except ConnectionError:
            return PeerOutcome(b"", closed_by_server=True)
        if close:
            return PeerOutcome(b"", closed_by_server=False)
        return await _watch(reader, watch)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _watch(reader: asyncio.StreamReader, watch: float) -> PeerOutcome:
    received = b""
    try:
        async with asyncio.timeout(watch):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        return PeerOutcome(received, closed_by_server=False)
    except ConnectionError:
        pass
    return PeerOutcome(received, closed_by_server=True)


async def half_header_then_close(port: int) -> PeerOutcome:
    """Half a header block, then EOF."""
    return await send_and_watch(port, half_header(), close=True)


async def half_header_then_stall(port: int, watch: float = 30.0) -> PeerOutcome:
    """Half a header block, then silence while the connection stays open."""
    return await send_and_watch(port, half_header(), watch=watch)


async def huge_line(port: int, size: int = 1 << 20) -> PeerOutcome:
    """A valid first header, then a header line of ``size`` bytes."""
    payload = b"agi_network: yes\nagi_calleridname: " + b"x" * size + b"\n\n"
    return await send_and_watch(port, payload)


async def garbage(port: int) -> PeerOutcome:
    """Every byte value, newlines included, and a blank line."""
    return await send_and_watch(port, GARBAGE)


async def http_request(port: int) -> PeerOutcome:
    """A web client that found the port."""
    return await send_and_watch(port, HTTP_REQUEST)


async def non_utf8(port: int) -> PeerOutcome:
    """A header block whose second line is not UTF-8 (nor a header)."""
    return await send_and_watch(port, NON_UTF8)
