"""``callshield serve`` as a PBX engineer runs it: a real process, a fake Asterisk on loopback
(ARI and FastAGI), a real SQLite store; and ARI and FastAGI agreeing on every verdict."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from callshield.agi import AgiServer
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.ari.app import StasisApp
from callshield.ari.client import AriClient, AriConfig
from callshield.gate import Gate
from callshield.models import Action, PrefixRule, Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import NewEntry, ShieldStore
from fake_agi_channel import FakeCall
from fake_ari import FakeAri, FakeChannel
from fake_asterisk import FakeAsterisk

NOW = datetime.now(UTC)
RULES = NumberRules(strip_prefixes=("9",))
NUMBERS = [
    "13800138000",
    "913800138000",
    "13900139000",
    "13800139999",
    "13800130001",
    "110",
    "",
    "12ab",
    "1234",
]


async def seed(store: ShieldStore) -> None:
    until = NOW + timedelta(days=365)
    await store.add(NewEntry("+8613800138000", Scope(), Source.CUSTOMER_OPTOUT, "no", until), "t", NOW)
    for prefix, action in (("+861380013", Action.BLOCK), ("+8613800139999", Action.ALLOW)):
        await store.add_prefix(PrefixRule(prefix, action, Scope(), "range", NOW), "t")


def label_verdict(channel: FakeChannel) -> tuple[str, str]:
    assert channel.continued is not None and channel.continued.label is not None
    action, _, reason = channel.continued.label.partition("-")
    return action.upper(), reason


async def until_decided(channel: FakeChannel) -> FakeChannel:
    async with asyncio.timeout(10):
        while channel.continued is None and channel.hangup_cause is None:
            await asyncio.sleep(0.005)
    return channel


async def test_ari_and_fastagi_give_the_same_verdict_for_every_number(store: ShieldStore) -> None:
    await seed(store)
    gate = Gate(store, RULES)
    async with FakeAri() as fake, AgiServer({GATE_SCRIPT: gate_handler(gate)}, "127.0.0.1", 0) as agi:
        client = AriClient(AriConfig(fake.url, fake.username, fake.password, app="callshield"))
        app = StasisApp("pbx", client, gate)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.connected.wait(), 5)
        try:
            for number in NUMBERS:
                channel = await until_decided(await fake.stasis_start("callshield", args=["gate", number]))
                via_agi = (await FakeAsterisk(agi.port, FakeCall(args=(number,))).run()).variables
                assert label_verdict(channel) == (via_agi["SHIELD_RESULT"], via_agi["SHIELD_REASON"]), number
        finally:
            await app.stop()
            await task


async def refuse_by_keypad(fake: FakeAri, agent: FakeChannel) -> None:
    """The agent of an allowed call presses *9 once the customer answered: the customer leg ends."""
    async with asyncio.timeout(10):
        while "callshield" not in agent.subscribers:
            await asyncio.sleep(0.01)
    await press_code_on_answer(fake, agent, "13900139000")


async def press_code_on_answer(fake: FakeAri, agent: FakeChannel, number: str) -> FakeChannel:
    """``agent`` dials ``number``, the customer answers, the agent presses *9; returns the customer
    leg once callshield has hung it up."""
    peer = await fake.dial(agent.id, f"{number}@carrier", caller_number=number)
    await fake.answer_dial(peer.id)
    await fake.bridge(agent.id, peer.id)
    await fake.send_dtmf(agent.id, "*")
    await fake.send_dtmf(agent.id, "9")
    async with asyncio.timeout(10):
        while peer.hangup_cause is None:
            await asyncio.sleep(0.01)
    return peer


async def next_call_blocked(fake: FakeAri, args: list[str]) -> bool:
    """The customer leg is hung up at once and the refusal stored alongside: within a bound, the
    next call to the number is blocked."""
    async with asyncio.timeout(10):
        while True:
            channel = await until_decided(await fake.stasis_start("callshield", args=args))
            if label_verdict(channel) == ("BLOCK", "shielded"):
                return True
            await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    async with FakeAri() as running:
        yield running


def service_env(config: Path) -> dict[str, str]:
    """This environment without CALLSHIELD_* settings, with ``config`` as the service's file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CALLSHIELD_")} | {
        "CALLSHIELD_CONFIG": str(config)
    }


async def stopped(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM the service; its log, once it exited with status 0 (else the test fails with it)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    log = (await asyncio.wait_for(proc.stderr.read(), 15)).decode()
    status = await proc.wait()
    assert status == 0, log
    return log


async def start_service(
    tmp_path: Path, fake: FakeAri, agi_port: int, extra: str = ""
) -> asyncio.subprocess.Process:
    config = tmp_path / "callshield.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path}/shield.db"\nkey_file = "{tmp_path}/shield.key"\n'
        '[numbers]\nstrip_prefixes = ["9"]\n'
        f'[agi]\nlisten = "127.0.0.1:{agi_port}"\n'
        f'[capture]\njournal = "{tmp_path}/refusals.journal"\n'
        f'[[ari.server]]\nname = "pbx1"\nurl = "{fake.url.removesuffix("/ari")}"\n'
        f'username = "{fake.username}"\npassword_file = "{tmp_path}/ari.secret"\n' + extra
    )
    (tmp_path / "ari.secret").write_text(fake.password + "\n")
    env = service_env(config)
    cli = [sys.executable, "-m", "callshield"]
    init = await asyncio.create_subprocess_exec(*cli, "init", env=env, stdout=asyncio.subprocess.DEVNULL)
    assert await init.wait() == 0
    add = await asyncio.create_subprocess_exec(
        *cli, "add", "13800138000", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    assert await add.wait() == 0
    return await asyncio.create_subprocess_exec(*cli, "serve", env=env, stderr=asyncio.subprocess.PIPE)


async def test_serve_gates_over_ari_and_fastagi_and_stops_cleanly_on_sigterm(
    tmp_path: Path, fake: FakeAri
) -> None:
    agi_port = free_port()
    proc = await start_service(tmp_path, fake, agi_port)
    try:
        await fake.wait_connected("callshield", within=15)
        blocked = await until_decided(await fake.stasis_start("callshield", args=["gate", "913800138000"]))
        allowed = await until_decided(
            await fake.stasis_start("callshield", args=["gate", "13900139000", "acme"])
        )
        assert label_verdict(blocked) == ("BLOCK", "shielded")
        assert label_verdict(allowed) == ("ALLOW", "clean")
        via_agi = (await FakeAsterisk(agi_port, FakeCall(args=("13800138000",))).run()).variables
        assert via_agi["SHIELD_RESULT"] == "BLOCK"
        await fake.drop_websockets("callshield")
        await fake.wait_connected("callshield", within=5)
        again = await until_decided(await fake.stasis_start("callshield", args=["gate", "13800138000"]))
        assert label_verdict(again) == ("BLOCK", "shielded")
        await refuse_by_keypad(fake, allowed)
        refused = await until_decided(
            await fake.stasis_start("callshield", args=["gate", "13900139000", "acme"])
        )
        assert label_verdict(refused) == ("BLOCK", "shielded")
        other_company = await until_decided(
            await fake.stasis_start("callshield", args=["gate", "13900139000"])
        )
        assert label_verdict(other_company) == ("ALLOW", "clean")
    finally:
        log = await stopped(proc)
    assert "stopped; decisions:" in log
    assert "connection lost" in log
    for digits in ("13800138000", "13900139000"):
        assert digits not in log
    assert fake.password not in log


async def test_serve_waits_for_a_store_that_is_not_up_and_stops_cleanly(
    tmp_path: Path, fake: FakeAri
) -> None:
    """PostgreSQL not reachable at start: the service stays up (logging why once), serves nothing
    meanwhile (Asterisk's dialplan blocks the calls), and SIGTERM still ends it cleanly."""
    config = tmp_path / "callshield.toml"
    url = f"postgresql://callshield@127.0.0.1:{free_port()}/callshield?password=pg-secret"
    config.write_text(
        f'[store]\nurl = "{url}"\nkey_file = "{tmp_path}/shield.key"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[[ari.server]]\nname = "pbx1"\nurl = "{fake.url.removesuffix("/ari")}"\n'
        f'username = "{fake.username}"\npassword = "{fake.password}"\n'
    )
    (tmp_path / "shield.key").write_text(os.urandom(32).hex() + "\n")
    (tmp_path / "shield.key").chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callshield", "serve", env=service_env(config), stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(2.5)  # tries at 0, 1 and 3 s
        assert proc.returncode is None
        assert not fake.app_connected("callshield")
    finally:
        log = await stopped(proc)
    assert log.count("is unavailable") == 1, log
    assert "pg-secret" not in log and fake.password not in log


async def test_serve_with_the_guard_ends_bypasses_and_dialer_refusals(tmp_path: Path, fake: FakeAri) -> None:
    guard = '[guard]\nenabled = true\ntrunks = ["PJSIP/carrier"]\n'
    proc = await start_service(tmp_path, fake, free_port(), guard)
    try:
        await fake.wait_connected("callshield", within=15)
        await fake.wait_connected("callshield-guard", within=15)
        bypass = await fake.dial(None, "13800138000@carrier")
        agent = await until_decided(await fake.stasis_start("callshield", args=["gate", "13900139000"]))
        gated = await fake.dial(agent.id, "13900139000@carrier", caller_number="13900139000")
        async with asyncio.timeout(10):
            while bypass.hangup_cause is None:
                await asyncio.sleep(0.01)
        assert bypass.hangup_cause == 21
        dialer_agent = await fake.create_channel(name="PJSIP/agent5-00000000", caller_number="agent5")
        customer = await press_code_on_answer(fake, dialer_agent, "13700137000")
        assert gated.hangup_cause is None
    finally:
        log = await stopped(proc)
    assert customer.hangup_cause == 16
    for digits in ("13800138000", "13900139000", "13700137000"):
        assert digits not in log
