"""The gate procedure: every way of failing ends in BLOCK with reason error, never ALLOW."""

from __future__ import annotations

import asyncio

import pytest
from callshield.errors import StoreUnavailable
from callshield.gate import Gate, call_arguments
from callshield.models import Matches
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore


async def test_a_look_up_slower_than_the_deadline_blocks(
    store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hangs(e164: str) -> Matches:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(store, "lookup", hangs)
    monkeypatch.setattr(store, "inline_lookup", False)
    verdict = await Gate(store, NumberRules(), timeout=0.05).check("13800138000")
    assert (verdict.decision.allowed, verdict.decision.reason) == (False, "error")
    assert "timed out" in verdict.decision.rule
    assert verdict.masked == "138****8000"


@pytest.mark.parametrize(
    "failure",
    [StoreUnavailable("gone"), RuntimeError("bug")],
    ids=["store error", "unexpected exception"],
)
async def test_errors_block(store: ShieldStore, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    async def fails(e164: str) -> Matches:
        raise failure

    monkeypatch.setattr(store, "lookup", fails)
    gate = Gate(store, NumberRules())
    verdict = await gate.check("13800138000")
    assert (verdict.decision.allowed, verdict.decision.reason) == (False, "error")
    assert gate.counts == {"BLOCK/error": 1}


async def test_a_deadline_is_armed_only_when_the_look_up_can_wait(store: ShieldStore) -> None:
    assert (Gate(store, NumberRules())._deadline is None) is store.inline_lookup
    assert Gate(store, NumberRules(), audit_decisions=True, timeout=0.5)._deadline == 0.5


def test_call_arguments() -> None:
    assert call_arguments(()) == ("", None, None)
    assert call_arguments(("5551234", "", "x")) == ("5551234", None, "x")
    assert call_arguments(("5551234", "acme", "spring", "extra")) == ("5551234", "acme", "spring")
