"""The fast paths of ``classify`` must agree with the full phonenumbers parser, input for input."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from callshield.errors import NumberError
from callshield.numbers import NumberRules, Target, _fast_national, _number_types, _valid_national, classify
from phonenumbers import PhoneNumber

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


def _candidates(region: str, rng: random.Random) -> list[str]:
    """National numbers of every type the region has, and random digits of its possible lengths."""
    found = []
    for kind in range(phonenumbers.PhoneNumberType.VOICEMAIL + 1):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            found.append(phonenumbers.national_significant_number(example))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert meta is not None and meta.general_desc is not None
    lengths = [*(meta.general_desc.possible_length or (9,))]
    for base in list(found):  # near misses: one digit changed, one added, one dropped
        at = rng.randrange(len(base))
        found += [base[:at] + rng.choice("0123456789") + base[at + 1 :], base + "5", base[:-1]]
    for _ in range(60):
        found.append(rng.choice("123456789") + "".join(rng.choices("0123456789", k=rng.choice(lengths) - 1)))
    return [d for d in found if d and d[0] != "0"]


def test_the_type_check_agrees_with_is_valid_number_in_every_single_region_country() -> None:
    rng = random.Random("types")
    checked = valid = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        types = _number_types(region)
        if types is None:
            continue
        cc = phonenumbers.country_code_for_region(region)
        for digits in _candidates(region, rng):
            expected = phonenumbers.is_valid_number(PhoneNumber(country_code=cc, national_number=int(digits)))
            assert _valid_national(digits, types) == expected, (region, digits)
            checked += 1
            valid += expected
    assert checked > 10_000 and valid > 1_000, "too few numbers, or too few valid ones, to prove anything"


def test_multi_region_country_codes_are_left_to_the_parser() -> None:
    assert _number_types("US") is None and _number_types("GB") is None
    assert _number_types("CN") is not None


def _outcome(raw: str, rules: NumberRules) -> object:
    try:
        return classify(raw, rules)
    except NumberError as e:
        return str(e)


@pytest.mark.parametrize("region", REGIONS)
def test_plain_dialled_digits_get_what_the_whole_procedure_gives(region: str) -> None:
    """A leading space sends the same digits through every step: the outcome must not differ."""
    rng = random.Random(f"plain-{region}")
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    valid = phonenumbers.national_significant_number(example) if example else "1234567"
    rules = NumberRules(default_region=region, extra_exempt=frozenset({"1234567", valid}))
    assert _outcome(valid, rules) == Target(None, exempt=True, digits=valid)  # configured: exempt
    taken = 0
    for _ in range(3000):
        digits = "".join(rng.choices("0123456789", k=rng.randrange(5, 18)))
        assert _outcome(digits, rules) == _outcome(" " + digits, rules), (region, digits)
        taken += isinstance(_outcome(digits, rules), Target)
    assert _outcome("1234567", rules) == Target(None, exempt=True, digits="1234567")
    assert taken > 0, "no valid number drawn: the test would prove little"
