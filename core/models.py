"""Messages shared by the store, the decision core and the adapters: small frozen dataclasses."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callshield.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Source(enum.StrEnum):
    """Where a shield entry came from."""

    CUSTOMER_OPTOUT = "customer_optout"
    AGENT_KEYPAD = "agent_keypad"
    AGENT_FLAG = "agent_flag"
    IMPORT = "import"
    ADMIN = "admin"


class Action(enum.StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"


@dataclass(frozen=True)
class Scope:
    """Who an entry binds: everyone (global), one company, or one campaign of a company."""

    company: str | None = None
    campaign: str | None = None

    def __post_init__(self) -> None:
        for label, value in (("company", self.company), ("campaign", self.campaign)):
            if value is not None and not _NAME.fullmatch(value):
                raise InvalidInput(f"{label} name {value[:70]!r}: use 1-64 letters, digits, '_', '.', '-'")
        if self.campaign is not None and self.company is None:
            raise InvalidInput("a campaign scope needs its company")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Inverse of :meth:`__str__`: ``global``, ``company:acme``, ``campaign:acme/summer``."""
        kind, _, rest = text.partition(":")
        if text == "global":
            return cls()
        if kind == "company" and rest:
            return cls(rest)
        if kind == "campaign" and "/" in rest:
            company, _, campaign = rest.partition("/")
            return cls(company, campaign)
        raise InvalidInput(f"scope {text[:70]!r}: expected global, company:NAME or campaign:COMPANY/NAME")

    def __str__(self) -> str:
        if self.company is None:
            return "global"
        if self.campaign is None:
            return f"company:{self.company}"
        return f"campaign:{self.company}/{self.campaign}"

    def covers(self, company: str | None, campaign: str | None) -> bool:
        """True if an entry of this scope binds a call made for ``company``/``campaign``."""
        if self.company is None:
            return True
        if self.company != company:
            return False
        return self.campaign is None or self.campaign == campaign


GLOBAL = Scope()


@dataclass(frozen=True)
class ShieldEntry:
    """One shielded number in one scope, as the store holds it (never the plaintext number)."""

    number_hash: bytes
    """HMAC-SHA256 of the E.164 number under the deployment key."""
    masked: str
    """Display form, e.g. ``+86138****8000``."""
    scope: Scope
    source: Source
    reason: str
    created_at: datetime
    expires_at: datetime | None
    """End of the shield; None for a permanent entry."""
    evidence: tuple[dict[str, Any], ...] = ()
    """What proved the refusal (call id, channel, agent, digits, import), one item per refusal."""

    def active(self, now: datetime) -> bool:
        """Entries stop matching at their expiry instant."""
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class PrefixRule:
    """A number range (country, area or operator block) that is blocked or explicitly allowed."""

    prefix: str
    """``+`` and digits; ranges are not personal data and are stored as they are."""
    action: Action
    scope: Scope
    reason: str
    created_at: datetime
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Matches:
    """What the store found for one number: its entries (all scopes) and the prefix rules it falls in."""

    entries: tuple[ShieldEntry, ...] = ()
    prefixes: tuple[PrefixRule, ...] = ()


NO_MATCHES = Matches()


@dataclass(frozen=True)
class Evidence:
    """The facts of one refusal, kept with the entry: who, where, how."""

    call_id: str | None = None
    channel: str | None = None
    agent: str | None = None
    digits: str | None = None
    note: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        items = {
            "call_id": self.call_id,
            "channel": self.channel,
            "agent": self.agent,
            "digits": self.digits,
            "note": self.note,
        }
        out: dict[str, Any] = {k: v for k, v in items.items() if v is not None}
        out.update(self.extra)
        return out
