"""Number rules: every number that enters callshield becomes E.164 here, or is exempt, or is refused.

Input comes from dialled digits (``${EXTEN}``), the command line, import files and the API, in any of
the forms people and PBXs write: ``+86 138-0013-8000``, ``0086 13800138000``, ``(010) 1234.5678``, an
outside-line ``9`` in front, a carrier prefix such as ``17951``. :func:`classify` turns it into a
:class:`Target`: either an E.164 number or an exempt short code (emergency and service numbers of the
region, which are never blocked and never shielded). Anything else raises :class:`NumberError`,
whose message names the problem and shows the input masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from callshield.errors import NumberError
from callshield.privacy import mask
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    shortnumberinfo,
)

#: ITU-T E.164: at most 15 digits including the country code.
MAX_DIGITS = 15
#: Longest dial-out prefix accepted in front of a number.
MAX_STRIP = 8
#: Longest input accepted before parsing (formatting characters included).
MAX_INPUT = 64
#: Inputs with this many digits or fewer are looked up as short codes first.
SHORT_CODE_MAX = 6

_SEPARATORS = str.maketrans("", "", " -.()/\t")
_DIALLABLE = re.compile(r"\+?[0-9]+")
_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class NumberRules:
    """How dialled and imported numbers are read."""

    default_region: str = "CN"
    """ISO 3166 region for numbers written without a country code."""
    strip_prefixes: tuple[str, ...] = ()
    """Dial-out prefixes (outside line ``9``, carrier codes such as ``17951``) removed before parsing
    when what follows them is a valid number. Longest first."""
    extra_exempt: frozenset[str] = field(default_factory=frozenset)
    """Additional short codes (digits as dialled) that are never blocked."""

    def __post_init__(self) -> None:
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise NumberError(f"unknown default region {self.default_region!r}")
        for prefix in self.strip_prefixes:
            if not prefix.isdigit() or len(prefix) > MAX_STRIP:
                raise NumberError(f"dial-out prefix {prefix[:16]!r} must be 1-{MAX_STRIP} digits")
        ordered = tuple(sorted(self.strip_prefixes, key=len, reverse=True))
        object.__setattr__(self, "strip_prefixes", ordered)


@dataclass(frozen=True)
class Target:
    """What a dialled or entered number resolves to."""

    e164: str | None
    """The number in E.164 (``+8613800138000``), or None for an exempt short code."""
    exempt: bool = False
    """True for emergency and service short codes: never blocked, never shielded."""
    digits: str = ""
    """For exempt codes, the code as dialled (``110``); empty otherwise."""

    @property
    def masked(self) -> str:
        """Masked number; exempt short codes as they are (longer configured ones masked)."""
        if self.e164:
            return mask(self.e164)
        return self.digits if len(self.digits) <= SHORT_CODE_MAX else mask(self.digits)


def classify(raw: str, rules: NumberRules) -> Target:
    """Resolve raw input to an E.164 :class:`Target` or an exempt short code.

    Raises :class:`NumberError` naming the problem (empty, letters, too short, too long, not a
    valid number for the region); the input appears masked in the message.
    """
    if len(raw) > SHORT_CODE_MAX and not rules.strip_prefixes and _plain_national(raw, rules):
        fast = _fast_national(raw, rules.default_region)
        if fast is not None:
            return Target(fast)
    dialled = _dialled(raw)
    exempt = _exempt_code(dialled, rules)
    if exempt is not None:
        return Target(None, exempt=True, digits=exempt)
    text = "+" + dialled[2:] if dialled.startswith("00") else dialled
    digits = text.lstrip("+")
    if len(digits) < 3:
        raise NumberError(f"{mask(raw)}: too short ({len(digits)} digits)")
    if text.startswith("+") and not any(int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE for n in (1, 2, 3)):
        # Refused before phonenumbers sees it: its parser keeps the exception (a reference cycle)
        # for unknown country codes, which bloats bulk imports until the next full collection.
        raise NumberError(f"{mask(raw)}: not a valid phone number (no such country code)")
    if _PLAIN_E164.fullmatch(text):
        fast = _fast_e164(text)
        if fast is not None:
            return Target(fast)
    for prefix in rules.strip_prefixes:
        if not text.startswith("+") and digits.startswith(prefix) and len(digits) > len(prefix):
            stripped = _parse_valid(digits[len(prefix) :], rules.default_region)
            if stripped is not None:
                return Target(stripped)
    e164 = _parse_valid(text, rules.default_region)
    if e164 is not None:
        return Target(e164)
    if len(digits) > MAX_DIGITS:
        raise NumberError(f"{mask(raw)}: too long ({len(digits)} digits, E.164 allows {MAX_DIGITS})")
    where = "" if text.startswith("+") else f" in region {rules.default_region}"
    raise NumberError(f"{mask(raw)}: not a valid phone number{where}")


def normalize(raw: str, rules: NumberRules) -> str:
    """E.164 form of ``raw``; exempt short codes are refused (they cannot be shielded)."""
    target = classify(raw, rules)
    if target.e164 is None:
        raise NumberError(f"{target.masked}: emergency/service short code, cannot be shielded")
    return target.e164


def normalize_prefix(raw: str) -> str:
    """A prefix rule as ``+`` and digits (``+861380013``): prefixes are ranges, not personal data."""
    text = raw.strip().translate(_SEPARATORS)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") or not text[1:].isdigit() or not 1 <= len(text) - 1 <= MAX_DIGITS:
        raise NumberError(f"prefix {mask(raw[:MAX_INPUT])}: write it as + and 1-15 digits, e.g. +861380013")
    return text


def _plain_national(raw: str, rules: NumberRules) -> bool:
    """Digits as an agent dials them (``13800138000``), too long for a short code and with no
    dial-out prefixes configured: the checks below would all pass, and only the national fast
    path can answer, so it is asked first (a third of the cost of the whole procedure)."""
    return (
        len(raw) <= MAX_DIGITS
        and raw.isascii()
        and raw.isdigit()
        and raw[0] != "0"
        and raw not in rules.extra_exempt
    )


def _dialled(raw: str) -> str:
    """The input without separators: ``+`` and digits only, or a clear error."""
    if len(raw) > MAX_INPUT:
        raise NumberError(f"{mask(raw[:MAX_INPUT])}...: input too long ({len(raw)} characters)")
    text = raw.strip().translate(_SEPARATORS)
    if not text:
        raise NumberError("empty number")
    if not _DIALLABLE.fullmatch(text):
        raise NumberError(f"{mask(raw)}: contains characters that are not digits")
    digits = len(text.lstrip("+"))
    if digits > MAX_DIGITS + MAX_STRIP:
        raise NumberError(f"{mask(raw)}: too long ({digits} digits, E.164 allows {MAX_DIGITS})")
    return text


def _exempt_code(dialled: str, rules: NumberRules) -> str | None:
    """The exempt short code dialled, as it is or behind a dial-out prefix, or None."""
    if dialled.startswith("+"):
        return None
    if _is_exempt(dialled, rules):
        return dialled
    for prefix in rules.strip_prefixes:
        rest = dialled[len(prefix) :]
        if dialled.startswith(prefix) and rest and _is_exempt(rest, rules):
            return rest
    return None


def _is_exempt(digits: str, rules: NumberRules) -> bool:
    if digits in rules.extra_exempt:
        return True
    if len(digits) > SHORT_CODE_MAX:
        return False
    region = rules.default_region
    if shortnumberinfo.is_emergency_number(digits, region):
        return True
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException:
        return False
    return bool(shortnumberinfo.is_valid_short_number_for_region(number, region))


def _fast_e164(text: str) -> str | None:
    """``+CC…`` input, already canonical: validate without the full parser (4 us instead of 14)."""
    digits = text[1:]
    for cc_len in (1, 2, 3):
        cc = int(digits[:cc_len])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[cc_len:]
            if not national or national[0] == "0":
                return None  # leading zeros and national prefixes: let the full parser decide
            number = PhoneNumber(country_code=cc, national_number=int(national))
            return text if phonenumbers.is_valid_number(number) else None
    return None


@lru_cache(maxsize=64)
def _national_rules(region: str) -> tuple[int, str, re.Pattern[str] | None, re.Pattern[str] | None]:
    """Country code, its digits, and the region's national/international prefix patterns."""
    meta = PhoneMetadata.metadata_for_region(region)
    assert meta is not None, region
    national = re.compile(meta.national_prefix_for_parsing) if meta.national_prefix_for_parsing else None
    international = re.compile(meta.international_prefix) if meta.international_prefix else None
    return int(meta.country_code or 0), str(meta.country_code), national, international


def _fast_national(digits: str, region: str) -> str | None:
    """Plain national digits that the parser would take as they are (no national, international or
    carrier prefix, no leading 0): validate without the full parser (4 us instead of 14)."""
    cc, cc_digits, national, international = _national_rules(region)
    if not digits.isdigit() or digits[0] == "0" or digits.startswith(cc_digits):
        return None
    if (national and national.match(digits)) or (international and international.match(digits)):
        return None
    e164 = f"+{cc_digits}{digits}"
    if len(e164) - 1 > MAX_DIGITS:
        return None
    types = _number_types(region)
    if types is None:
        number = PhoneNumber(country_code=cc, national_number=int(digits))
        return e164 if phonenumbers.is_valid_number(number) else None
    return e164 if _valid_national(digits, types) else None


_Desc = tuple[frozenset[int], re.Pattern[str]]
"""One number description of the metadata: possible lengths (empty: any), national pattern."""


@lru_cache(maxsize=64)
def _number_types(region: str) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """The region's general description and its number types, mobile and fixed line first; None
    when its country code has other regions too (the parser then finds which one applies)."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or len(COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code or 0, ())) != 1:
        return None
    order = (
        meta.mobile, meta.fixed_line, meta.premium_rate, meta.toll_free, meta.shared_cost, meta.voip,
        meta.personal_number, meta.pager, meta.uan, meta.voicemail,
    )  # fmt: skip
    types = tuple(d for d in (_desc(x) for x in order) if d is not None)
    general = _desc(meta.general_desc)
    return None if general is None else (general, types)


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None  # matches nothing, as phonenumbers reads it
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _valid_national(digits: str, types: tuple[_Desc, tuple[_Desc, ...]]) -> bool:
    """``phonenumbers.is_valid_number`` for the national significant number ``digits`` of a
    single-region country code (valid: it fits the general description and some number type),
    without finding out which type it is: a mobile number is decided in two matches, not eleven."""
    general, kinds = types
    length = len(digits)
    lengths, pattern = general
    if (lengths and length not in lengths) or pattern.fullmatch(digits) is None:
        return False
    for lengths, pattern in kinds:
        if (not lengths or length in lengths) and pattern.fullmatch(digits) is not None:
            return True
    return False


def _parse_valid(text: str, region: str) -> str | None:
    if not text.startswith("+"):
        fast = _fast_national(text, region)
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if len(e164) - 1 <= MAX_DIGITS else None
