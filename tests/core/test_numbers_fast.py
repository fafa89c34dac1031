"""The fast paths of ``classify`` must agree with the full phonenumbers parser, input for input."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from callshield.errors import NumberError
from callshield.numbers import NumberRules, _fast_national, classify

REGIONS = ["CN", "US", "GB", "DE", "RU", "IN", "BR", "JP", "FR", "IT", "AU", "HK", "SG", "KR", "MX"]


def slow(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if len(e164) <= 16 else None


@pytest.mark.parametrize("region", REGIONS)
def test_the_national_fast_path_never_disagrees_with_the_parser(region: str) -> None:
    rng = random.Random(f"fast-{region}")
    example = phonenumbers.example_number(region)
    seeds = [phonenumbers.national_significant_number(example)] if example else []
    taken = 0
    for _ in range(4000):
        if seeds and rng.random() < 0.5:
            base = seeds[0]
            digits = base[: rng.randrange(1, len(base) + 1)] + "".join(
                rng.choices("0123456789", k=rng.randrange(0, 4))
            )
        else:
            digits = "".join(rng.choices("0123456789", k=rng.randrange(4, 14)))
        fast = _fast_national(digits, region)
        if fast is not None:
            taken += 1
            assert fast == slow(digits, region), (region, digits)
    assert taken > 0, "the fast path was never taken: the test would prove nothing"


@pytest.mark.parametrize("text", ["+999 1234 5678", "+28 1234 5678", "00999123456789"])
def test_unknown_country_codes_are_refused_before_parsing(text: str) -> None:
    with pytest.raises(NumberError, match="no such country code"):
        classify(text, NumberRules())
