"""core/privacy.py: masked display form and the keyed hash the store keeps."""

from __future__ import annotations

import re

import pytest
from callshield.privacy import MASK, keyed_hash, mask

MASK_CASES = [
    ("+8613800138000", "+86138****8000", "cn-mobile"),
    ("+15559991234", "+1555****1234", "us"),
    ("+1 (555) 999-1234", "+1555****1234", "us-formatted"),
    ("008613800138000", "+86138****8000", "double-zero-prefix"),
    ("0086 138 0013 8000", "+86138****8000", "double-zero-spaced"),
    ("+86 (138) 0013-8000", "+86138****8000", "cn-formatted"),
    ("+44 20 7946 0000", "+44207****0000", "gb"),
    ("+971 50 123 4567", "+971501****567", "three-digit-country-code"),
    ("13800138000", "138****8000", "national-no-country-code"),
    ("110", "1****", "short-code"),
    ("12", "1****", "two-digits"),
    ("1", "****", "one-digit"),
    ("", "****", "empty"),
    ("garbage", "****", "no-digits"),
    ("+", "+****", "plus-only"),
    ("  +8613800138000  ", "+86138****8000", "surrounding-space"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[:2] for c in MASK_CASES], ids=[c[2] for c in MASK_CASES])
def test_mask(raw: str, expected: str) -> None:
    assert mask(raw) == expected


_MASKED = re.compile(r"(\+?)(\d*)" + re.escape(MASK) + r"(\d*)")

LONG_NUMBERS = [
    *[("13800138000123"[:n], "") for n in range(11, 15)],
    *[("+" + cc + "9876543210123"[:n], cc) for cc in ("1", "44", "86", "971") for n in range(10, 14)],
    ("00" + "8613800138000", "86"),
]


@pytest.mark.parametrize(("raw", "cc"), LONG_NUMBERS, ids=[raw for raw, _ in LONG_NUMBERS])
def test_mask_of_long_number_shows_at_most_three_leading_and_four_trailing(raw: str, cc: str) -> None:
    """An 11+ digit number: country code, at most 3 digits after it, ****, the last 4; 7 at most."""
    digits = "".join(c for c in raw if c.isdigit()).removeprefix("00" if raw.startswith("00") else "")
    body = digits[len(cc) :]
    match = _MASKED.fullmatch(mask(raw))
    assert match is not None
    plus, front, tail = match.groups()
    assert plus == ("+" if cc else "")
    assert front.startswith(cc)
    head = front[len(cc) :]
    assert head == body[:3]
    assert tail == body[-4:]
    assert len(head) + len(tail) <= 7
    assert body not in mask(raw)


@pytest.mark.parametrize("length", range(1, 21), ids=lambda n: f"{n}-digits")
def test_mask_hides_something_and_shows_only_true_digits(length: int) -> None:
    body = "7531902468135792468"[:length] if length < 20 else "75319024681357924680"
    match = _MASKED.fullmatch(mask(body))
    assert match is not None
    _, head, tail = match.groups()
    hidden = length - len(head) - len(tail)
    assert hidden >= (3 if length >= 7 else 1)
    assert len(head) <= 3
    assert len(tail) <= 4
    assert body.startswith(head)
    assert body.endswith(tail)


def test_mask_hides_the_length() -> None:
    assert mask("+8613800138000").count("*") == mask("+86138001380001").count("*") == len(MASK)


KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def test_keyed_hash_known_answer() -> None:
    """HMAC-SHA256(key, E.164): the stored form; changing it would orphan every stored entry."""
    expected = "eee9810e7b839a5c52ae4093c2785f71089272caa6d14ea9956bc905af031e79"
    assert keyed_hash(KEY_A, "+8613800138000").hex() == expected


def test_keyed_hash_is_stable_and_32_bytes() -> None:
    first = keyed_hash(KEY_A, "+8613800138000")
    assert keyed_hash(KEY_A, "+8613800138000") == first
    assert len(first) == 32


@pytest.mark.parametrize(
    ("key", "number"),
    [(KEY_B, "+8613800138000"), (KEY_A, "+8613800138001"), (KEY_A, "+15559991234")],
    ids=["other-key", "other-number", "other-country"],
)
def test_keyed_hash_depends_on_key_and_number(key: bytes, number: str) -> None:
    assert keyed_hash(key, number) != keyed_hash(KEY_A, "+8613800138000")
