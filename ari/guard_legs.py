"""Which channels are outbound legs, and what number they dial. Pure: no I/O, no clock.

An outbound leg is the ``peer`` of a ``Dial`` event (a channel being dialled: by ``Dial()``, an
ARI/AMI originate or a call file) that is on a configured trunk (``PJSIP/carrier-0000002a`` is on
``PJSIP/carrier``) or whose dial string matches a configured pattern. Inbound calls from the same
trunk are never a Dial peer, so they are never mistaken for one; for the same reason a channel
listing (after a reconnect) counts only channels the dial code created and that still ring
(``dialplan.app_name`` ``AppDial`` for ``Dial()``, ``AppDial2`` for originations; captured).

The number comes from the dial string (``5559999@carrier``, ``carrier/5559999``,
``carrier/sip:5559999@host``), or a pattern's ``number`` group, or else the leg's own extension
(a ``Dial()`` peer's ``dialplan.exten`` is the number dialled; an origination's is ``s``). Then
the configured prefixes are stripped; reading it as E.164 is the gate's job (``classify``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callshield.ari.models import Channel
from callshield.guard_config import GuardSettings

DIAL_APPS = frozenset({"AppDial", "AppDial2"})
"""``dialplan.app_name`` of a channel created by the dial code, until it is answered."""
RINGING_STATES = frozenset({"Down", "Rsrved", "Dialing", "Ring", "Ringing", "Pre-ring"})
"""States of a leg not answered yet (``Up`` is answered)."""
_SCHEMES = ("sip:", "sips:", "tel:")
_EXTEN_NUMBER = re.compile(r"\+?[0-9*#]{2,}")


@dataclass(frozen=True, slots=True)
class OutboundLeg:
    """A channel dialled out through a trunk: what the guard checks."""

    channel_id: str
    caller_id: str | None
    """The channel that dialled it; ``""`` for an origination (nothing dialled it, so nothing
    passed the gate); None when unknown (a leg found by listing channels after a reconnect)."""
    number: str = field(repr=False)
    """The number as dialled, configured prefixes stripped; ``""`` if none could be found."""


def trunk_of(channel_name: str) -> str:
    """``PJSIP/carrier`` for ``PJSIP/carrier-0000002a`` (the name without its ``-suffix``)."""
    return channel_name.rpartition("-")[0]


def dialled_number(dialstring: str) -> str:
    """The number in a dial string, or ``""``.

    >>> [dialled_number(s) for s in ("5559999@carrier", "carrier/5559999", "carrier/sip:+5559999@h:5060")]
    ['5559999', '5559999', '+5559999']
    >>> dialled_number("carrier")   # an endpoint alone dials no number
    ''
    """
    before, slash, after = dialstring.partition("/")
    rest = after if slash else before
    for scheme in _SCHEMES:
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
            break
    user, at, _ = rest.partition("@")
    if not at and not slash:
        return ""
    return user.partition(";")[0]


def exten_number(channel: Channel) -> str:
    """The leg's extension if it looks like a dialled number (a ``Dial()`` peer's), else ``""``."""
    return number_in_exten(channel.dialplan.exten)


def number_in_exten(exten: str) -> str:
    """``exten`` if it looks like a dialled number, else ``""`` (an origination's ``s``)."""
    return exten if _EXTEN_NUMBER.fullmatch(exten) else ""


class LegMatcher:
    """Recognises outbound legs by trunk and dial-string pattern (see the module docstring)."""

    def __init__(self, settings: GuardSettings) -> None:
        self._trunks = settings.trunks
        self._patterns = settings.dial_patterns
        self._prefixes = settings.strip_prefixes

    @property
    def needs_dialstring(self) -> bool:
        """True when dial-string patterns are configured (a listing must fetch dial strings)."""
        return bool(self._patterns)

    def is_trunk(self, channel_name: str) -> bool:
        return trunk_of(channel_name) in self._trunks

    def leg(self, peer: Channel, dialstring: str | None, caller_id: str | None) -> OutboundLeg | None:
        """The outbound leg ``peer`` is, or None if it is not one (not a trunk, no pattern)."""
        return self.leg_of(peer.id, peer.name, peer.dialplan.exten, dialstring, caller_id)

    def leg_of(
        self, peer_id: str, peer_name: str, peer_exten: str, dialstring: str | None, caller_id: str | None
    ) -> OutboundLeg | None:
        """:meth:`leg` from the peer's id, name and ``dialplan.exten`` alone."""
        number = self._by_pattern(dialstring) if dialstring and self._patterns else None
        if number is None:
            if trunk_of(peer_name) not in self._trunks:
                return None
            number = dialled_number(dialstring) if dialstring else ""
        return OutboundLeg(peer_id, caller_id, self.without_prefix(number or number_in_exten(peer_exten)))

    def without_prefix(self, number: str) -> str:
        """``number`` without the longest configured prefix it starts with (if more follows)."""
        for prefix in self._prefixes:
            if number.startswith(prefix) and len(number) > len(prefix):
                return number[len(prefix) :]
        return number

    def _by_pattern(self, dialstring: str) -> str | None:
        """The number if a pattern matches (its ``number`` group, else the dial string's), else None."""
        for pattern in self._patterns:
            found = pattern.search(dialstring)
            if found is not None:
                named = found.groupdict().get("number")
                return named if named is not None else dialled_number(dialstring)
        return None


def ringing_leg(channel: Channel) -> bool:
    """True for a channel the dial code created that has not been answered (from a listing)."""
    return channel.state in RINGING_STATES and channel.dialplan.app_name in DIAL_APPS
