"""core/models.py: Scope parsing, printing and coverage; entry and rule expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callshield.errors import InvalidInput
from callshield.models import GLOBAL, Action, PrefixRule, Scope, ShieldEntry, Source

LONGEST = "a" * 64

ROUND_TRIP = [
    ("global", Scope(), "global"),
    ("company:acme", Scope("acme"), "company"),
    ("campaign:acme/summer", Scope("acme", "summer"), "campaign"),
    ("company:Acme_Corp.cn-2", Scope("Acme_Corp.cn-2"), "company-all-allowed-characters"),
    ("campaign:9/x", Scope("9", "x"), "single-character-names"),
    (f"campaign:{LONGEST}/{LONGEST}", Scope(LONGEST, LONGEST), "64-character-names"),
]


@pytest.mark.parametrize(("text", "scope"), [c[:2] for c in ROUND_TRIP], ids=[c[2] for c in ROUND_TRIP])
def test_scope_parse_and_str_round_trip(text: str, scope: Scope) -> None:
    assert Scope.parse(text) == scope
    assert str(scope) == text
    assert Scope.parse(str(scope)) == scope


def test_global_constant() -> None:
    assert GLOBAL == Scope() == Scope.parse("global")
    assert (GLOBAL.company, GLOBAL.campaign) == (None, None)


BAD_TEXT = [
    ("", "empty"),
    ("Global", "capitalised-global"),
    ("global:", "global-with-colon"),
    ("company", "company-without-name"),
    ("company:", "company-empty-name"),
    ("campaign:acme", "campaign-without-slash"),
    ("campaign:acme/", "campaign-empty-name"),
    ("campaign:/summer", "campaign-empty-company"),
    ("campaign:a/b/c", "campaign-two-slashes"),
    ("company:acme/summer", "company-with-slash"),
    ("company:ac me", "space-in-name"),
    ("company:-acme", "name-starts-with-dash"),
    ("company:.acme", "name-starts-with-dot"),
    ("company:acme\n", "trailing-newline"),
    ("company:" + "a" * 65, "65-character-name"),
    ("company:åcme", "non-ascii"),
    ("team:acme", "unknown-kind"),
]


@pytest.mark.parametrize("text", [c[0] for c in BAD_TEXT], ids=[c[1] for c in BAD_TEXT])
def test_scope_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidInput):
        Scope.parse(text)


BAD_FIELDS = [
    ("", None, "company name", "empty-company"),
    ("acme", "", "campaign name", "empty-campaign"),
    ("a" * 65, None, "company name", "long-company"),
    ("acme", "sum mer", "campaign name", "campaign-with-space"),
    (None, "summer", "needs its company", "campaign-without-company"),
]


@pytest.mark.parametrize(
    ("company", "campaign", "problem"), [c[:3] for c in BAD_FIELDS], ids=[c[3] for c in BAD_FIELDS]
)
def test_scope_constructor_refuses(company: str | None, campaign: str | None, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        Scope(company, campaign)


COVERS = [
    (GLOBAL, None, None, True, "global-no-company"),
    (GLOBAL, "acme", "summer", True, "global-campaign"),
    (Scope("acme"), "acme", None, True, "company-own"),
    (Scope("acme"), "acme", "summer", True, "company-own-campaign"),
    (Scope("acme"), "globex", None, False, "company-other"),
    (Scope("acme"), None, None, False, "company-vs-no-company"),
    (Scope("acme"), "ACME", None, False, "company-case-sensitive"),
    (Scope("acme", "summer"), "acme", "summer", True, "campaign-own"),
    (Scope("acme", "summer"), "acme", "winter", False, "campaign-other"),
    (Scope("acme", "summer"), "acme", None, False, "campaign-vs-company-call"),
    (Scope("acme", "summer"), "globex", "summer", False, "campaign-other-company"),
    (Scope("acme", "summer"), None, "summer", False, "campaign-vs-no-company"),
]


@pytest.mark.parametrize(
    ("scope", "company", "campaign", "covered"), [c[:4] for c in COVERS], ids=[c[4] for c in COVERS]
)
def test_scope_covers(scope: Scope, company: str | None, campaign: str | None, covered: bool) -> None:
    assert scope.covers(company, campaign) is covered


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTIVE = [
    (None, True, "permanent"),
    (NOW + timedelta(microseconds=1), True, "one-microsecond-left"),
    (NOW, False, "at-expiry"),
    (NOW - timedelta(days=1), False, "expired"),
]


@pytest.mark.parametrize(("expires_at", "active"), [c[:2] for c in ACTIVE], ids=[c[2] for c in ACTIVE])
def test_entries_and_rules_stop_matching_at_expiry(expires_at: datetime | None, active: bool) -> None:
    created = NOW - timedelta(days=10)
    entry = ShieldEntry(bytes(32), "+86138****8000", GLOBAL, Source.ADMIN, "r", created, expires_at)
    rule = PrefixRule("+86", Action.BLOCK, GLOBAL, "r", created, expires_at)
    assert entry.active(NOW) is active
    assert rule.active(NOW) is active
