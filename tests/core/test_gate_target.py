"""``Gate.check(raw, target=...)``: a number already read (the guard's) is decided exactly as the
raw digits would be, and read only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callshield import gate as gate_module
from callshield.gate import Gate
from callshield.models import Scope, Source
from callshield.numbers import NumberRules, Target, classify
from callshield.store.base import NewEntry, ShieldStore

RULES = NumberRules(strip_prefixes=("9",))
NUMBERS = ("13800138000", "913800138000", "13900139000", "110", "+8613800138000")


@pytest.mark.parametrize("raw", NUMBERS)
async def test_a_number_already_read_is_decided_as_its_digits(
    store: ShieldStore, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    now = datetime.now(UTC)
    entry = NewEntry("+8613800138000", Scope(), Source.CUSTOMER_OPTOUT, "said no", now + timedelta(days=30))
    await store.add(entry, "t", now)
    gate = Gate(store, RULES, clock=lambda: now)
    expected = await gate.check(raw)
    target = classify(raw, gate.rules)
    read: list[str] = []

    def counting(text: str, rules: NumberRules) -> Target:
        read.append(text)
        return classify(text, rules)

    monkeypatch.setattr(gate_module, "classify", counting)
    assert await gate.check(raw, target=target) == expected
    assert read == []
    assert gate.counts[expected.decision.action + "/" + expected.decision.reason] == 2
