"""Keypad code matching with real-world timing: duplicates, pauses, extra digits."""

from __future__ import annotations

import pytest
from callshield.errors import InvalidInput
from callshield.keypad import DigitBuffer, KeypadCode

Press = tuple[str, float, int | None]


def run(presses: list[Press], spec: KeypadCode = KeypadCode()) -> list[int]:
    """Indexes of the presses that completed the code."""
    buffer = DigitBuffer(spec)
    return [i for i, (digit, at, duration) in enumerate(presses) if buffer.feed(digit, at, duration)]


@pytest.mark.parametrize(
    ("presses", "matches"),
    [
        pytest.param([("*", 0.0, 120), ("9", 0.18, 120)], [1], id="captured *9 (SIP INFO)"),
        pytest.param(
            [("*", 0.0, 280), ("*", 0.065, 280), ("9", 0.5, 280), ("9", 0.565, 280)], [2], id="rfc4733 dups"
        ),
        pytest.param([("1", 0.0, 100), ("*", 0.3, 100), ("9", 0.6, 100)], [2], id="extra digit before"),
        pytest.param([("*", 0.0, 100), ("9", 2.5, 100)], [], id="pause longer than the timeout"),
        pytest.param([("*", 0.0, 100), ("5", 0.3, 100), ("9", 0.6, 100)], [], id="wrong digit between"),
        pytest.param(
            [("*", 0.0, 100), ("9", 0.3, 100), ("*", 0.6, 100), ("9", 0.9, 100)], [1, 3], id="twice"
        ),
        pytest.param([("9", 0.0, 100), ("*", 0.3, 100)], [], id="reversed"),
        pytest.param([("*", 0.0, 100), ("*", 0.3, 100), ("9", 0.6, 100)], [2], id="star pressed twice"),
        pytest.param([("*", 0.0, 100), ("9", 0.1, 100), ("9", 0.15, 100)], [1], id="dup after match"),
        pytest.param([("*", 0.0, 100), ("9", 0.1, None)], [1], id="no duration"),
    ],
)
def test_code_matching(presses: list[Press], matches: list[int]) -> None:
    assert run(presses) == matches


def test_a_real_double_press_of_the_same_key_is_two_digits() -> None:
    spec = KeypadCode(code="*99")
    assert run([("*", 0.0, 100), ("9", 0.4, 110), ("9", 0.7, 130)], spec) == [2]
    assert run([("*", 0.0, 100), ("9", 0.4, 110), ("9", 0.45, 110)], spec) == []


@pytest.mark.parametrize("code", ["", "*9x", "123456789", "9 9"])
def test_invalid_codes(code: str) -> None:
    with pytest.raises(InvalidInput):
        KeypadCode(code=code)
