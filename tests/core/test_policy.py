"""core/policy.py: decide() from entries and prefix rules, the clock passed in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from callshield.models import GLOBAL, Action, Matches, PrefixRule, Scope, ShieldEntry, Source
from callshield.policy import CallContext, Decision, Reason, blocked_by_error, decide

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=30)
NUMBER = "+8613800138000"
ACME = Scope("acme")
SUMMER = Scope("acme", "summer")


def entry(
    scope: Scope = GLOBAL, expires_at: datetime | None = None, source: Source = Source.ADMIN
) -> ShieldEntry:
    return ShieldEntry(
        number_hash=bytes(32),
        masked="+86138****8000",
        scope=scope,
        source=source,
        reason="test",
        created_at=CREATED,
        expires_at=expires_at,
    )


def rule(
    prefix: str, action: Action, scope: Scope = GLOBAL, expires_at: datetime | None = None
) -> PrefixRule:
    return PrefixRule(prefix, action, scope, "test", CREATED, expires_at)


def call(company: str | None = None, campaign: str | None = None, e164: str = NUMBER) -> CallContext:
    return CallContext(e164, company=company, campaign=campaign)


def test_no_matches_allows_clean() -> None:
    decision = decide(call(), Matches(), NOW)
    assert decision == Decision(Action.ALLOW, Reason.CLEAN)
    assert decision.allowed


@pytest.mark.parametrize(
    "matches",
    [
        Matches(entries=(entry(),)),
        Matches(prefixes=(rule("+86", Action.BLOCK),)),
        Matches(entries=(entry(ACME),), prefixes=(rule("", Action.BLOCK),)),
    ],
    ids=["global-entry", "block-prefix", "company-entry-and-empty-prefix"],
)
def test_exempt_is_always_allowed(matches: Matches) -> None:
    exempt = CallContext(None, exempt=True, company="acme")
    decision = decide(exempt, matches, NOW)
    assert (decision.action, decision.reason, decision.until) == (Action.ALLOW, Reason.EXEMPT, None)


SCOPE_CASES = [
    (GLOBAL, None, None, Action.BLOCK, "global-binds-call-without-company"),
    (GLOBAL, "acme", "summer", Action.BLOCK, "global-binds-campaign-call"),
    (ACME, "acme", None, Action.BLOCK, "company-binds-its-call"),
    (ACME, "acme", "summer", Action.BLOCK, "company-binds-its-campaigns"),
    (ACME, "globex", None, Action.ALLOW, "company-does-not-bind-other-company"),
    (ACME, "globex", "summer", Action.ALLOW, "company-does-not-bind-other-company-campaign"),
    (ACME, None, None, Action.ALLOW, "company-does-not-bind-call-without-company"),
    (SUMMER, "acme", "summer", Action.BLOCK, "campaign-binds-its-call"),
    (SUMMER, "acme", "winter", Action.ALLOW, "campaign-does-not-bind-other-campaign"),
    (SUMMER, "acme", None, Action.ALLOW, "campaign-does-not-bind-company-call"),
    (SUMMER, "globex", "summer", Action.ALLOW, "campaign-does-not-bind-same-name-other-company"),
]


@pytest.mark.parametrize(
    ("scope", "company", "campaign", "action"), [c[:4] for c in SCOPE_CASES], ids=[c[4] for c in SCOPE_CASES]
)
def test_entry_blocks_only_calls_its_scope_covers(
    scope: Scope, company: str | None, campaign: str | None, action: Action
) -> None:
    decision = decide(call(company, campaign), Matches(entries=(entry(scope),)), NOW)
    assert decision.action is action
    assert decision.reason == (Reason.SHIELDED if action is Action.BLOCK else Reason.CLEAN)


def test_shielded_decision_names_scope_and_source() -> None:
    decision = decide(call("acme"), Matches(entries=(entry(ACME, source=Source.CUSTOMER_OPTOUT),)), NOW)
    assert decision.rule == "entry company:acme customer_optout"
    assert NUMBER not in decision.rule


EXPIRY_CASES = [
    (NOW + timedelta(microseconds=1), Action.BLOCK, "expires-after-now"),
    (NOW, Action.ALLOW, "expires-exactly-now"),
    (NOW - timedelta(microseconds=1), Action.ALLOW, "expired"),
    (None, Action.BLOCK, "permanent"),
]


@pytest.mark.parametrize(
    ("expires_at", "action"), [c[:2] for c in EXPIRY_CASES], ids=[c[2] for c in EXPIRY_CASES]
)
def test_entry_stops_matching_at_its_expiry(expires_at: datetime | None, action: Action) -> None:
    assert decide(call(), Matches(entries=(entry(expires_at=expires_at),)), NOW).action is action


DAY = timedelta(days=1)
UNTIL_CASES = [
    ((NOW + 10 * DAY, NOW + 30 * DAY, NOW + 20 * DAY), NOW + 30 * DAY, "latest-expiry"),
    ((NOW + 10 * DAY, None, NOW + 30 * DAY), None, "permanent-beats-any"),
    ((NOW - DAY, NOW + 5 * DAY), NOW + 5 * DAY, "expired-entry-ignored"),
]


@pytest.mark.parametrize(
    ("expiries", "until"),
    [(perm, c[1]) for c in UNTIL_CASES for perm in itertools.permutations(c[0])],
    ids=[f"{c[2]}-{i}" for c in UNTIL_CASES for i in range(len(list(itertools.permutations(c[0]))))],
)
def test_until_is_the_latest_expiry_whatever_the_order(
    expiries: tuple[datetime | None, ...], until: datetime | None
) -> None:
    matches = Matches(entries=tuple(entry(expires_at=e) for e in expiries))
    decision = decide(call(), matches, NOW)
    assert (decision.action, decision.reason, decision.until) == (Action.BLOCK, Reason.SHIELDED, until)


def test_latest_expiry_only_among_covering_entries() -> None:
    entries = (entry(Scope("globex")), entry(ACME, NOW + DAY), entry(GLOBAL, NOW + 2 * DAY))
    assert decide(call("acme"), Matches(entries=entries), NOW).until == NOW + 2 * DAY
    assert decide(call("acme"), Matches(entries=entries[:2]), NOW).until == NOW + DAY


@pytest.mark.parametrize("scope", [GLOBAL, ACME, SUMMER], ids=str)
def test_customer_entry_beats_allow_prefix(scope: Scope) -> None:
    matches = Matches(entries=(entry(scope, NOW + DAY),), prefixes=(rule(NUMBER, Action.ALLOW, SUMMER),))
    decision = decide(call("acme", "summer"), matches, NOW)
    assert (decision.action, decision.reason, decision.until) == (Action.BLOCK, Reason.SHIELDED, NOW + DAY)


PREFIX_CASES = [
    ([("+86138", Action.BLOCK), ("+861380013", Action.ALLOW)], Action.ALLOW, "+861380013", "longer-allow"),
    ([("+86", Action.ALLOW), ("+86138", Action.BLOCK)], Action.BLOCK, "+86138", "longer-block"),
    ([("+86138", Action.BLOCK), ("+86138", Action.ALLOW)], Action.ALLOW, "+86138", "tie-allow-second"),
    ([("+86138", Action.ALLOW), ("+86138", Action.BLOCK)], Action.ALLOW, "+86138", "tie-allow-first"),
    ([("+44", Action.BLOCK)], Action.ALLOW, "", "other-country-ignored"),
    ([("+8613800138001", Action.BLOCK)], Action.ALLOW, "", "neighbour-number-ignored"),
    (
        [("+86", Action.BLOCK), ("+861", Action.ALLOW), ("+8613", Action.BLOCK)],
        Action.BLOCK,
        "+8613",
        "chain",
    ),
]


@pytest.mark.parametrize(
    ("rules", "action", "winner"), [c[:3] for c in PREFIX_CASES], ids=[c[3] for c in PREFIX_CASES]
)
def test_longest_prefix_wins_allow_breaks_ties(
    rules: list[tuple[str, Action]], action: Action, winner: str
) -> None:
    matches = Matches(prefixes=tuple(rule(p, a) for p, a in rules))
    decision = decide(call(), matches, NOW)
    assert decision.action is action
    if winner:
        assert decision.rule == f"prefix {winner} global"
        assert decision.reason == (Reason.PREFIX_ALLOW if action is Action.ALLOW else Reason.PREFIX_BLOCK)
    else:
        assert decision.reason == Reason.CLEAN


@pytest.mark.parametrize(
    ("number", "action", "reason"),
    [
        ("+8613800138000", Action.ALLOW, Reason.PREFIX_ALLOW),
        ("+8613800138001", Action.BLOCK, Reason.PREFIX_BLOCK),
        ("+8613800140000", Action.ALLOW, Reason.CLEAN),
    ],
    ids=["allowed-number", "its-neighbour", "outside-the-block"],
)
def test_issue_example_block_range_allow_one_number(number: str, action: Action, reason: str) -> None:
    matches = Matches(prefixes=(rule("+861380013", Action.BLOCK), rule("+8613800138000", Action.ALLOW)))
    decision = decide(call(e164=number), matches, NOW)
    assert (decision.action, decision.reason) == (action, reason)


PREFIX_SCOPE_CASES = [
    (ACME, "acme", None, Action.BLOCK, "company-rule-own-call"),
    (ACME, "globex", None, Action.ALLOW, "company-rule-other-company"),
    (ACME, None, None, Action.ALLOW, "company-rule-call-without-company"),
    (SUMMER, "acme", "summer", Action.BLOCK, "campaign-rule-own-campaign"),
    (SUMMER, "acme", "winter", Action.ALLOW, "campaign-rule-other-campaign"),
    (GLOBAL, "globex", "x", Action.BLOCK, "global-rule"),
]


@pytest.mark.parametrize(
    ("scope", "company", "campaign", "action"),
    [c[:4] for c in PREFIX_SCOPE_CASES],
    ids=[c[4] for c in PREFIX_SCOPE_CASES],
)
def test_prefix_rules_apply_in_their_scope(
    scope: Scope, company: str | None, campaign: str | None, action: Action
) -> None:
    decision = decide(call(company, campaign), Matches(prefixes=(rule("+86", Action.BLOCK, scope),)), NOW)
    assert decision.action is action


@pytest.mark.parametrize(
    ("company", "action"), [("acme", Action.ALLOW), ("globex", Action.BLOCK)], ids=["acme", "globex"]
)
def test_company_allow_range_does_not_leak_to_other_companies(company: str, action: Action) -> None:
    rules = (rule("+86", Action.BLOCK), rule("+86138", Action.ALLOW, ACME))
    assert decide(call(company), Matches(prefixes=rules), NOW).action is action


EXPIRED_PREFIX_CASES = [
    ((rule("+86", Action.BLOCK, expires_at=NOW),), Action.ALLOW, Reason.CLEAN, "expired-block"),
    (
        (rule("+86", Action.BLOCK), rule("+86138", Action.ALLOW, expires_at=NOW - DAY)),
        Action.BLOCK,
        Reason.PREFIX_BLOCK,
        "expired-longer-allow",
    ),
    (
        (rule("+86", Action.ALLOW), rule("+86138", Action.BLOCK, expires_at=NOW)),
        Action.ALLOW,
        Reason.PREFIX_ALLOW,
        "expired-longer-block",
    ),
]


@pytest.mark.parametrize(
    ("rules", "action", "reason"),
    [c[:3] for c in EXPIRED_PREFIX_CASES],
    ids=[c[3] for c in EXPIRED_PREFIX_CASES],
)
def test_expired_prefix_rules_are_ignored(rules: tuple[PrefixRule, ...], action: Action, reason: str) -> None:
    decision = decide(call(), Matches(prefixes=rules), NOW)
    assert (decision.action, decision.reason) == (action, reason)


def test_prefix_block_reports_its_expiry() -> None:
    decision = decide(call(), Matches(prefixes=(rule("+86", Action.BLOCK, expires_at=NOW + DAY),)), NOW)
    assert (decision.action, decision.until) == (Action.BLOCK, NOW + DAY)


def test_equal_length_block_prefixes_report_the_latest_expiry() -> None:
    rules = (rule("+86138", Action.BLOCK), rule("+86138", Action.BLOCK, ACME, NOW + DAY))
    in_order = decide(call("acme"), Matches(prefixes=rules), NOW)
    reversed_ = decide(call("acme"), Matches(prefixes=rules[::-1]), NOW)
    assert in_order.action is reversed_.action is Action.BLOCK
    assert in_order.until is None
    assert reversed_.until is None


def test_blocked_by_error() -> None:
    decision = blocked_by_error("store timeout")
    assert decision == Decision(Action.BLOCK, Reason.ERROR, rule="store timeout")
    assert not decision.allowed
