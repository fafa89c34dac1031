"""The decision: may this call go out? One pure function, no I/O, the clock passed in.

Every adapter (the ARI gate, the FastAGI gate, the guard, the command line) resolves the dialled
number, asks the store for its :class:`~callshield.models.Matches`, and calls :func:`decide`.
The rules, in order:

1. Exempt numbers (emergency and service short codes) are always allowed.
2. Any active shield entry whose scope covers the call blocks it: a customer's refusal is never
   overridden, not even by an allow range.
3. Otherwise the longest active prefix rule covering the call decides; at equal length an allow
   rule overrides a block rule.
4. Otherwise the call is allowed.

What an adapter cannot decide (unparseable number, store error, timeout) is blocked with reason
``error`` through :func:`blocked_by_error`: nothing is ever allowed because of an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from callshield.models import Action, Matches, PrefixRule, ShieldEntry


class Reason:
    """The ``reason`` values a :class:`Decision` carries (also set as ``SHIELD_REASON`` in the dialplan)."""

    EXEMPT = "exempt"
    CLEAN = "clean"
    SHIELDED = "shielded"
    PREFIX_BLOCK = "prefix-block"
    PREFIX_ALLOW = "prefix-allow"
    ERROR = "error"


@dataclass(frozen=True)
class CallContext:
    """The call being decided."""

    e164: str | None
    """The dialled number in E.164, or None when the number is an exempt short code."""
    exempt: bool = False
    company: str | None = None
    campaign: str | None = None


@dataclass(frozen=True)
class Decision:
    """The verdict and why."""

    action: Action
    reason: str
    until: datetime | None = None
    """When the blocking entry expires (None: not blocked, or permanent)."""
    rule: str = ""
    """Which rule decided, for logs and the compliance record (never a plaintext number)."""

    @property
    def allowed(self) -> bool:
        return self.action is Action.ALLOW


_EXEMPT = Decision(Action.ALLOW, Reason.EXEMPT, rule="exempt short code")
_CLEAN = Decision(Action.ALLOW, Reason.CLEAN)
"""The two decisions that depend on nothing but their reason (frozen: shared by every call)."""


def decide(call: CallContext, matches: Matches, now: datetime) -> Decision:
    """Decide one call from what the store found for its number."""
    if call.exempt:
        return _EXEMPT
    if not matches.entries and not matches.prefixes:
        return _CLEAN  # most calls: nothing on file for the number
    entry = _binding_entry(call, matches.entries, now)
    if entry is not None:
        rule = f"entry {entry.scope} {entry.source}"
        return Decision(Action.BLOCK, Reason.SHIELDED, entry.expires_at, rule)
    prefix = _binding_prefix(call, matches.prefixes, now)
    if prefix is None:
        return _CLEAN
    rule = f"prefix {prefix.prefix} {prefix.scope}"
    if prefix.action is Action.ALLOW:
        return Decision(Action.ALLOW, Reason.PREFIX_ALLOW, rule=rule)
    return Decision(Action.BLOCK, Reason.PREFIX_BLOCK, prefix.expires_at, rule)


def blocked_by_error(detail: str) -> Decision:
    """The verdict when no decision could be made: blocked, reason ``error``."""
    return Decision(Action.BLOCK, Reason.ERROR, rule=detail)


def _binding_entry(call: CallContext, entries: tuple[ShieldEntry, ...], now: datetime) -> ShieldEntry | None:
    """The active covering entry that blocks longest (permanent first), if any."""
    best: ShieldEntry | None = None
    for entry in entries:
        if not entry.active(now) or not entry.scope.covers(call.company, call.campaign):
            continue
        if best is None or _later(entry.expires_at, best.expires_at):
            best = entry
    return best


def _later(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return b is not None
    return b is not None and a > b


def _binding_prefix(call: CallContext, rules: tuple[PrefixRule, ...], now: datetime) -> PrefixRule | None:
    """Longest active covering prefix of the number; allow wins a tie."""
    number = call.e164 or ""
    best: PrefixRule | None = None
    for rule in rules:
        if not (rule.active(now) and number.startswith(rule.prefix)):
            continue
        if not rule.scope.covers(call.company, call.campaign):
            continue
        if best is None or _rank(rule) > _rank(best):
            best = rule
    return best


def _rank(rule: PrefixRule) -> tuple[int, bool, float]:
    """Longest prefix first; allow beats block at equal length; then the latest expiry, so the
    reported ``until`` does not depend on the order the store returned the rules in."""
    expiry = float("inf") if rule.expires_at is None else rule.expires_at.timestamp()
    return len(rule.prefix), rule.action is Action.ALLOW, expiry
