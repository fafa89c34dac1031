"""Masking and keyed hashing: how a phone number may appear anywhere outside the caller's memory.

Numbers are confidential. The store keeps only a keyed hash (HMAC-SHA256 under the deployment's
secret key) and a masked form; logs, errors and displays show only the masked form.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

MASK = "****"
_BLOCK = 64
"""SHA-256's block size: the length of HMAC's padded key."""
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _country_code_length(digits: str) -> int:
    """Length (1-3) of the ITU country code that ``digits`` starts with, or 0 if none matches."""
    for length in (1, 2, 3):
        if int(digits[:length] or "0") in COUNTRY_CODE_TO_REGION_CODE:
            return length
    return 0


@cache
def _cc_length(first3: str) -> int:
    """:func:`_country_code_length` of ASCII digits, by their first three (all it looks at)."""
    return _country_code_length(first3)


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
    if number[:1] == "+" and number.isascii() and number[1:].isdigit():
        # Canonical E.164 (what the store and the import mask): the general path's result, cheaper.
        return _shown("+", number[1:], _cc_length(number[1:4]))
    text = number.strip()
    digits = "".join(c for c in text if c.isdigit())
    plus = text.startswith("+") or text.startswith("00")
    if text.startswith("00"):
        digits = digits[2:]
    cc_len = _country_code_length(digits) if plus else 0
    return _shown("+" if plus else "", digits, cc_len)


def _shown(plus: str, digits: str, cc_len: int) -> str:
    cc, body = digits[:cc_len], digits[cc_len:]
    tail = max(0, min(4, len(body) // 2 - 1))
    head = max(0, min(3, (len(body) - tail) // 2))
    return plus + cc + body[:head] + MASK + (body[-tail:] if tail else "")


def keyed_hash(key: bytes, e164: str) -> bytes:
    """HMAC-SHA256 of an E.164 number under the deployment key: the only form the store keeps."""
    return hmac.new(key, e164.encode("ascii"), hashlib.sha256).digest()


class KeyedHasher:
    """:func:`keyed_hash` under one key, for many numbers: the same digests, several times cheaper.

    HMAC (RFC 2104) is ``H((K ^ opad) || H((K ^ ipad) || m))``; the hash states after the two
    padded keys are computed once here, and each number costs two copies and two short updates.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def __call__(self, e164: str) -> bytes:
        inner = self._inner.copy()
        inner.update(e164.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
