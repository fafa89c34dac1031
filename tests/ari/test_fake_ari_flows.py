"""The fake ARI server reproduces the call flows of BEHAVIOUR.md (raw HTTP and websocket)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from ari_captures import frames
from fake_ari import Continued, FakeAri
from raw_ari import Sockets, call, connect, events, next_event, quiet

Session = aiohttp.ClientSession


async def _parked(fake: FakeAri, sockets: Sockets) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await sockets.open()
    channel = await fake.stasis_start("shield", args=["5551234"])
    assert (await next_event(ws))["type"] == "StasisStart"
    return ws, channel.id


async def test_stasis_start_is_shaped_like_pjsip_flow(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    ws = await sockets.open()
    await fake_ari.stasis_start("shield", args=["5551234"])
    event = await next_event(ws)
    captured = frames("pjsip_flow.jsonl")[0].data
    assert list(event) == list(captured)
    channel, expected = event["channel"], captured["channel"]
    assert isinstance(channel, dict) and isinstance(expected, dict)
    assert list(channel) == list(expected)
    assert channel["dialplan"] == {**expected["dialplan"]}  # agents/5551234/2 Stasis shield,5551234
    assert (channel["state"], channel["caller"]) == ("Ring", {"name": "Agent", "number": "agent1"})
    assert event["application"] == "shield" and event["args"] == ["5551234"]


async def test_variable_then_continue(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    path = f"/channels/{channel_id}"
    assert await call(http, fake_ari, "POST", path + "/variable", {"variable": "V", "value": "a b"}) == (
        204,
        None,
    )
    varset = await next_event(ws)
    assert (varset["type"], varset["variable"], varset["value"]) == ("ChannelVarset", "V", "a b")
    assert await call(http, fake_ari, "POST", path + "/continue") == (204, None)
    assert (await next_event(ws))["type"] == "StasisEnd"
    stasis_end = next(e for e in fake_ari.sent if e.type == "StasisEnd")
    assert stasis_end.seq < fake_ari.requests_to("POST", "*/continue")[0].seq  # before the 204
    channel = fake_ari.channel(channel_id)
    assert channel.variables == {"V": "a b"} and channel.stasis_status == "SUCCESS"
    assert channel.continued == Continued("agents", "5551234", 3)
    conflict = (409, {"message": "Channel not in Stasis application"})
    assert await call(http, fake_ari, "POST", path + "/variable", {"variable": "V"}) == conflict
    assert await call(http, fake_ari, "POST", path + "/continue") == conflict
    await quiet(ws)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, Continued("agents", "5551234", 3)),
        ({"priority": "5"}, Continued("agents", "5551234", 5)),
        ({"extension": "x"}, Continued("agents", "x", 1)),
        ({"context": "blocked"}, Continued("blocked", "s", 1)),
        ({"context": "c", "extension": "e", "priority": "4"}, Continued("c", "e", 4)),
        ({"label": "reject"}, Continued("agents", "5551234", None, "reject")),
        ({"label": "7", "priority": "3"}, Continued("agents", "5551234", 7, "7")),
    ],
)
async def test_continue_targets(
    fake_ari: FakeAri, http: Session, sockets: Sockets, params: dict[str, str], expected: Continued
) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    assert (await call(http, fake_ari, "POST", f"/channels/{channel_id}/continue", params))[0] == 204
    assert fake_ari.channel(channel_id).continued == expected


async def test_continue_to_label_zero_is_illegal(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    reply = await call(http, fake_ari, "POST", f"/channels/{channel_id}/continue", {"label": "0"})
    assert reply == (400, {"message": "Requested priority is illegal"})


async def test_continue_into_a_missing_context_hangs_up() -> None:
    async with FakeAri(known_contexts={"agents"}) as fake, Session() as http:
        auth = {"api_key": f"{fake.username}:{fake.password}"}
        ws = await connect(http, fake)
        channel = await fake.stasis_start("shield", args=["5551234"])
        await next_event(ws)
        params = {**auth, "context": "nosuchctx"}
        assert (await call(http, fake, "POST", f"/channels/{channel.id}/continue", params))[0] == 204
        assert channel.destroyed and channel.hangup_cause == 0


async def test_continue_needs_a_channel_that_is_not_ringing(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    ws = await sockets.open()
    channel = await fake_ari.stasis_start("shield", args=["5551234"], state="Ringing")
    await next_event(ws)
    reply = await call(http, fake_ari, "POST", f"/channels/{channel.id}/continue")
    assert reply == (412, {"message": "Channel in invalid state"})


@pytest.mark.parametrize(
    ("method", "suffix", "params", "message"),
    [
        ("POST", "/variable", {"variable": "A", "value": "b"}, "Channel not found"),
        ("POST", "/continue", None, "Channel not found"),
        ("DELETE", "", {"reason_code": "21"}, "Channel not found"),
        ("GET", "", None, "Channel not found"),
        ("POST", "/answer", None, "Channel not found"),
        ("GET", "/variable", {"variable": "A"}, "Provided channel was not found"),
    ],
)
async def test_gone_channel_is_404(
    fake_ari: FakeAri,
    http: Session,
    sockets: Sockets,
    method: str,
    suffix: str,
    params: dict[str, str] | None,
    message: str,
) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    await fake_ari.caller_hangup(channel_id)
    reply = await call(http, fake_ari, method, f"/channels/{channel_id}{suffix}", params)
    assert reply == (404, {"message": message})


async def test_app_hangup_with_reason_code(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    reply = await call(http, fake_ari, "DELETE", f"/channels/{channel_id}", {"reason_code": "21"})
    assert reply == (204, None)
    request, end = await events(ws, 2)
    assert list(request)[:3] == ["cause", "soft", "type"]
    assert (request["type"], request["cause"], request["soft"]) == ("ChannelHangupRequest", 32, True)
    assert end["type"] == "StasisEnd"
    await quiet(ws)  # no ChannelDestroyed: the subscription ended with StasisEnd
    channel = fake_ari.channel(channel_id)
    assert channel.destroyed and channel.hangup_cause == 21


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"reason": "bogus"}, "Invalid reason for hangup reason provided"),
        ({"reason_code": "abc"}, "Invalid reason for hangup reason code provided"),
        ({"reason": "busy", "reason_code": "17"}, "The reason and reason_code can't both be specified"),
    ],
)
async def test_invalid_hangup_reason_is_400(
    fake_ari: FakeAri, http: Session, sockets: Sockets, params: dict[str, str], message: str
) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    assert await call(http, fake_ari, "DELETE", f"/channels/{channel_id}", params) == (
        400,
        {"message": message},
    )
    assert not fake_ari.channel(channel_id).destroyed


async def test_hangup_reason_maps_to_cause(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    await call(http, fake_ari, "DELETE", f"/channels/{channel_id}", {"reason": "rejected"})
    assert fake_ari.channel(channel_id).hangup_cause == 21


async def test_caller_gives_up_while_parked(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    await fake_ari.caller_hangup(channel_id)
    request, end = await events(ws, 2)
    assert list(request)[:3] == ["cause", "tech_cause", "type"]
    assert (request["cause"], request["tech_cause"], end["type"]) == (127, 487, "StasisEnd")
    await quiet(ws)


async def test_no_websocket_means_stasis_fails_open(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    assert channel.stasis_status == "FAILED" and channel.stasis_app is None and channel.priority == 3
    assert await call(http, fake_ari, "GET", "/applications/shield") == (
        404,
        {"message": "Application not found"},
    )
    assert await call(http, fake_ari, "GET", "/applications") == (200, [])


async def test_dropped_websocket_leaves_the_channel_parked(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    assert await fake_ari.drop_websockets() == 1
    assert (await ws.receive(timeout=1)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert not fake_ari.app_connected("shield")
    status, app = await call(http, fake_ari, "GET", "/applications/shield")
    assert status == 200 and isinstance(app, dict) and app["channel_ids"] == [channel_id]
    late = await fake_ari.stasis_start("shield", args=["5550000"])
    assert late.stasis_status == "FAILED"  # the app is gone for new calls
    ws = await sockets.open()
    await quiet(ws)  # StasisStart is not replayed
    path = f"/channels/{channel_id}"
    assert (await call(http, fake_ari, "POST", path + "/variable", {"variable": "V", "value": "1"}))[0] == 204
    assert (await call(http, fake_ari, "POST", path + "/continue"))[0] == 204
    assert [e["type"] for e in await events(ws, 2)] == ["ChannelVarset", "StasisEnd"]


async def test_graceful_drop_sends_a_close_frame(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws = await sockets.open()
    drop = asyncio.create_task(fake_ari.drop_websockets(graceful=True))
    msg = await ws.receive(timeout=1)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.GOING_AWAY
    await drop


async def test_subscription_brings_events_after_continue(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    await call(http, fake_ari, "POST", f"/channels/{channel_id}/continue")
    await next_event(ws)  # StasisEnd
    await fake_ari.send_dtmf(channel_id, "1")
    await quiet(ws)  # in Dial(): no DTMF unless subscribed
    source = {"eventSource": f"channel:{channel_id}"}
    status, app = await call(http, fake_ari, "POST", "/applications/shield/subscription", source)
    assert status == 200 and isinstance(app, dict) and app["channel_ids"] == [channel_id]
    await fake_ari.send_dtmf(channel_id, "2", duration_ms=160)
    dtmf = await next_event(ws)
    assert (dtmf["type"], dtmf["digit"], dtmf["duration_ms"]) == ("ChannelDtmfReceived", "2", 160)
    await fake_ari.remote_hangup(channel_id)
    types = [e["type"] for e in await events(ws, 3)]
    assert types == ["ChannelHangupRequest", "ChannelHangupRequest", "ChannelDestroyed"]
    gone = (422, {"message": "Event source was not subscribed to"})
    assert await call(http, fake_ari, "DELETE", "/applications/shield/subscription", source) == gone


@pytest.mark.parametrize(
    ("source", "reply"),
    [
        ("channel:nosuch", (422, {"message": "Event source does not exist"})),
        ("bridge:nosuch", (422, {"message": "Event source does not exist"})),
        ("planet:mars", (400, {"message": "Invalid event source URI scheme"})),
    ],
)
async def test_bad_subscriptions(
    fake_ari: FakeAri, http: Session, sockets: Sockets, source: str, reply: tuple[int, object]
) -> None:
    await sockets.open()
    params = {"eventSource": source}
    assert await call(http, fake_ari, "POST", "/applications/shield/subscription", params) == reply


async def test_unsubscribe_and_unknown_app(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    source = {"eventSource": f"channel:{channel_id}"}
    await call(http, fake_ari, "POST", "/applications/shield/subscription", source)
    status, app = await call(http, fake_ari, "DELETE", "/applications/shield/subscription", source)
    assert status == 200 and isinstance(app, dict) and app["channel_ids"] == [channel_id]  # still parked
    missing = (404, {"message": "Application not found"})
    assert await call(http, fake_ari, "POST", "/applications/other/subscription", source) == missing


async def test_rfc4733_duplicate_digit(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    loop = asyncio.get_running_loop()
    await fake_ari.send_dtmf(channel_id, "5", duration_ms=280, duplicate_after=0.065)
    first = await next_event(ws)
    at = loop.time()
    second = await next_event(ws)
    assert loop.time() - at >= 0.05
    assert (first["digit"], second["digit"], second["duration_ms"]) == ("5", "5", 280)


async def test_two_apps_on_one_socket_get_one_copy_each(
    fake_ari: FakeAri, http: Session, sockets: Sockets
) -> None:
    ws = await sockets.open("shield,shieldpeer")
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    assert (await next_event(ws))["application"] == "shield"
    source = {"eventSource": f"channel:{channel.id}"}
    await call(http, fake_ari, "POST", "/applications/shieldpeer/subscription", source)
    await fake_ari.send_dtmf(channel.id, "#")
    assert sorted(str(e["application"]) for e in await events(ws, 2)) == ["shield", "shieldpeer"]


async def test_event_filter(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws = await sockets.open()
    body = {"allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}]}
    status, app = await call(http, fake_ari, "PUT", "/applications/shield/eventFilter", body=body)
    assert status == 200 and isinstance(app, dict) and app["events_allowed"] == body["allowed"]
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    await call(http, fake_ari, "POST", f"/channels/{channel.id}/variable", {"variable": "V", "value": "1"})
    await call(http, fake_ari, "POST", f"/channels/{channel.id}/continue")
    assert [e["type"] for e in await events(ws, 2)] == ["StasisStart", "StasisEnd"]
    bad = await call(http, fake_ari, "PUT", "/applications/shield/eventFilter", body={"allowed": ["x"]})
    assert bad == (400, {"message": "Bad request"})


async def test_newer_websocket_replaces_the_app(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    old = await sockets.open()
    new = await sockets.open()
    replaced = await next_event(old)
    assert replaced["type"] == "ApplicationReplaced" and replaced["application"] == "shield"
    await fake_ari.stasis_start("shield", args=["5551234"])
    assert (await next_event(new))["type"] == "StasisStart"
    await quiet(old)


async def test_set_several_variables_at_once(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    path = f"/channels/{channel_id}/variables"
    body = {"variables": {"A": "1", "B": {"value": "2", "report_events": True}}}
    assert await call(http, fake_ari, "POST", path, body=body) == (204, None)
    assert [e["variable"] for e in await events(ws, 2)] == ["A", "B"]
    assert fake_ari.channel(channel_id).variables == {"A": "1", "B": "2"}
    bad = await call(http, fake_ari, "POST", path, body={"variables": {"A": 1}})
    assert bad == (400, {"message": "Only string values in the 'variables' object allowed"})


async def test_get_variable(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    _, channel_id = await _parked(fake_ari, sockets)
    path = f"/channels/{channel_id}/variable"
    await call(http, fake_ari, "POST", path, {"variable": "V", "value": "x"})
    assert await call(http, fake_ari, "GET", path, {"variable": "V"}) == (200, {"value": "x"})
    assert await call(http, fake_ari, "GET", path, {"variable": "CALLERID(num)"}) == (
        200,
        {"value": "agent1"},
    )
    missing = (404, {"message": "Provided variable was not found"})
    assert await call(http, fake_ari, "GET", path, {"variable": "NOPE"}) == missing


async def test_answer_and_play(fake_ari: FakeAri, http: Session, sockets: Sockets) -> None:
    ws, channel_id = await _parked(fake_ari, sockets)
    assert await call(http, fake_ari, "POST", f"/channels/{channel_id}/answer") == (204, None)
    change = await next_event(ws)
    assert change["type"] == "ChannelStateChange" and isinstance(change["channel"], dict)
    assert change["channel"]["state"] == "Up"
    status, playback = await call(
        http, fake_ari, "POST", f"/channels/{channel_id}/play", {"media": "sound:beep"}
    )
    assert status == 201 and isinstance(playback, dict)
    assert list(playback) == ["id", "media_uri", "target_uri", "language", "state"]
    assert [e["type"] for e in await events(ws, 2)] == ["PlaybackStarted", "PlaybackFinished"]
