"""The FastAGI gate end to end: fake Asterisk -> AgiServer -> Gate -> real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callshield.agi import AgiServer
from callshield.agi.gate import GATE_SCRIPT, VerdictCommands, gate_handler
from callshield.agi.protocol import Command
from callshield.gate import Gate, Verdict
from callshield.models import Action, Scope, Source
from callshield.numbers import NumberRules
from callshield.policy import Decision, Reason
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


async def test_one_server_sets_each_calls_own_variables(store: ShieldStore) -> None:
    """The handler keeps each verdict's commands formatted: calls through one server must still
    each get their own (two blocks with different ends, a clean call, an error)."""
    later = UNTIL + timedelta(days=30)
    await shield(store)
    await store.add(NewEntry("+8613900139000", Scope(), Source.AGENT_FLAG, "no", later), "test", NOW)
    gate = Gate(store, NumberRules())
    calls = [SHIELDED, "13900139000", "13700137000", "", SHIELDED, "13900139000"]
    async with AgiServer({GATE_SCRIPT: gate_handler(gate)}, "127.0.0.1", 0) as server:
        seen = [
            (await FakeAsterisk(server.port, FakeCall(args=(n,)), idle_timeout=30).run()).variables
            for n in calls
        ]
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    first = {"SHIELD_RESULT": "BLOCK", "SHIELD_REASON": "shielded", "SHIELD_UNTIL": UNTIL.strftime(stamp)}
    second = {**first, "SHIELD_UNTIL": later.strftime(stamp)}
    clean = {"SHIELD_RESULT": "ALLOW", "SHIELD_REASON": "clean", "SHIELD_UNTIL": ""}
    error = {"SHIELD_RESULT": "BLOCK", "SHIELD_REASON": "error", "SHIELD_UNTIL": ""}
    assert seen == [first, second, clean, error, first, second]


def test_verdict_commands_are_those_of_the_verdict_and_bounded() -> None:
    commands = VerdictCommands(limit=2)
    ends = [datetime(2027, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    verdicts = [Verdict(Decision(Action.BLOCK, Reason.SHIELDED, e), "+86138****8000", None) for e in ends]
    for verdict in [*verdicts, *verdicts]:
        made = commands(verdict)
        fresh = [Command("SET VARIABLE", name, value) for name, value in verdict.variables().items()]
        assert [c.line for c in made] == [c.line for c in fresh]
        assert len(commands) <= 2
    assert commands(verdicts[2]) is commands(verdicts[2])  # kept, not made again


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
