"""How ``callshield serve`` wires its parts: the gates note their ALLOWs for the guard only when a
guard runs (nobody else reads that ledger: without a guard it would only cost memory and time)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import pytest
from callshield import service
from callshield.agi.protocol import AgiRequest, Command
from callshield.agi.session import AgiSession
from callshield.ari.guard_ledger import GateLedger
from callshield.capture_config import CaptureSettings
from callshield.gate import Gate
from callshield.guard_config import GuardSettings
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore


class Session:
    """What the FastAGI gate script uses of a session."""

    def __init__(self, number: str) -> None:
        headers = {"agi_uniqueid": "1795.7"}
        self.request = AgiRequest(script="callshield/gate", args=(number,), headers=headers)
        self.sent: list[bytes] = []

    async def set_variables(self, commands: Iterable[Command]) -> None:
        self.sent += [command.line for command in commands]

    async def close(self) -> None:
        pass


def parts(store: ShieldStore, guard: bool) -> service.Parts:
    unused = cast(Any, None)  # settings, service and recorder: not read with capture disabled
    gate = Gate(store, NumberRules())
    capture, watch = CaptureSettings(enabled=False), GuardSettings(enabled=guard)
    return service.Parts(unused, unused, capture, gate, unused, watch, GateLedger())


@pytest.mark.parametrize("guard", [False, True], ids=["no guard", "guard"])
async def test_the_fastagi_gate_notes_allowed_calls_only_for_a_guard(store: ShieldStore, guard: bool) -> None:
    wired = parts(store, guard)
    session = Session("13900139000")
    await service._agi_routes(wired)["callshield/gate"](cast(AgiSession, session))
    assert session.sent[0] == b'SET VARIABLE "SHIELD_RESULT" "ALLOW"\n'
    assert (wired.ledger.size, wired.ledger.was_allowed("1795.7", "+8613900139000")) == (int(guard), guard)
    assert (wired.gate_ledger is wired.ledger) is guard  # what the ARI gate is handed too
