"""core/numbers.py: E.164 normalisation, dial-out prefixes, exempt short codes, masked errors."""

from __future__ import annotations

import phonenumbers
import pytest
from callshield.errors import InvalidInput, NumberError
from callshield.numbers import NumberRules, Target, classify, normalize, normalize_prefix
from callshield.privacy import mask
from phonenumbers import PhoneNumberFormat, PhoneNumberType

CN = NumberRules()
US = NumberRules("US")
GB = NumberRules("GB")
DE = NumberRules("DE")
AU = NumberRules("AU")
CN_DIAL_OUT = NumberRules("CN", ("9", "17951"))
US_DIAL_OUT = NumberRules("US", ("9",))


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _slow_path(raw: str) -> str | None:
    """What the full parser says ``raw`` is: its E.164 form, or None if invalid or unparseable."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _classify_or_none(raw: str, rules: NumberRules) -> str | None:
    try:
        return classify(raw, rules).e164
    except NumberError:
        return None


E164_CASES = [
    ("+8613800138000", CN, "+8613800138000", "cn-plus"),
    ("+86 138-0013-8000", CN, "+8613800138000", "cn-plus-spaces-dashes"),
    ("0086 13800138000", CN, "+8613800138000", "cn-00"),
    ("008613800138000", CN, "+8613800138000", "cn-00-compact"),
    ("13800138000", CN, "+8613800138000", "cn-national-mobile"),
    ("138.0013.8000", CN, "+8613800138000", "cn-dots"),
    ("  13800138000\t", CN, "+8613800138000", "cn-surrounding-whitespace"),
    ("(010) 1234.5678", CN, "+861012345678", "cn-landline-parentheses-dot"),
    ("010-12345678", CN, "+861012345678", "cn-landline-trunk-zero"),
    ("+86 010 12345678", CN, "+861012345678", "cn-plus-with-trunk-zero"),
    ("+44 20 7946 0000", CN, "+442079460000", "cn-rules-foreign-plus"),
    ("00 44 20 7946 0000", CN, "+442079460000", "cn-rules-foreign-00"),
    ("(212) 555-0123", US, "+12125550123", "us-national-parentheses"),
    ("212.555.0123", US, "+12125550123", "us-dots"),
    ("1 212 555 0123", US, "+12125550123", "us-national-prefix-1"),
    ("+1 (212) 555-0123", US, "+12125550123", "us-plus"),
    ("011 44 20 7946 0000", US, "+442079460000", "us-idd-011"),
    ("020 7946 0000", GB, "+442079460000", "gb-london"),
    ("07911 123456", GB, "+447911123456", "gb-mobile"),
    ("+44 (0)20 7946 0000", GB, "+442079460000", "gb-plus-bracketed-zero"),
    ("0044 20 7946 0000", GB, "+442079460000", "gb-00"),
    ("030 123456", DE, "+4930123456", "de-berlin"),
    ("0151 23456789", DE, "+4915123456789", "de-mobile"),
    ("+49 (0) 30 123456", DE, "+4930123456", "de-plus-bracketed-zero"),
    ("0049/30/123456", DE, "+4930123456", "de-00-slashes"),
    ("+39 06 6988 0000", CN, "+390669880000", "it-leading-zero-rome"),
    ("+39 02 1234 5678", CN, "+390212345678", "it-leading-zero-milan"),
]


@pytest.mark.parametrize(
    ("raw", "rules", "expected"), [c[:3] for c in E164_CASES], ids=[c[3] for c in E164_CASES]
)
def test_classify_normalises_to_e164(raw: str, rules: NumberRules, expected: str) -> None:
    assert classify(raw, rules) == Target(expected)
    assert normalize(raw, rules) == expected


DIAL_OUT_CASES = [
    ("9 13800138000", CN_DIAL_OUT, "+8613800138000", "cn-outside-line-9"),
    ("17951 13800138000", CN_DIAL_OUT, "+8613800138000", "cn-carrier-17951"),
    ("1795113800138000", CN_DIAL_OUT, "+8613800138000", "cn-carrier-16-digits-compact"),
    ("9 010 12345678", CN_DIAL_OUT, "+861012345678", "cn-9-landline"),
    ("9 0086 13800138000", CN_DIAL_OUT, "+8613800138000", "cn-9-international"),
    ("13800138000", CN_DIAL_OUT, "+8613800138000", "cn-no-prefix-dialled"),
    ("9 212 555 0123", US_DIAL_OUT, "+12125550123", "us-9"),
    ("9 1 212 555 0123", US_DIAL_OUT, "+12125550123", "us-9-then-1"),
    ("9 917 555 0123", US_DIAL_OUT, "+19175550123", "us-9-then-area-917"),
    # The remainder after "9" (175550123) is not valid: the 9 belongs to the area code 917.
    ("917 555 0123", US_DIAL_OUT, "+19175550123", "us-area-917-not-stripped"),
    # "+" input is never stripped: +91 is India, not outside-line 9 + 1.
    ("+91 98765 43210", US_DIAL_OUT, "+919876543210", "us-plus-91-not-stripped"),
]


@pytest.mark.parametrize(
    ("raw", "rules", "expected"), [c[:3] for c in DIAL_OUT_CASES], ids=[c[3] for c in DIAL_OUT_CASES]
)
def test_dial_out_prefix_stripped_only_when_remainder_is_valid(
    raw: str, rules: NumberRules, expected: str
) -> None:
    assert classify(raw, rules).e164 == expected


def test_dial_out_prefixes_are_tried_longest_first() -> None:
    assert NumberRules("CN", ("9", "17951", "179")).strip_prefixes == ("17951", "179", "9")


EXEMPT_CASES = [
    ("110", CN, "cn-police"),
    ("119", CN, "cn-fire"),
    ("120", CN, "cn-ambulance"),
    ("122", CN, "cn-traffic"),
    ("12395", CN, "cn-maritime"),
    ("112", CN, "cn-112"),
    ("911", US, "us-911"),
    ("112", US, "us-112"),
    ("999", GB, "gb-999"),
    ("112", GB, "gb-112"),
    ("110", DE, "de-police"),
    ("112", DE, "de-112"),
    (" 1 1 0 ", CN, "cn-police-with-spaces"),
    ("6001", NumberRules(extra_exempt=frozenset({"6001"})), "cn-extra-exempt"),
    ("4008001234", NumberRules(extra_exempt=frozenset({"4008001234"})), "cn-extra-exempt-long"),
]


@pytest.mark.parametrize(("raw", "rules"), [c[:2] for c in EXEMPT_CASES], ids=[c[2] for c in EXEMPT_CASES])
def test_emergency_and_service_codes_are_exempt(raw: str, rules: NumberRules) -> None:
    digits = _digits(raw)
    target = classify(raw, rules)
    assert target == Target(None, exempt=True, digits=digits)
    # short codes are not personal data; a longer configured exempt number is still masked
    assert target.masked == (digits if len(digits) <= 6 else mask(digits))
    with pytest.raises(NumberError, match="short code"):
        normalize(raw, rules)


NOT_EXEMPT_CASES = [
    ("911", CN, "cn-911-is-not-chinese"),
    ("110", US, "us-110"),
    ("999", DE, "de-999"),
    ("6001", CN, "cn-6001-without-extra-exempt"),
    ("+110", CN, "cn-110-written-with-plus"),
]


@pytest.mark.parametrize(
    ("raw", "rules"), [c[:2] for c in NOT_EXEMPT_CASES], ids=[c[2] for c in NOT_EXEMPT_CASES]
)
def test_short_codes_of_other_regions_are_not_exempt(raw: str, rules: NumberRules) -> None:
    with pytest.raises(NumberError, match="not a valid phone number"):
        classify(raw, rules)


EXEMPT_BUG_CASES = [
    ("000", AU, "au-000-emergency"),
    ("0000", NumberRules(extra_exempt=frozenset({"0000"})), "extra-exempt-starting-00"),
]


@pytest.mark.parametrize(
    ("raw", "rules"), [c[:2] for c in EXEMPT_BUG_CASES], ids=[c[2] for c in EXEMPT_BUG_CASES]
)
def test_exempt_codes_starting_with_00(raw: str, rules: NumberRules) -> None:
    assert classify(raw, rules) == Target(None, exempt=True, digits=raw)


@pytest.mark.parametrize(("raw", "code"), [("9110", "110"), ("9 120", "120")], ids=["9-110", "9-120"])
def test_emergency_code_behind_dial_out_prefix_is_exempt(raw: str, code: str) -> None:
    assert classify(raw, CN_DIAL_OUT) == Target(None, exempt=True, digits=code)


ERROR_CASES = [
    ("", CN, "empty", "empty"),
    ("   ", CN, "empty", "blank"),
    (" - ( ) . ", CN, "empty", "only-separators"),
    ("abc", CN, "not digits", "letters"),
    ("138-0013-800O", CN, "not digits", "letter-o-for-zero"),
    ("+86 138 0013 8000 ext 12", CN, "not digits", "extension"),
    ("13800138000#", CN, "not digits", "hash"),
    ("+8613800+138000", CN, "not digits", "plus-inside"),
    ("12", CN, "too short", "two-digits"),
    ("+12", CN, "too short", "plus-two-digits"),
    ("1380013800012345678", CN, "too long", "19-digits"),
    ("+861380013800099999", CN, "too long", "plus-18-digits"),
    ("138001380001380013800138", CN, "too long", "24-digits"),
    ("1380013800" * 7, CN, "input too long", "70-characters"),
    ("+86 1380013800", CN, "not a valid phone number", "cn-mobile-one-digit-short"),
    ("99999999", CN, "not a valid phone number in region CN", "cn-invalid-national"),
    ("555 0123", US, "not a valid phone number in region US", "us-7-digit-local"),
    ("+012345678", CN, "not a valid phone number", "plus-zero"),
    ("+44 20 7946 000", CN, "not a valid phone number", "gb-one-digit-short"),
]


@pytest.mark.parametrize(
    ("raw", "rules", "problem"), [c[:3] for c in ERROR_CASES], ids=[c[3] for c in ERROR_CASES]
)
def test_errors_name_the_problem_and_mask_the_input(raw: str, rules: NumberRules, problem: str) -> None:
    with pytest.raises(NumberError) as info:
        classify(raw, rules)
    message = str(info.value)
    assert problem in message
    assert isinstance(info.value, InvalidInput)
    digits = _digits(raw)
    if digits:
        assert digits not in message
        assert digits[:8] not in message


@pytest.mark.parametrize(
    "raw", ["+49 (0) 800 1234567890", "0049 (0) 800 1234567890"], ids=["plus", "double-zero"]
)
def test_national_prefix_after_country_code_does_not_count_towards_length(raw: str) -> None:
    assert classify(raw, DE).e164 == "+498001234567890"


RULES_ERRORS = [
    ({"default_region": "XX"}, "unknown default region", "unknown-region"),
    ({"default_region": "cn"}, "unknown default region", "lowercase-region"),
    ({"strip_prefixes": ("9a",)}, "dial-out prefix", "prefix-not-digits"),
    ({"strip_prefixes": ("",)}, "dial-out prefix", "prefix-empty"),
    ({"strip_prefixes": ("123456789",)}, "dial-out prefix", "prefix-9-digits"),
]


@pytest.mark.parametrize(
    ("kwargs", "problem"), [c[:2] for c in RULES_ERRORS], ids=[c[2] for c in RULES_ERRORS]
)
def test_number_rules_refuse_bad_settings(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(NumberError, match=problem):
        NumberRules(**kwargs)  # type: ignore[arg-type]


PREFIX_CASES = [
    ("+861380013", "+861380013", "plus"),
    ("00861380013", "+861380013", "double-zero"),
    ("+86 138-0013", "+861380013", "separators"),
    ("+8613800138000", "+8613800138000", "full-number"),
    ("+123456789012345", "+123456789012345", "fifteen-digits"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[:2] for c in PREFIX_CASES], ids=[c[2] for c in PREFIX_CASES])
def test_normalize_prefix(raw: str, expected: str) -> None:
    assert normalize_prefix(raw) == expected


PREFIX_ERRORS = [
    ("861380013", "national-form"),
    ("+86a", "letters"),
    ("+1234567890123456", "sixteen-digits"),
    ("", "empty"),
    ("+", "plus-only"),
]


@pytest.mark.parametrize("raw", [c[0] for c in PREFIX_ERRORS], ids=[c[1] for c in PREFIX_ERRORS])
def test_normalize_prefix_refuses(raw: str) -> None:
    with pytest.raises(NumberError):
        normalize_prefix(raw)


@pytest.mark.parametrize("raw", ["+1", "+44", "+86", "0044"], ids=["nanp", "gb", "cn", "gb-double-zero"])
def test_normalize_prefix_accepts_country_codes(raw: str) -> None:
    assert normalize_prefix(raw) == "+" + raw.lstrip("+0")


FAST_PATH_CASES = [
    ("+390669880000", "+390669880000", "it-leading-zero"),
    ("+390212345678", "+390212345678", "it-leading-zero-milan"),
    ("+4402079460000", "+442079460000", "gb-national-prefix-0"),
    ("+789123456789", "+79123456789", "ru-national-prefix-8"),
    ("+112125550123", "+12125550123", "us-national-prefix-1"),
    ("+330612345678", "+33612345678", "fr-national-prefix-0"),
    ("+54111512345678", "+5491112345678", "ar-15-mobile-transform"),
    ("+8601012345678", "+861012345678", "cn-trunk-zero"),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [c[:2] for c in FAST_PATH_CASES], ids=[c[2] for c in FAST_PATH_CASES]
)
def test_plus_input_with_leading_zero_or_national_prefix(raw: str, expected: str) -> None:
    assert _slow_path(raw) == expected
    assert classify(raw, CN).e164 == expected


_TYPES = [t for name, t in vars(PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"]


def _candidates(region: str) -> set[str]:
    """Example numbers of ``region`` in E.164, with national prefixes inserted, cut short, lengthened."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    examples = [phonenumbers.example_number_for_type(region, t) for t in _TYPES]
    out: set[str] = set()
    for example in examples:
        if example is None:
            continue
        cc = example.country_code
        nsn = phonenumbers.national_significant_number(example)
        prefixes = {"", "0", metadata.national_prefix or ""}
        out.update(f"+{cc}{p}{nsn}" for p in prefixes)
        out.update({f"+{cc}{nsn[:-1]}", f"+{cc}{nsn}0", f"+{cc}{nsn}9"})
    return {c for c in out if len(c) - 1 <= 15}


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_fast_path_agrees_with_full_parser(region: str) -> None:
    candidates = _candidates(region)
    mismatches = [
        (raw, got, want)
        for raw in sorted(candidates)
        if (got := _classify_or_none(raw, CN)) != (want := _slow_path(raw))
    ]
    assert mismatches == []


@pytest.mark.parametrize("cc", sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS))
def test_fast_path_agrees_with_full_parser_non_geographic(cc: int) -> None:
    example = phonenumbers.example_number_for_non_geo_entity(cc)
    assert example is not None
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    assert classify(e164, CN).e164 == _slow_path(e164) == e164


def test_every_example_number_is_accepted() -> None:
    """The fast path must not refuse any valid number the library knows (it can only fall back)."""
    refused = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in _TYPES:
            example = phonenumbers.example_number_for_type(region, t)
            if example is None or not phonenumbers.is_valid_number(example):
                continue
            e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
            if _classify_or_none(e164, CN) != e164:
                refused.append(e164)
    assert refused == []
