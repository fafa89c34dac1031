"""The FastAGI gate end to end: fake Asterisk -> AgiServer -> Gate -> real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callshield.agi import AgiServer
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.gate import Gate
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import NewEntry, ShieldStore
from fake_agi_channel import FakeCall
from fake_asterisk import FakeAsterisk

pytestmark = pytest.mark.usefixtures("loop_errors")

SHIELDED = "13800138000"
NOW = datetime.now(UTC)
UNTIL = (NOW + timedelta(days=365)).replace(microsecond=0)


async def shield(store: ShieldStore, number: str = "+8613800138000", scope: Scope = Scope()) -> None:
    await store.add(NewEntry(number, scope, Source.CUSTOMER_OPTOUT, "said no", UNTIL), "test", NOW)


async def dial(store: ShieldStore, *args: str, rules: NumberRules = NumberRules()) -> FakeAsterisk:
    gate = Gate(store, rules)
    async with AgiServer({GATE_SCRIPT: gate_handler(gate)}, "127.0.0.1", 0) as server:
        return await FakeAsterisk(server.port, FakeCall(args=args), idle_timeout=30).run()


async def test_a_shielded_number_is_blocked_with_its_until(store: ShieldStore) -> None:
    await shield(store)
    fake = await dial(store, SHIELDED)
    assert fake.variables == {
        "SHIELD_RESULT": "BLOCK",
        "SHIELD_REASON": "shielded",
        "SHIELD_UNTIL": UNTIL.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert fake.closed_by_server


@pytest.mark.parametrize(
    ("args", "result", "reason"),
    [
        (("13900139000",), "ALLOW", "clean"),
        (("110",), "ALLOW", "exempt"),
        (("9120",), "ALLOW", "exempt"),
        (("",), "BLOCK", "error"),
        (("not-a-number",), "BLOCK", "error"),
        (("1380013800",), "BLOCK", "error"),
        ((), "BLOCK", "error"),
    ],
)
async def test_verdicts(store: ShieldStore, args: tuple[str, ...], result: str, reason: str) -> None:
    fake = await dial(store, *args, rules=NumberRules(strip_prefixes=("9",)))
    assert (fake.variables["SHIELD_RESULT"], fake.variables["SHIELD_REASON"]) == (result, reason)
    assert fake.closed_by_server


async def test_company_scoped_entries_bind_only_that_company(store: ShieldStore) -> None:
    await shield(store, scope=Scope("acme"))
    assert (await dial(store, SHIELDED, "acme", "spring")).variables["SHIELD_RESULT"] == "BLOCK"
    assert (await dial(store, SHIELDED, "other")).variables["SHIELD_RESULT"] == "ALLOW"
    assert (await dial(store, SHIELDED)).variables["SHIELD_RESULT"] == "ALLOW"


async def test_a_store_error_blocks(store: ShieldStore) -> None:
    await store.close()
    fake = await dial(store, "13900139000")
    assert (fake.variables["SHIELD_RESULT"], fake.variables["SHIELD_REASON"]) == ("BLOCK", "error")


async def test_a_caller_hanging_up_during_the_decision_is_not_an_error(
    store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    gate = Gate(store, NumberRules())
    async with AgiServer({GATE_SCRIPT: gate_handler(gate)}, "127.0.0.1", 0) as server:
        fake = await FakeAsterisk(
            server.port, FakeCall(args=(SHIELDED,)), hangup_on_connect=True, idle_timeout=30
        ).run()
    assert fake.closed_by_server
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert SHIELDED not in caplog.text


async def test_one_info_line_per_decision(store: ShieldStore, caplog: pytest.LogCaptureFixture) -> None:
    await shield(store)
    fake = await dial(store, SHIELDED, "acme")
    lines = [r for r in caplog.records if r.name == "callshield.agi.gate"]
    assert [(r.levelname, r.getMessage()) for r in lines] == [
        (
            "INFO",
            "agi gate +86138****8000 BLOCK shielded (entry global customer_optout) uniqueid=1795847965.34",
        )
    ]
    assert fake.closed_by_server and SHIELDED not in caplog.text
