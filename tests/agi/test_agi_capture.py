"""FastAGI capture: callshield/mark (the agent's feature code) and callshield/optout."""

from __future__ import annotations

import pytest
from callshield.agi import AgiServer
from callshield.agi.capture import MARK_SCRIPT, OPTOUT_SCRIPT, mark_handler, optout_handler
from callshield.capture_config import OptOutSettings
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import ShieldStore
from fake_agi_channel import FakeCall
from fake_asterisk import FakeAsterisk
from testkit import StoreSink

pytestmark = pytest.mark.usefixtures("loop_errors")

CUSTOMER, E164 = "13900139000", "+8613900139000"
PEER = "PJSIP/carrier-00000003"
RULES = NumberRules()


async def run(sink: StoreSink, call: FakeCall, keypresses: str = "") -> FakeAsterisk:
    routes = {
        MARK_SCRIPT: mark_handler(sink, RULES),
        OPTOUT_SCRIPT: optout_handler(sink, RULES, OptOutSettings()),
    }
    async with AgiServer(routes, "127.0.0.1", 0) as server:
        return await FakeAsterisk(server.port, call, keypresses=keypresses).run()


async def test_mark_shields_the_gated_number_hangs_up_the_customer_and_beeps(store: ShieldStore) -> None:
    sink = StoreSink(store)
    variables = (
        ("SHIELD_NUMBER", CUSTOMER),
        ("SHIELD_COMPANY", "acme"),
        ("SHIELD_CAMPAIGN", ""),
        ("BRIDGEPEER", PEER),
    )
    fake = await run(sink, FakeCall(script=MARK_SCRIPT, args=(), variables=variables))
    assert [r[:3] for r in sink.refusals] == [(E164, Scope("acme"), Source.AGENT_KEYPAD)]
    assert fake.channel.peer_hung_up == PEER
    assert fake.channel.played == ["beep"]
    assert fake.closed_by_server


async def test_mark_falls_back_to_the_dialed_peer_number(store: ShieldStore) -> None:
    sink = StoreSink(store)
    variables = (("DIALEDPEERNUMBER", f"{CUSTOMER}@carrier"), ("BRIDGEPEER", PEER))
    await run(sink, FakeCall(script=MARK_SCRIPT, args=(), variables=variables))
    assert [r[0] for r in sink.refusals] == [E164]


async def test_mark_without_a_number_marks_nothing_and_says_so(store: ShieldStore) -> None:
    sink = StoreSink(store)
    fake = await run(sink, FakeCall(script=MARK_SCRIPT, args=(), variables=(("BRIDGEPEER", PEER),)))
    assert sink.refusals == []
    assert fake.channel.peer_hung_up is None
    assert fake.channel.played == ["beeperr"]


@pytest.mark.parametrize(
    ("keypresses", "refused"),
    [("9", True), ("", False), ("1", False)],
    ids=["digit during the prompt", "no digit", "another digit"],
)
async def test_optout(store: ShieldStore, keypresses: str, refused: bool) -> None:
    sink = StoreSink(store)
    fake = await run(sink, FakeCall(script=OPTOUT_SCRIPT, args=(CUSTOMER, "acme")), keypresses)
    assert bool(sink.refusals) is refused
    assert fake.channel.hangup_requested is refused
    assert fake.channel.answered
    if refused:
        assert [r[:3] for r in sink.refusals] == [(E164, Scope("acme"), Source.CUSTOMER_OPTOUT)]
        assert fake.channel.played[-2:] == ["auth-thankyou", "vm-goodbye"]
