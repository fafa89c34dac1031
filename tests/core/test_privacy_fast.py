"""core/privacy.py fast paths: the E.164 mask shortcut and KeyedHasher give what the plain forms give."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from callshield.privacy import MASK, KeyedHasher, keyed_hash, mask
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE


def plain_mask(number: str) -> str:
    """The specification: mask() as first written, without any shortcut."""
    text = number.strip()
    digits = "".join(c for c in text if c.isdigit())
    plus = text.startswith("+") or text.startswith("00")
    if text.startswith("00"):
        digits = digits[2:]
    cc_len = 0
    if plus:
        for length in (1, 2, 3):
            if int(digits[:length] or "0") in COUNTRY_CODE_TO_REGION_CODE:
                cc_len = length
                break
    cc, body = digits[:cc_len], digits[cc_len:]
    tail = max(0, min(4, len(body) // 2 - 1))
    head = max(0, min(3, (len(body) - tail) // 2))
    return ("+" + cc if plus else "") + body[:head] + MASK + (body[-tail:] if tail else "")


def e164_like(rng: random.Random) -> str:
    """``+`` and 0-20 digits, leading zeros and unassigned country codes included."""
    return "+" + "".join(rng.choice("0123456789") for _ in range(rng.randrange(21)))


def anything(rng: random.Random) -> str:
    alphabet = "+0123456789 ()-.#*abc\t\u0663\u00b2"  # Arabic-Indic three, superscript two
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(25)))


@pytest.mark.parametrize("seed", range(4))
def test_mask_of_e164_like_input_is_the_plain_mask(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(5000):
        number = e164_like(rng)
        assert mask(number) == plain_mask(number), number


@pytest.mark.parametrize("seed", range(4))
def test_mask_of_any_input_is_the_plain_mask(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(5000):
        number = anything(rng)
        try:
            expected = plain_mask(number)
        except ValueError:  # a non-ASCII digit where a country code is read: both refuse
            with pytest.raises(ValueError):
                mask(number)
            continue
        assert mask(number) == expected, number


@pytest.mark.parametrize(
    "number", ["+", "+0", "+1", "+86", "+8613800138000", "+999", "+0086", "+1234567890123456"]
)
def test_mask_of_edge_cases_is_the_plain_mask(number: str) -> None:
    assert mask(number) == plain_mask(number)


@pytest.mark.parametrize("key_length", [0, 1, 16, 32, 63, 64, 65, 128, 200])
def test_keyed_hasher_equals_hmac_for_any_key_length(key_length: int) -> None:
    rng = random.Random(key_length)
    key = rng.randbytes(key_length)
    hasher = KeyedHasher(key)
    for _ in range(300):
        number = e164_like(rng)
        expected = hmac.new(key, number.encode("ascii"), hashlib.sha256).digest()
        assert hasher(number) == expected == keyed_hash(key, number)


def test_keyed_hasher_is_reusable_and_independent_per_number() -> None:
    key = bytes(range(32))
    hasher = KeyedHasher(key)
    first = hasher("+8613800138000")
    assert hasher("+8613800138001") != first
    assert hasher("+8613800138000") == first
    assert first.hex() == "eee9810e7b839a5c52ae4093c2785f71089272caa6d14ea9956bc905af031e79"


def test_keyed_hasher_refuses_non_ascii_as_keyed_hash_does() -> None:
    hasher = KeyedHasher(bytes(32))
    with pytest.raises(UnicodeEncodeError):
        keyed_hash(bytes(32), "+86\u0663")
    with pytest.raises(UnicodeEncodeError):
        hasher("+86\u0663")
