"""A header block checked while it arrives in pieces, each byte looked at a bounded number of times.

Asterisk writes its header block in one go and it usually arrives in one segment: then nothing here
runs (the block is parsed whole). A block that arrives in pieces is checked piece by piece, so that
a peer over a limit, or one that is not Asterisk at all, is turned away without waiting for a blank
line it may never send: lines at most ``max_line`` bytes, at most ``max_lines`` lines, each an
``agi_<name>: value`` line (:func:`~callshield.agi.request.check_block_start`).

Checking the whole block again at every piece, as before, cost time growing with the square of its
size: a peer writing a block of the limits' size (128 lines of 8 KiB) in small pieces had up to
1 MiB scanned again at every piece, for as long as the header timeout let it. :class:`Arrival`
checks each complete line once, when its ``\\n`` arrives, and of the line still arriving its
start (where a web client or a scanner shows itself), its length, and the bytes of its name that
came with each piece.
"""

from __future__ import annotations

import re

from callshield.agi.request import check_block_start
from callshield.errors import PeerProtocolError

PARTIAL_CHECKED = 64
"""Bytes at the start of a line still arriving that are checked as a whole before the line is."""
_NAME_TAIL = re.compile(rb"[a-z0-9_]*")
"""The rest of a header's name, past the start checked as a whole."""


class Arrival:
    """The checks on a header block received so far (see the module docstring)."""

    def __init__(self, max_line: int, max_lines: int) -> None:
        self._max_line = max_line
        self._max_lines = max_lines
        self._checked = 0
        """Where the first line not checked whole yet starts."""
        self._line_start = 0
        """Where the line still arriving starts (just past the last ``\\n``)."""
        self._lines = 0
        self._in_value = False
        """True once the line still arriving showed its colon (its value may hold anything)."""

    def add(self, data: bytes | bytearray, chunk: bytes) -> None:
        """Check ``data``, the block so far, which ``chunk`` (the piece just read) ends."""
        start = len(data) - len(chunk)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            self._line_start = start + newline + 1
            self._in_value = False
            self._check_lines(bytes(data[self._checked : self._line_start]))
            self._checked = self._line_start
        if len(data) - self._line_start > self._max_line:
            raise PeerProtocolError(f"line longer than {self._max_line} bytes")
        head = self._line_start + PARTIAL_CHECKED
        start_of_line = bytes(data[self._line_start : head])
        check_block_start(start_of_line)
        self._in_value = self._in_value or b":" in start_of_line
        if not self._in_value and len(data) > head:
            self._check_name(bytes(data[max(head, start) :]))

    def _check_name(self, tail: bytes) -> None:
        """The bytes of a long name that this piece brought (its start is checked already)."""
        colon = tail.find(b":")
        if colon >= 0:
            self._in_value = True
            tail = tail[:colon]
        if _NAME_TAIL.fullmatch(tail) is None:
            check_block_start(tail)  # names the problem
            raise PeerProtocolError("header block is not 'agi_<name>: value' lines")

    def _check_lines(self, lines: bytes) -> None:
        """Whole lines, each with its ``\\n``, checked once."""
        self._lines = check_lines(lines, self._max_line, self._max_lines, self._lines)
        check_block_start(lines)


def check_lines(data: bytes, max_line: int, max_lines: int, seen: int = 0) -> int:
    """The limits on header lines (the last one may be incomplete), ``seen`` lines before these;
    returns the lines counted, ``seen`` included. PeerProtocolError names the limit passed."""
    if len(data) > max_line and any(len(line) > max_line for line in data.split(b"\n")):
        raise PeerProtocolError(f"line longer than {max_line} bytes")
    lines = seen + data.count(b"\n")
    if lines > max_lines:
        raise PeerProtocolError(f"header block longer than {max_lines} lines")
    return lines
