"""agi/arrival.py: a header block checked piece by piece says what checking all of it at every
piece would say, whatever the cuts, and looks at each byte a bounded number of times."""

from __future__ import annotations

import random

import pytest
from callshield.agi import arrival as arrival_module
from callshield.agi.arrival import PARTIAL_CHECKED, Arrival
from callshield.agi.request import check_block_start
from callshield.errors import PeerProtocolError
from fake_asterisk import FakeCall

MAX_LINE, MAX_LINES = 200, 40
BLOCK = FakeCall(args=("13800138000", "acme")).header_block()[:-1]  # without its blank line


def whole(data: bytes) -> bool:
    """What the block so far gets when all of it is checked again (the previous way): True if fine."""
    lines = data.split(b"\n")
    if any(len(line) > MAX_LINE for line in lines) or data.count(b"\n") > MAX_LINES:
        return False
    try:
        check_block_start(data)
    except PeerProtocolError:
        return False
    return True


def pieces(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


CASES = {
    "asterisk's block": BLOCK,
    "crlf line ends": BLOCK.replace(b"\n", b"\r\n"),
    "a web client": b"GET / HTTP/1.1\r\nHost: pbx\r\n",
    "tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "a bad line after good ones": BLOCK[:120] + b"\nhello world\nagi_x: 1\n",
    "a name with a capital": b"agi_network: yes\nagi_Request: x\n",
    "a line too long": b"agi_network: yes\nagi_x: " + b"v" * MAX_LINE + b"\n",
    "a line too long, still arriving": b"agi_network: yes\nagi_x: " + b"v" * (MAX_LINE + 5),
    "too many lines": b"agi_x: 1\n" * (MAX_LINES + 1),
    "as many lines as allowed": b"agi_x: 1\n" * MAX_LINES,
    "a long name, still arriving": b"agi_" + b"n" * 150,
    "a long name going wrong": b"agi_network: yes\nagi_" + b"n" * 100 + b"N" + b"n" * 20,
    "a long name, then its value": b"agi_" + b"n" * 100 + b": Any Value, Even: Colons",
    "a long value, still arriving": b"agi_calleridname: " + b"Some Caller, Name: 1 " * 9,
}


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("name", CASES)
def test_each_piece_gets_the_verdict_of_the_whole(name: str, seed: int) -> None:
    data, checks = b"", Arrival(MAX_LINE, MAX_LINES)
    for piece in pieces(CASES[name], random.Random(seed)):
        data += piece
        try:
            checks.add(data, piece)
            fine = True
        except PeerProtocolError:
            fine = False
        assert fine is whole(data), (name, data[-40:])
        if not fine:
            return


def test_a_block_arriving_byte_by_byte_is_looked_at_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = 0

    def counting(data: bytes) -> None:
        nonlocal looked
        looked += len(data)
        check_block_start(data)

    monkeypatch.setattr(arrival_module, "check_block_start", counting)
    block = (b"agi_x: " + b"v" * (MAX_LINE - 8) + b"\n") * MAX_LINES
    data, checks = bytearray(), Arrival(MAX_LINE, MAX_LINES)
    for byte in block:
        data.append(byte)
        checks.add(data, bytes([byte]))
    assert looked <= (PARTIAL_CHECKED + 1) * len(block)  # checked whole at every byte: len**2 / 2
