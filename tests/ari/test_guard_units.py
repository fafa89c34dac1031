"""The guard's pure parts: [guard] settings, outbound-leg recognition, the gate ledger."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from ari_captures import frames, nth
from callshield.ari.events import Dial, parse_event
from callshield.ari.guard import GateLedger
from callshield.ari.guard_legs import LegMatcher, dialled_number, ringing_leg, trunk_of
from callshield.ari.models import Channel
from callshield.config import Settings
from callshield.errors import ConfigError
from callshield.guard_config import DEFAULT_APP, GuardSettings, compile_pattern, guard_settings

TRUNK = GuardSettings(enabled=True, trunks=frozenset({"PJSIP/carrier"}))


def settings(guard: dict[str, Any], ari: dict[str, Any] | None = None) -> Settings:
    sections: dict[str, Any] = {"guard": guard}
    if ari is not None:
        sections["ari"] = ari
    return Settings(sections=sections)


def test_the_guard_is_off_by_default() -> None:
    parsed = guard_settings(Settings())
    assert parsed == GuardSettings()
    assert (parsed.enabled, parsed.app, parsed.strict) == (False, DEFAULT_APP, False)


def test_a_full_guard_section() -> None:
    parsed = guard_settings(
        settings(
            {
                "enabled": True,
                "app": "guard1",
                "trunks": ["PJSIP/carrier", "SIP/old-trunk"],
                "dial_patterns": ["*@carrier2", r"re:^00(?P<number>\d+)@intl$"],
                "strip_prefixes": ["0", "#31#", "0"],
                "strict": True,
            }
        )
    )
    assert parsed.trunks == {"PJSIP/carrier", "SIP/old-trunk"}
    assert parsed.strip_prefixes == ("#31#", "0")
    assert parsed.strict and parsed.app == "guard1"
    glob, regex = parsed.dial_patterns
    assert glob.search("5559999@carrier2") and not glob.search("5559999@carrier2x")
    found = regex.search("005559999@intl")
    assert found is not None and found.group("number") == "5559999"


@pytest.mark.parametrize(
    ("guard", "ari", "message"),
    [
        ({"enable": True}, None, "unknown setting guard.enable"),
        ({"enabled": "yes"}, None, "guard.enabled: expected true or false"),
        ({"enabled": True}, None, "needs guard.trunks or guard.dial_patterns"),
        ({"trunks": ["carrier"]}, None, "is not TECH/endpoint"),
        ({"trunks": "PJSIP/carrier"}, None, "expected a list"),
        ({"dial_patterns": ["re:(unclosed"]}, None, "dial_patterns[0]: not a valid regular expression"),
        ({"strip_prefixes": ["9x"]}, None, "is not 1-16 of"),
        ({"app": "has space"}, None, "guard.app"),
        ({"app": "callshield"}, {"server": [{"username": "u"}]}, "is the gate's application name"),
        ({"app": "gate2"}, {"server": [{"app": "gate2"}]}, "is the gate's application name"),
    ],
)
def test_bad_guard_settings_are_refused(
    guard: dict[str, Any], ari: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        guard_settings(settings(guard, ari))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("dialstring", "number"),
    [
        ("5559999@carrier", "5559999"),
        ("carrier/5559999", "5559999"),
        ("carrier/sip:+5559999@203.0.113.5:5060", "+5559999"),
        ("carrier/sip:5559999;npdi@host", "5559999"),
        ("g1/5559999", "5559999"),
        ("carrier", ""),
        ("", ""),
    ],
)
def test_the_number_in_a_dial_string(dialstring: str, number: str) -> None:
    assert dialled_number(dialstring) == number


def test_trunk_of_a_channel_name() -> None:
    assert trunk_of("PJSIP/carrier-0000002a") == "PJSIP/carrier"
    assert trunk_of("PJSIP/my-carrier-0000002a") == "PJSIP/my-carrier"
    assert trunk_of("PJSIP/carrier2-00000001") != "PJSIP/carrier"


def captured_dial(name: str, n: int = 0) -> Dial:
    event = parse_event(nth(name, "Dial", n).raw)
    assert isinstance(event, Dial)
    return event


def test_the_captured_origination_is_an_outbound_leg() -> None:
    dial = captured_dial("guard_subscribe_all.jsonl")
    leg = LegMatcher(TRUNK).leg(dial.peer, dial.dialstring, "")
    assert leg is not None
    assert (leg.channel_id, leg.caller_id, leg.number) == ("1795848255.0", "", "5559999")
    assert "5559999" not in repr(leg)


def test_a_dial_from_the_dialplan_without_its_dial_string_reads_the_leg_extension() -> None:
    ringing = captured_dial("dtmf_subscribe_all.jsonl", 1)  # RINGING: dialstring ""
    assert ringing.dialstring == "" and ringing.caller is not None
    leg = LegMatcher(TRUNK).leg(ringing.peer, ringing.dialstring, ringing.caller.id)
    assert leg is not None
    assert (leg.caller_id, leg.number) == ("1795849090.0", "5557001")


def test_patterns_and_prefixes() -> None:
    dial = captured_dial("guard_subscribe_all.jsonl")
    by_pattern = replace(
        TRUNK, trunks=frozenset(), dial_patterns=(compile_pattern(r"re:^555(?P<number>\d+)@carrier$"),)
    )
    leg = LegMatcher(by_pattern).leg(dial.peer, dial.dialstring, "")
    assert leg is not None and leg.number == "9999"
    other_trunk = replace(TRUNK, trunks=frozenset({"PJSIP/other"}))
    assert LegMatcher(other_trunk).leg(dial.peer, dial.dialstring, "") is None
    stripping = replace(TRUNK, strip_prefixes=("555",))
    leg = LegMatcher(stripping).leg(dial.peer, dial.dialstring, "")
    assert leg is not None and leg.number == "9999"
    assert LegMatcher(stripping).without_prefix("555") == "555"


def test_only_unanswered_legs_the_dial_code_created_count_in_a_listing() -> None:
    by_id: dict[str, list[Channel]] = {}
    for frame in frames("dtmf_subscribe_all.jsonl") + frames("guard_subscribe_all.jsonl"):
        event = parse_event(frame.raw)
        channel = getattr(event, "channel", None) or getattr(event, "peer", None)
        if isinstance(channel, Channel):
            by_id.setdefault(channel.id, []).append(channel)
    ringing = {cid for cid, snaps in by_id.items() if any(ringing_leg(s) for s in snaps)}
    assert ringing == {"1795849090.1", "1795848255.0"}  # the two carrier legs, never the agent
    answered = by_id["1795849090.1"][-1]
    assert answered.state == "Up" and not ringing_leg(answered)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_ledger_remembers_for_its_ttl_only() -> None:
    clock = Clock()
    ledger = GateLedger(60, clock=clock)
    ledger.allowed("1.1", "+8613800138000")
    assert ledger.was_allowed("1.1", "+8613800138000")
    assert ledger.was_allowed(None, "+8613800138000")
    assert not ledger.was_allowed("1.2", "+8613800138000")
    assert not ledger.was_allowed("1.1", "+8613900139000")
    clock.now += 59
    ledger.allowed("1.1", "+8613800138000")  # allowed again: a fresh 60 s
    clock.now += 30
    assert ledger.was_allowed("1.1", "+8613800138000")
    clock.now += 30
    assert not ledger.was_allowed("1.1", "+8613800138000")
    assert ledger.size == 0
    assert "13800138000" not in repr(ledger)


def test_the_ledger_is_bounded() -> None:
    ledger = GateLedger(60, max_entries=3, clock=Clock())
    for n in range(5):
        ledger.allowed(f"1.{n}", "+8613800138000")
    assert ledger.size == 3
    assert not ledger.was_allowed("1.1", "+8613800138000")
    assert ledger.was_allowed("1.4", "+8613800138000")
