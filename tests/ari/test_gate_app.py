"""The ARI gate end to end: fake Asterisk 22 -> StasisApp -> Gate -> real SQLite store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from callshield.ari.app import DELIVERY_ATTEMPTS, StasisApp
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.connection import Backoff
from callshield.ari.events import Event
from callshield.ari.gate import dialplan_label, stasis_args
from callshield.gate import Gate
from callshield.models import Matches, Scope, Source
from callshield.numbers import NumberRules
from callshield.store.base import NewEntry, ShieldStore
from fake_ari import FakeAri, FakeChannel

APP = "callshield"
SHIELDED, CLEAN = "13800138000", "13900139000"
NOW = datetime.now(UTC)
UNTIL = (NOW + timedelta(days=365)).replace(microsecond=0)


async def shield(store: ShieldStore, scope: Scope = Scope()) -> None:
    await store.add(NewEntry("+86" + SHIELDED, scope, Source.AGENT_KEYPAD, "said no", UNTIL), "t", NOW)


def client_for(fake: FakeAri) -> AriClient:
    return AriClient(AriConfig(fake.url, fake.username, fake.password, app=APP, request_timeout=1.0))


@asynccontextmanager
async def running(
    fake: FakeAri, store: ShieldStore, *, hangup_blocked: bool = False
) -> AsyncIterator[StasisApp]:
    gate = Gate(store, NumberRules(strip_prefixes=("9",)))
    app = StasisApp(
        "pbx1", client_for(fake), gate, app=APP, backoff=Backoff(0.05, 0.2), hangup_blocked=hangup_blocked
    )
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.connected.wait(), 5)
    try:
        yield app
    finally:
        await app.stop()
        await asyncio.wait_for(task, 5)


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)


async def decided(channel: FakeChannel) -> FakeChannel:
    await until(lambda: channel.continued is not None or channel.hangup_cause is not None)
    return channel


async def call(fake: FakeAri, *args: str) -> FakeChannel:
    return await decided(await fake.stasis_start(APP, args=["gate", *args]))


@pytest.mark.parametrize(
    ("args", "label"),
    [
        ((CLEAN,), "allow-clean"),
        (("9" + CLEAN,), "allow-clean"),
        (("110",), "allow-exempt"),
        (("",), "block-error"),
        (("12345678901234567890",), "block-error"),
        ((), "block-error"),
    ],
)
async def test_verdicts_continue_at_their_label_in_one_round_trip(
    fake_ari: FakeAri, store: ShieldStore, args: tuple[str, ...], label: str
) -> None:
    async with running(fake_ari, store):
        channel = await call(fake_ari, *args)
    assert channel.continued is not None
    assert channel.continued.label == label
    assert channel.variables == {}
    calls = [(r.method, r.path) for r in fake_ari.requests if channel.id in r.path]
    assert calls == [("POST", f"/channels/{channel.id}/continue")]


async def test_a_shielded_number_gets_its_until_then_the_block_label(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    await shield(store)
    async with running(fake_ari, store):
        channel = await call(fake_ari, SHIELDED)
    assert channel.variables == {"SHIELD_UNTIL": UNTIL.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert channel.continued is not None
    assert channel.continued.label == "block-shielded"


async def test_company_and_campaign_arguments_select_scoped_entries(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    await shield(store, Scope("acme", "spring"))
    async with running(fake_ari, store):
        blocked = await call(fake_ari, SHIELDED, "acme", "spring")
        other_campaign = await call(fake_ari, SHIELDED, "acme", "autumn")
    assert blocked.continued is not None and blocked.continued.label == "block-shielded"
    assert other_campaign.continued is not None and other_campaign.continued.label == "allow-clean"


async def test_the_app_can_hang_blocked_calls_up_itself(fake_ari: FakeAri, store: ShieldStore) -> None:
    await shield(store)
    async with running(fake_ari, store, hangup_blocked=True):
        channel = await call(fake_ari, SHIELDED)
        allowed = await call(fake_ari, CLEAN)
    deletes = fake_ari.requests_to("DELETE", "/channels/*")
    assert [(r.path, r.params.get("reason_code")) for r in deletes] == [(f"/channels/{channel.id}", "21")]
    assert allowed.continued is not None and allowed.continued.label == "allow-clean"


async def test_a_store_error_blocks(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(e164: str) -> Matches:
        raise OSError("disk gone")

    monkeypatch.setattr(store, "lookup", broken)
    async with running(fake_ari, store):
        channel = await call(fake_ari, CLEAN)
    assert channel.continued is not None and channel.continued.label == "block-error"


async def test_an_unknown_stasis_entry_is_blocked(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with running(fake_ari, store):
        channel = await decided(await fake_ari.stasis_start(APP, args=["dial-anyway", CLEAN]))
    assert channel.continued is not None and channel.continued.label == "block-error"


async def test_each_decision_is_logged_once_with_the_masked_number_verdict_and_channel(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    caplog.set_level(logging.INFO, logger="callshield.ari.app")
    async with running(fake_ari, store):
        blocked = await call(fake_ari, SHIELDED)
        allowed = await call(fake_ari, CLEAN)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gate ")]
    assert lines == [
        f"gate +86138****8000 BLOCK shielded (entry global agent_keypad) channel={blocked.id}"
        " -> block-shielded",
        f"gate +86139****9000 ALLOW clean () channel={allowed.id} -> allow-clean",
    ]


async def test_the_gate_alone_drops_frames_it_does_not_use_before_parsing(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(fake_ari, store):
        await fake_ari.send_raw('{"type":"StasisEnd", not json at all', APP)
        await fake_ari.send_raw('{"type":"StasisStart", not json at all', APP)
        channel = await call(fake_ari, CLEAN)
    assert channel.continued is not None and channel.continued.label == "allow-clean"
    skipped = [r for r in caplog.records if "frame skipped" in r.getMessage()]
    assert len(skipped) == 1  # the StasisStart frame was parsed (and refused), the StasisEnd not


def slow_lookup(
    store: ShieldStore, release: asyncio.Event, entered: asyncio.Event
) -> Callable[[str], Awaitable[Matches]]:
    real = store.lookup

    async def lookup(e164: str) -> Matches:
        entered.set()
        await release.wait()
        return await real(e164)

    return lookup


async def test_a_caller_hanging_up_during_the_decision_is_not_an_error(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(store, "lookup", slow_lookup(store, release, entered))
    async with running(fake_ari, store):
        channel = await fake_ari.stasis_start(APP, args=["gate", CLEAN])
        await asyncio.wait_for(entered.wait(), 5)
        await fake_ari.caller_hangup(channel.id)
        release.set()
        await until(lambda: any(r.path.endswith("/continue") for r in fake_ari.requests))
        await asyncio.sleep(0.05)
    statuses = [r.status for r in fake_ari.requests_to("POST", "/channels/*/continue")]
    assert statuses in ([404], [409])
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING", "CRITICAL")]


async def overtaken(fake: FakeAri, first: FakeChannel, release: asyncio.Event | None = None) -> None:
    """A clean call made now gets its verdict while ``first`` still waits for its own; then
    (``release`` set, if given) ``first`` gets ``allow-clean`` too."""
    second = await call(fake, CLEAN)
    first_waited = first.continued is None
    if release is not None:
        release.set()
    await decided(first)
    assert first_waited
    assert second.continued is not None and second.continued.label == "allow-clean"
    assert first.continued is not None and first.continued.label == "allow-clean"


async def test_a_slow_decision_does_not_hold_up_the_next_calls(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    slow = slow_lookup(store, release, entered)
    real = store.lookup

    async def lookup(e164: str) -> Matches:
        return await (slow(e164) if e164.endswith(SHIELDED) else real(e164))

    monkeypatch.setattr(store, "lookup", lookup)
    async with running(fake_ari, store):
        first = await fake_ari.stasis_start(APP, args=["gate", SHIELDED])
        await asyncio.wait_for(entered.wait(), 5)
        await overtaken(fake_ari, first, release)  # while the first one's look-up waits


async def test_a_burst_of_calls_gets_every_verdict_once(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StasisStarts read from one segment are dispatched without a turn of the event loop in
    between: they are decided one after another, each verdict delivered once."""
    await shield(store)
    numbers = [SHIELDED if i % 4 == 0 else CLEAN for i in range(24)]
    async with running(fake_ari, store) as app:
        held: list[Event] = []
        dispatch = app._dispatch

        def in_one_burst(event: Event) -> None:
            held.append(event)
            if len(held) == len(numbers):
                for each in held:
                    dispatch(each)

        monkeypatch.setattr(app, "_dispatch", in_one_burst)
        await until(lambda: bool(fake_ari.requests_to("GET", "/applications/*")))  # none parked yet
        channels = [await fake_ari.stasis_start(APP, args=["gate", n]) for n in numbers]
        await asyncio.gather(*(decided(c) for c in channels))
    labels = [c.continued.label if c.continued else None for c in channels]
    assert labels == ["block-shielded" if n == SHIELDED else "allow-clean" for n in numbers]
    continues = [r.path for r in fake_ari.requests_to("POST", "/channels/*/continue")]
    assert sorted(continues) == sorted(f"/channels/{c.id}/continue" for c in channels)


async def test_a_slow_delivery_does_not_hold_up_the_next_calls(fake_ari: FakeAri, store: ShieldStore) -> None:
    """The last call of a burst is delivered by its decider; a call that comes meanwhile is
    decided by another one, not after that delivery."""
    async with running(fake_ari, store):
        first = await fake_ari.create_channel(exten=CLEAN, context="agents")
        fake_ari.add_fault(method="POST", path=f"/channels/{first.id}/continue", delay=1.0)
        await fake_ari.pbx.stasis_start(APP, ["gate", CLEAN], first)
        await asyncio.sleep(0.05)  # its continue is on the way, and slow
        await overtaken(fake_ari, first)


async def test_stop_finishes_the_decisions_in_flight(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(store, "lookup", slow_lookup(store, release, entered))
    gate = Gate(store, NumberRules())
    app = StasisApp("pbx1", client_for(fake_ari), gate, app=APP)
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.connected.wait(), 5)
    channel = await fake_ari.stasis_start(APP, args=["gate", CLEAN])
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(app.stop(grace=5))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(task, 5)
    assert channel.continued is not None and channel.continued.label == "allow-clean"


async def test_channels_parked_while_disconnected_are_decided_after_reconnecting(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await shield(store)
    attempts = 2 * DELIVERY_ATTEMPTS
    fake_ari.add_fault(method="POST", path="/channels/*/continue", status=500, message="boom", times=attempts)
    async with running(fake_ari, store) as app:
        parked = [await fake_ari.stasis_start(APP, args=["gate", n]) for n in (SHIELDED, CLEAN)]
        await until(lambda: len(fake_ari.requests_to("POST", "/channels/*/continue")) == attempts)
        assert all(c.continued is None for c in parked)
        assert await fake_ari.drop_websockets(APP) == 1
        await until(
            lambda: not app.connected.is_set() or len(fake_ari.requests_to("GET", "/applications/*")) > 1
        )
        await asyncio.wait_for(app.connected.wait(), 5)
        for channel in parked:
            await decided(channel)
    labels = [c.continued.label if c.continued else None for c in parked]
    assert labels == ["block-shielded", "allow-clean"]


async def test_the_app_reconnects_by_itself_and_logs_the_loss_once(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(fake_ari, store) as app:
        for _ in range(3):
            await fake_ari.drop_websockets(APP)
            await until(lambda: fake_ari.app_connected(APP) and app.connected.is_set())
        channel = await call(fake_ari, CLEAN)
    assert channel.continued is not None and channel.continued.label == "allow-clean"
    assert sum("connection lost" in r.getMessage() for r in caplog.records) == 3


async def test_two_asterisk_servers_at_once(store: ShieldStore) -> None:
    await shield(store)
    async with FakeAri() as pbx1, FakeAri() as pbx2, running(pbx1, store), running(pbx2, store):
        a = await call(pbx1, SHIELDED)
        b = await call(pbx2, SHIELDED)
        c = await call(pbx2, CLEAN)
    assert [x.continued.label if x.continued else None for x in (a, b, c)] == [
        "block-shielded",
        "block-shielded",
        "allow-clean",
    ]


async def test_a_dialplan_without_the_labels_gets_variables_instead(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    fake_ari.add_fault(
        method="POST", path="/channels/*/continue", status=404, message="Requested label can not be found"
    )
    await shield(store)
    async with running(fake_ari, store):
        channel = await call(fake_ari, SHIELDED)
    assert channel.variables["SHIELD_RESULT"] == "BLOCK"
    assert channel.variables["SHIELD_REASON"] == "shielded"
    assert channel.continued is not None and channel.continued.label is None


def test_stasis_args_from_app_data() -> None:
    assert stasis_args("callshield,gate,5551234,acme,", "callshield") == ["gate", "5551234", "acme", ""]
    assert stasis_args("other,gate,5551234", "callshield") is None
    assert stasis_args("callshield", "callshield") == []


def test_labels_match_the_shipped_dialplan() -> None:
    from importlib.resources import files

    from callshield.gate import Verdict
    from callshield.models import Action
    from callshield.policy import Decision, Reason

    conf = files("callshield.dialplan").joinpath("extensions_callshield.conf").read_text()
    reasons = {
        Action.ALLOW: [Reason.CLEAN, Reason.EXEMPT, Reason.PREFIX_ALLOW],
        Action.BLOCK: [Reason.SHIELDED, Reason.PREFIX_BLOCK, Reason.ERROR],
    }
    for action, names in reasons.items():
        for reason in names:
            label = dialplan_label(Verdict(Decision(action, reason), "", None))
            assert f"n({label})," in conf
