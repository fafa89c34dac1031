"""Recognising a keypad code (default ``*9``) in a stream of DTMF digit events: pure, clock passed in.

Asterisk reports each digit as one event, but RFC 4733 end packets are often seen twice, about
65 ms apart, with the same duration: a repeat of the same digit with the same duration within
:attr:`KeypadCode.duplicate_window` is the same key press. Digits further apart than the
inter-digit timeout start a new sequence, so a ``*`` and a ``9`` pressed seconds apart do not
mark anyone. Extra digits before the code do not matter (``1*9`` matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callshield.errors import InvalidInput

_DTMF = re.compile(r"[0-9*#A-D]{1,8}")


@dataclass(frozen=True)
class KeypadCode:
    code: str = "*9"
    inter_digit_timeout: float = 2.0
    """Seconds allowed between two digits of the code."""
    duplicate_window: float = 0.2
    """A repeat of the same digit and duration within this many seconds is one key press."""

    def __post_init__(self) -> None:
        if not _DTMF.fullmatch(self.code):
            raise InvalidInput(f"keypad code {self.code[:16]!r}: 1-8 of 0-9 * # A-D")
        if not 0 < self.inter_digit_timeout <= 30:
            raise InvalidInput("keypad inter-digit timeout must be between 0 and 30 seconds")


@dataclass
class DigitBuffer:
    """The recent digits of one channel."""

    spec: KeypadCode
    digits: str = ""
    last_at: float = float("-inf")
    last_digit: str = ""
    last_duration: int | None = None
    matched: bool = field(default=False)

    def feed(self, digit: str, at: float, duration_ms: int | None = None) -> bool:
        """Add one digit event seen at ``at`` (seconds, any monotonic clock); True when the code
        completes with it. After a match the buffer starts afresh."""
        gap = at - self.last_at
        if (
            digit == self.last_digit
            and duration_ms == self.last_duration
            and gap <= self.spec.duplicate_window
        ):
            return False
        if gap > self.spec.inter_digit_timeout:
            self.digits = ""
        self.digits = (self.digits + digit)[-len(self.spec.code) :]
        self.last_at, self.last_digit, self.last_duration = at, digit, duration_ms
        if self.digits == self.spec.code:
            self.digits = ""
            return True
        return False
