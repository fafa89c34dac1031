"""The Asterisk 22 FastAGI capture (``data/fastagi.jsonl``, a copy of ``captures/fastagi.jsonl``).

Records are ``{"t", "conn", "dir", "data"}``; ``dir`` is ``<<`` (from Asterisk, ``<< (idle)``
for a line that came while no command was pending), ``>>`` (to Asterisk), or a connection event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CAPTURE = Path(__file__).parent / "data" / "fastagi.jsonl"


@dataclass(frozen=True)
class Record:
    """One line of the capture."""

    t: float
    conn: int
    dir: str
    data: str

    @property
    def from_asterisk(self) -> bool:
        """True for data Asterisk sent (``<<``, ``<< (idle)``)."""
        return self.dir.startswith("<<")


@cache
def records() -> tuple[Record, ...]:
    """Every record of the capture, in order."""
    out = []
    for line in CAPTURE.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        out.append(Record(float(raw["t"]), int(raw["conn"]), str(raw["dir"]), str(raw["data"])))
    return tuple(out)


def connections() -> list[int]:
    """The connection numbers that carried FastAGI traffic."""
    return sorted({r.conn for r in records() if r.from_asterisk})


def traffic(conn: int) -> list[Record]:
    """Data records of one connection (both directions), in order."""
    return [r for r in records() if r.conn == conn and (r.from_asterisk or r.dir == ">>")]


def header_block(conn: int) -> bytes:
    """The header block of ``conn`` exactly as Asterisk sent it, blank line included."""
    out = b""
    for r in traffic(conn):
        out += r.data.encode("utf-8")
        if r.data == "\n":
            return out
    raise AssertionError(f"connection {conn} has no complete header block")


def header_lines(conn: int) -> list[str]:
    """The header lines of ``conn`` without their newlines (the blank line left out)."""
    return header_block(conn).decode("utf-8").split("\n")[:-2]


def after_header(conn: int) -> list[Record]:
    """The records of ``conn`` after its header block."""
    data = traffic(conn)
    end = next(i for i, r in enumerate(data) if r.data == "\n")
    return data[end + 1 :]


def lines_from_asterisk_after_header() -> list[str]:
    """Every line Asterisk sent after a header block (replies, usage text, HANGUP), newline kept."""
    return [r.data for conn in connections() for r in after_header(conn) if r.from_asterisk]


def command_lines() -> list[str]:
    """Every command line the capture's server sent, newline kept."""
    return [r.data for r in records() if r.dir == ">>"]
