"""Masking and keyed hashing: how a phone number may appear anywhere outside the caller's memory.

Numbers are confidential. The store keeps only a keyed hash (HMAC-SHA256 under the deployment's
secret key) and a masked form; logs, errors and displays show only the masked form.
"""

from __future__ import annotations

import hashlib
import hmac

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

MASK = "****"


def _country_code_length(digits: str) -> int:
    """Length (1-3) of the ITU country code that ``digits`` starts with, or 0 if none matches."""
    for length in (1, 2, 3):
        if int(digits[:length] or "0") in COUNTRY_CODE_TO_REGION_CODE:
            return length
    return 0


def mask(number: str) -> str:
    """Mask a number for display: country code, first digits, ``****``, last digits.

    >>> mask("+8613800138000")
    '+86138****8000'
    >>> mask("+15559991234")
    '+1555****1234'

    Works on any text, valid number or not (so error messages can quote bad input): only digits
    are kept, at most 3 after the country code and at most the last 4; shorter numbers show
    fewer (never more than half of the digits after the country code, less one). The fixed
    ``****`` hides the length as well.
    """
    text = number.strip()
    digits = "".join(c for c in text if c.isdigit())
    plus = text.startswith("+") or text.startswith("00")
    if text.startswith("00"):
        digits = digits[2:]
    cc_len = _country_code_length(digits) if plus else 0
    cc, body = digits[:cc_len], digits[cc_len:]
    tail = max(0, min(4, len(body) // 2 - 1))
    head = max(0, min(3, (len(body) - tail) // 2))
    shown = ("+" + cc if plus else "") + body[:head] + MASK + (body[-tail:] if tail else "")
    return shown


def keyed_hash(key: bytes, e164: str) -> bytes:
    """HMAC-SHA256 of an E.164 number under the deployment key: the only form the store keeps."""
    return hmac.new(key, e164.encode("ascii"), hashlib.sha256).digest()
