"""The guard's hang-ups over its events websocket (REST over the websocket), on the fake Asterisk:
used once Asterisk answers the guard's probe, with HTTP whenever it does not (an older Asterisk,
a probe not answered yet, a hang-up without answer)."""

from __future__ import annotations

import logging

import pytest
from callshield.ari import guard as guard_module
from callshield.ari.events import Event
from callshield.ari.guard import GUARD_EVENTS, GuardApp
from callshield.ari.guard_act import HANGUP_ATTEMPTS
from callshield.store.base import ShieldStore
from fake_ari import FakeAri
from fake_ari_guard import APP, SHIELDED, audit_of, guarding, hangups, rest_ready, shield, until

OVER_WS = "hang-ups go over the event websocket"
OVER_HTTP = "hang-ups go over HTTP"


def lines(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage() and r.levelno == level]


@pytest.fixture
def quick_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe gives up after 0.2 s (an older Asterisk never answers it)."""
    monkeypatch.setattr(guard_module, "PROBE_WITHIN", 0.2)


async def test_a_shielded_bypass_is_hung_up_over_the_websocket(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
        [record] = await audit_of(store)
    assert hangups(fake_ari, via="websocket") == [(f"/channels/{peer.id}", "21")]
    assert hangups(fake_ari, via="http") == []
    assert peer.hangup_cause == 21 and peer.state == "Ringing"
    assert record.details()["hung_up"] is True
    assert len(lines(caplog, OVER_WS)) == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert peer.id in warning and "hung up (cause 21)" in warning


async def test_the_event_filter_allows_the_answers(fake_ari: FakeAri, store: ShieldStore) -> None:
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        allowed = fake_ari.application(APP)["events_allowed"]
        assert guard.filter_types == sorted({*GUARD_EVENTS, "RESTResponse"})
    assert allowed == [{"type": t} for t in guard.filter_types]
    async with guarding(fake_ari, store, rest_over_websocket=False) as http_only:
        allowed = fake_ari.application(APP)["events_allowed"]
    assert (
        allowed
        == [{"type": t} for t in sorted(GUARD_EVENTS)]
        == [{"type": t} for t in http_only.filter_types]
    )


async def test_a_filter_that_refuses_rest_responses_is_set_without_them_and_hangups_go_over_http(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Should an Asterisk refuse ``RESTResponse`` in an event filter (400), the guard keeps its
    filter without it (hang-ups over HTTP) rather than run with no filter at all."""
    await shield(store)
    fake_ari.add_fault(method="PUT", path="/applications/*/eventFilter", status=400, message="Bad request")
    async with guarding(fake_ari, store) as guard:
        allowed = fake_ari.application(APP)["events_allowed"]
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
        await audit_of(store)
    assert allowed == [{"type": t} for t in sorted(GUARD_EVENTS)] == [{"type": t} for t in guard.filter_types]
    assert hangups(fake_ari, via="http") == [(f"/channels/{peer.id}", "21")]
    assert len(lines(caplog, "RESTResponse was refused", logging.WARNING)) == 1
    assert lines(caplog, "no event filter", logging.WARNING) == []
    assert len(fake_ari.requests_to("GET", "/asterisk/ping", via="websocket")) == 0  # no probe


async def test_on_an_older_asterisk_hangups_go_over_http(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture, quick_probe: None
) -> None:
    await shield(store)
    fake_ari.rest_over_websocket = False
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await until(lambda: bool(lines(caplog, OVER_HTTP)))
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
        await audit_of(store)
        assert guard.judge.over is None
    assert hangups(fake_ari, via="http") == [(f"/channels/{peer.id}", "21")]
    assert peer.hangup_cause == 21
    assert lines(caplog, OVER_WS) == [] and len(lines(caplog, OVER_HTTP)) == 1


async def test_until_the_probe_is_answered_hangups_go_over_http(
    fake_ari: FakeAri, store: ShieldStore
) -> None:
    await shield(store)
    fake_ari.add_fault(method="GET", path="/asterisk/ping", delay=0.3, via="websocket")
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        early = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: early.destroyed)
        assert guard.judge.over is None
        await rest_ready(guard)
        late = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: late.destroyed)
    assert hangups(fake_ari, via="http") == [(f"/channels/{early.id}", "21")]
    assert hangups(fake_ari, via="websocket") == [(f"/channels/{late.id}", "21")]


async def test_a_reconnect_probes_again(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        first = guard.judge.over
        await fake_ari.drop_websockets()
        await until(lambda: guard.judge.over is not None and guard.judge.over is not first)
    assert len(fake_ari.requests_to("GET", "/asterisk/ping", via="websocket")) == 2
    assert len(lines(caplog, OVER_WS)) == 2


async def test_a_leg_gone_is_reported_as_already_ended(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    fake_ari.add_fault(
        method="DELETE", path="/channels/*", status=404, message="Channel not found", via="websocket"
    )
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        records = await audit_of(store)
    assert [r.status for r in fake_ari.requests_to("DELETE", via="websocket")] == [404]
    assert hangups(fake_ari, via="http") == []
    assert not peer.destroyed
    assert [r.details()["hung_up"] for r in records] == [False]
    assert any("it had already ended" in w for w in lines(caplog, "did not pass the gate", logging.WARNING))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("failures", [1, HANGUP_ATTEMPTS])
async def test_an_error_status_is_retried_as_over_http(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture, failures: int
) -> None:
    await shield(store)
    fake_ari.add_fault(
        method="DELETE", path="/channels/*", status=500, message="boom", times=failures, via="websocket"
    )
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        [record] = await audit_of(store)
    statuses = [r.status for r in fake_ari.requests_to("DELETE", via="websocket")]
    assert hangups(fake_ari, via="http") == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if failures < HANGUP_ATTEMPTS:
        assert statuses == [500, 204] and peer.hangup_cause == 21 and record.details()["hung_up"] is True
        assert errors == []
    else:
        assert (
            statuses == [500] * HANGUP_ATTEMPTS
            and not peer.destroyed
            and record.details()["hung_up"] is False
        )
        [error] = errors
        assert peer.id in error and "could not hang up" in error and "answered 500: boom" in error


async def test_a_hangup_without_answer_is_sent_over_http(
    fake_ari: FakeAri, store: ShieldStore, caplog: pytest.LogCaptureFixture
) -> None:
    await shield(store)
    fake_ari.add_fault(method="DELETE", path="/channels/*", hang=True, via="websocket")
    async with guarding(fake_ari, store, rest_over_websocket=True) as guard:
        await rest_ready(guard)
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
        [record] = await audit_of(store)
    assert [r.status for r in fake_ari.requests_to("DELETE", via="websocket")] == [0]  # never answered
    assert hangups(fake_ari, via="http") == [(f"/channels/{peer.id}", "21")]
    assert peer.hangup_cause == 21 and record.details()["hung_up"] is True
    [fallback] = lines(caplog, "sending it over HTTP", logging.WARNING)
    assert peer.id in fallback and "no answer within 1 s" in fallback


async def test_answers_never_reach_the_guards_dispatch(
    fake_ari: FakeAri, store: ShieldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    dispatch = GuardApp.dispatch

    def spying(self: GuardApp, event: Event) -> None:
        seen.append(type(event).__name__)
        dispatch(self, event)

    monkeypatch.setattr(GuardApp, "dispatch", spying)
    await shield(store)
    async with guarding(fake_ari, store, rest_over_websocket=True, hooks=[lambda event: None]) as guard:
        await rest_ready(guard)
        peer = await fake_ari.dial(None, f"{SHIELDED}@carrier")
        await until(lambda: peer.destroyed)
        await audit_of(store)
    assert len(fake_ari.rest_responses) == 2  # the probe's and the hang-up's
    assert set(seen) == {"DialSeen"}  # the hook takes no Dial: read lean, answers never seen
