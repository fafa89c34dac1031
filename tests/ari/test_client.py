"""callshield.ari.client against the fake ARI server, over real TCP on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.events import (
    ChannelDtmfReceived,
    ChannelVarset,
    Dial,
    StasisEnd,
    StasisStart,
    UnknownEvent,
)
from callshield.ari.websocket import EventStream
from callshield.errors import AriRequestError, ConfigError, PeerProtocolError, PeerUnavailable
from fake_ari import Continued, FakeAri


@pytest.fixture
async def stream(fake_ari: FakeAri, ari_client: AriClient) -> AsyncIterator[EventStream]:
    """The client's events websocket for ``shield``, connected (so channels can park in it)."""
    async with ari_client.events() as connected:
        await fake_ari.wait_connected("shield")
        yield connected


async def test_gate_flow_is_two_round_trips(fake_ari: FakeAri, ari_client: AriClient) -> None:
    async with ari_client.events() as stream:
        await fake_ari.wait_connected("shield")
        parked = await fake_ari.stasis_start("shield", args=["5551234"])
        start = await anext(stream)
        assert isinstance(start, StasisStart) and start.args == ("5551234",)
        assert start.channel.id == parked.id and start.channel.dialplan.exten == "5551234"
        verdict = {"SHIELD_VERDICT": "allow", "SHIELD_REASON": "clean", "SHIELD_ID": "42"}
        await ari_client.set_channel_vars(start.channel.id, verdict)
        await ari_client.continue_in_dialplan(start.channel.id)
        seen = [await anext(stream) for _ in range(4)]
    assert [type(e) for e in seen] == [ChannelVarset] * 3 + [StasisEnd]
    assert parked.variables == verdict
    assert parked.continued == Continued("agents", "5551234", 3)
    rest = [r for r in fake_ari.requests if r.path != "/events"]
    assert [(r.method, r.path.rsplit("/", 1)[1], r.status) for r in rest] == [
        ("POST", "variables", 204),
        ("POST", "continue", 204),
    ]


async def test_variables_round_trip(fake_ari: FakeAri, ari_client: AriClient, stream: EventStream) -> None:
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    value = "+1 555 two words & a=b?c"
    await ari_client.set_channel_var(channel.id, "V", value)
    await ari_client.set_channel_var(channel.id, "EMPTY", "")
    await ari_client.set_channel_var(channel.id, "GONE", "x")
    await ari_client.set_channel_var(channel.id, "GONE")
    assert channel.variables == {"V": value, "EMPTY": ""}
    assert await ari_client.get_channel_var(channel.id, "V") == value
    assert await ari_client.get_channel_var(channel.id, "CALLERID(num)") == "agent1"
    with pytest.raises(AriRequestError) as caught:
        await ari_client.get_channel_var(channel.id, "NOPE")
    assert (caught.value.status, caught.value.message) == (404, "Provided variable was not found")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, Continued("agents", "5551234", 3)),
        ({"label": "blocked"}, Continued("agents", "5551234", None, "blocked")),
        ({"context": "shield-blocked", "priority": 2}, Continued("shield-blocked", "s", 2)),
        ({"extension": "reject"}, Continued("agents", "reject", 1)),
    ],
)
async def test_continue_targets(
    fake_ari: FakeAri, ari_client: AriClient, stream: EventStream, kwargs: dict[str, str], expected: Continued
) -> None:
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    await ari_client.continue_in_dialplan(channel.id, **kwargs)  # type: ignore[arg-type]
    assert channel.continued == expected


async def test_races_are_is_gone(fake_ari: FakeAri, ari_client: AriClient, stream: EventStream) -> None:
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    await ari_client.continue_in_dialplan(channel.id)
    with pytest.raises(AriRequestError) as left:
        await ari_client.set_channel_var(channel.id, "V", "5551234")
    assert left.value.is_gone and left.value.status == 409
    assert str(left.value) == (
        f"ARI POST /channels/{channel.id}/variable answered 409: Channel not in Stasis application"
    )
    await fake_ari.remote_hangup(channel.id)
    for attempt in (
        ari_client.continue_in_dialplan(channel.id),
        ari_client.hangup(channel.id, reason_code=21),
        ari_client.get_channel(channel.id),
    ):
        with pytest.raises(AriRequestError) as gone:
            await attempt
        assert gone.value.is_gone and gone.value.status == 404
        assert gone.value.message == "Channel not found"


async def test_hangup(fake_ari: FakeAri, ari_client: AriClient, stream: EventStream) -> None:
    first = await fake_ari.stasis_start("shield", args=["5550000"])
    second = await fake_ari.stasis_start("shield", args=["5550000"])
    await ari_client.hangup(first.id, reason_code=21)
    await ari_client.hangup(second.id, reason="busy")
    assert (first.hangup_cause, second.hangup_cause) == (21, 17)
    assert [r.params for r in fake_ari.requests_to("DELETE")] == [{"reason_code": "21"}, {"reason": "busy"}]
    with pytest.raises(ValueError, match="not both"):
        await ari_client.hangup(first.id, reason_code=21, reason="rejected")


async def test_answer_and_play(fake_ari: FakeAri, ari_client: AriClient, stream: EventStream) -> None:
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    await ari_client.answer(channel.id)
    playback = await ari_client.play(channel.id, ["sound:beep", "sound:ss-noservice"], playback_id="pb-1")
    assert channel.state == "Up"
    assert (playback.id, playback.media_uri, playback.state) == ("pb-1", "sound:beep", "queued")
    assert fake_ari.requests[-1].params == {"media": "sound:beep,sound:ss-noservice", "playbackId": "pb-1"}


async def test_channels_and_quoted_ids(fake_ari: FakeAri, ari_client: AriClient) -> None:
    odd = await fake_ari.create_channel(id="a/b?c", exten="5551234")
    listed = await ari_client.list_channels()
    assert [c.id for c in listed] == ["a/b?c"]
    assert (await ari_client.get_channel("a/b?c")).dialplan.exten == "5551234"
    assert fake_ari.requests[-1].path == f"/channels/{odd.id}"


async def test_reconnect_finds_parked_channels(fake_ari: FakeAri, ari_client: AriClient) -> None:
    stream = ari_client.events()
    async with stream:
        await fake_ari.wait_connected("shield")
        channel = await fake_ari.stasis_start("shield", args=["5551234"])
        assert isinstance(await anext(stream), StasisStart)
        await fake_ari.drop_websockets()
        with pytest.raises(PeerUnavailable, match="websocket lost: connection dropped"):
            await anext(stream)
        assert not stream.connected
    assert (await ari_client.get_application()).channel_ids == (channel.id,)
    async with ari_client.events() as again:
        await fake_ari.wait_connected("shield")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(again), 0.05)  # StasisStart is not replayed
        await ari_client.set_channel_var(channel.id, "SHIELD_VERDICT", "allow")
        await ari_client.continue_in_dialplan(channel.id)
        assert [type(await anext(again)) for _ in range(2)] == [ChannelVarset, StasisEnd]


async def test_graceful_close_by_asterisk_is_peer_unavailable(
    fake_ari: FakeAri, ari_client: AriClient
) -> None:
    async with ari_client.events() as stream:
        await fake_ari.wait_connected("shield")
        drop = asyncio.create_task(fake_ari.drop_websockets(graceful=True))
        with pytest.raises(PeerUnavailable, match="code 1001"):
            await anext(stream)
        await drop


async def test_closing_the_stream_ends_iteration(fake_ari: FakeAri, ari_client: AriClient) -> None:
    stream = ari_client.events()
    await stream.connect()
    received: list[object] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event)

    task = asyncio.create_task(consume())
    await fake_ari.wait_connected("shield")
    await asyncio.sleep(0.01)
    await stream.close()
    await asyncio.wait_for(task, 1)
    assert received == [] and not stream.connected
    with pytest.raises(RuntimeError, match="connects once"):
        await stream.connect()


async def test_client_close_closes_streams(fake_ari: FakeAri, ari_config: AriConfig) -> None:
    client = AriClient(ari_config)
    stream = client.events()
    await stream.connect()
    await fake_ari.wait_connected("shield")
    await client.close()
    assert not stream.connected
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_subscribe_all_and_wanted(fake_ari: FakeAri, ari_client: AriClient) -> None:
    wanted = {"Dial", "ChannelDtmfReceived"}
    async with ari_client.events(["callshield-guard"], subscribe_all=True, wanted=wanted) as stream:
        await fake_ari.wait_connected("callshield-guard")
        peer = await fake_ari.dial(None, "5559999@carrier")
        await fake_ari.answer_dial(peer.id)
        await fake_ari.send_dtmf(peer.id, "9")
        seen = [await anext(stream) for _ in range(8)]
    assert fake_ari.requests_to("GET", "/events")[0].params["subscribeAll"] == "true"
    assert [type(e).__name__ for e in seen] == [
        "UnknownEvent", "UnknownEvent", "Dial", "UnknownEvent", "Dial", "UnknownEvent", "Dial",
        "ChannelDtmfReceived",
    ]  # fmt: skip
    first_dial, dtmf = seen[2], seen[7]
    assert isinstance(first_dial, Dial) and first_dial.dialstring == "5559999@carrier"
    assert isinstance(dtmf, ChannelDtmfReceived) and dtmf.channel.id == peer.id
    assert isinstance(seen[0], UnknownEvent) and seen[0].type == "ChannelCreated"


async def test_subscriptions(fake_ari: FakeAri, ari_client: AriClient) -> None:
    async with ari_client.events() as stream:
        await fake_ari.wait_connected("shield")
        channel = await fake_ari.stasis_start("shield", args=["5551234"])
        assert isinstance(await anext(stream), StasisStart)
        await ari_client.continue_in_dialplan(channel.id)
        application = await ari_client.subscribe(f"channel:{channel.id}")
        assert application.channel_ids == (channel.id,)
        await fake_ari.send_dtmf(channel.id, "7")
        assert isinstance(await anext(stream), StasisEnd)
        assert isinstance(await anext(stream), ChannelDtmfReceived)
        await fake_ari.remote_hangup(channel.id)
        with pytest.raises(AriRequestError) as caught:
            await ari_client.unsubscribe([f"channel:{channel.id}"])
    assert (caught.value.status, caught.value.message) == (422, "Event source was not subscribed to")


async def test_event_filter(fake_ari: FakeAri, ari_client: AriClient) -> None:
    async with ari_client.events():
        await fake_ari.wait_connected("shield")
        application = await ari_client.set_event_filter(allowed=["StasisStart", "StasisEnd"])
    assert application.events_allowed == ("StasisStart", "StasisEnd")
    assert fake_ari.requests[-1].body == {"allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}]}


async def test_malformed_frames_are_skipped_or_raised(fake_ari: FakeAri, ari_client: AriClient) -> None:
    async with ari_client.events() as stream:
        await fake_ari.wait_connected("shield")
        await fake_ari.send_raw('{"type": "StasisStart", "exten": "5551234"')
        await fake_ari.stasis_start("shield", args=["5551234"])
        assert isinstance(await anext(stream), StasisStart)
        assert stream.malformed == 1
    async with ari_client.events(strict=True) as strict:
        await fake_ari.wait_connected("shield")
        await fake_ari.send_raw("[]")
        with pytest.raises(PeerProtocolError, match="must be a JSON object"):
            await anext(strict)


async def test_wrong_password_is_a_clear_error(fake_ari: FakeAri, ari_config: AriConfig) -> None:
    async with AriClient(replace(ari_config, password="wrong")) as client:
        with pytest.raises(AriRequestError) as rest:
            await client.list_channels()
        assert (rest.value.status, rest.value.message) == (401, "Authentication required")
        assert not rest.value.is_gone
        with pytest.raises(AriRequestError) as ws:
            await client.events().connect()
        assert ws.value.status == 401 and "username and password" in ws.value.message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_server_is_peer_unavailable(ari_config: AriConfig) -> None:
    port = _closed_port()
    config = replace(ari_config, url=f"http://127.0.0.1:{port}/ari")
    async with AriClient(config) as client:
        with pytest.raises(PeerUnavailable, match=f"cannot connect to 127.0.0.1:{port}"):
            await client.get_application()
        with pytest.raises(PeerUnavailable, match="event websocket"):
            await client.events().connect()


async def test_slow_and_failing_server(fake_ari: FakeAri, ari_config: AriConfig) -> None:
    async with AriClient(replace(ari_config, request_timeout=0.1)) as client:
        fake_ari.add_fault(path="/channels/*/continue", hang=True)
        with pytest.raises(PeerUnavailable, match=r"no answer within 0\.1 s"):
            await client.continue_in_dialplan("1.2")
        fake_ari.add_fault(path="/channels/*/variable", status=500, message="boom")
        with pytest.raises(AriRequestError) as failed:
            await client.set_channel_var("1.2", "V", "x")
        assert (failed.value.status, failed.value.message, failed.value.is_gone) == (500, "boom", False)
        fake_ari.add_fault(method="POST", path="/channels/*/answer", disconnect=True)
        with pytest.raises(PeerUnavailable, match="server closed the connection"):
            await client.answer("1.2")


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        AriClient(AriConfig("ftp://pbx/ari", "u", "p", app="shield"))


async def test_only_wanted_drops_other_frames_before_parsing(
    fake_ari: FakeAri, ari_client: AriClient
) -> None:
    wanted = {"Dial", "ChannelDtmfReceived"}
    stream = ari_client.events(["callshield-guard"], subscribe_all=True, wanted=wanted, only_wanted=True)
    async with stream:
        await fake_ari.wait_connected("callshield-guard")
        await fake_ari.send_raw('{"type":"ChannelVarset", not json at all', "callshield-guard")
        peer = await fake_ari.dial(None, "5559999@carrier")
        await fake_ari.answer_dial(peer.id)
        await fake_ari.send_dtmf(peer.id, "9")
        seen = [await anext(stream) for _ in range(4)]
    assert [type(e).__name__ for e in seen] == ["Dial", "Dial", "Dial", "ChannelDtmfReceived"]
    assert stream.malformed == 0
