"""REST over the events websocket: :meth:`EventStream.request` against the fake Asterisk (which
answers ``RESTRequest`` frames as res/ari/ari_websocket_requests.c does), and against a scripted
peer for what the fake never does (answers out of order, late, malformed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.events import ChannelVarset, Event
from callshield.ari.websocket import EventStream, rest_response
from callshield.errors import AriRequestError, PeerProtocolError, PeerUnavailable
from fake_ari import FakeAri
from raw_ari import connect, next_event, quiet

APP = "shield"


@pytest.fixture
async def stream(fake_ari: FakeAri, ari_client: AriClient) -> AsyncIterator[EventStream]:
    """The client's events websocket for ``shield``, read in the background (events kept)."""
    async with ari_client.events() as connected:
        await fake_ari.wait_connected(APP)
        reader = asyncio.create_task(_collect(connected))
        yield connected
    await reader


async def _collect(stream: EventStream, seen: list[Event] | None = None) -> None:
    with contextlib.suppress(PeerUnavailable):  # a test that drops the websocket
        async for event in stream:
            if seen is not None:
                seen.append(event)


# -- against the fake ---------------------------------------------------------------------------


async def test_a_hangup_over_the_websocket_is_the_http_one(
    fake_ari: FakeAri, ari_client: AriClient, stream: EventStream
) -> None:
    over_ws, over_http = await fake_ari.create_channel(), await fake_ari.create_channel()
    await ari_client.hangup(over_ws.id, reason_code=21, over=stream)
    await ari_client.hangup(over_http.id, reason_code=21)
    assert (over_ws.hangup_cause, over_http.hangup_cause) == (21, 21)
    [ws_request] = fake_ari.requests_to("DELETE", via="websocket")
    [http_request] = fake_ari.requests_to("DELETE", via="http")
    assert (ws_request.path, ws_request.params, ws_request.status) == (
        f"/channels/{over_ws.id}",
        {"reason_code": "21"},
        204,
    )
    assert http_request.path == f"/channels/{over_http.id}"
    [answer] = fake_ari.rest_responses
    assert answer.event["status_code"] == 204 and answer.event["uri"] == f"channels/{over_ws.id}"


async def test_error_statuses_are_the_errors_of_http(
    fake_ari: FakeAri, ari_client: AriClient, stream: EventStream
) -> None:
    with pytest.raises(AriRequestError) as gone:
        await ari_client.hangup("no-such-channel", reason_code=21, over=stream)
    with pytest.raises(AriRequestError) as over_http:
        await ari_client.hangup("no-such-channel", reason_code=21)
    assert (
        str(gone.value)
        == str(over_http.value)
        == "ARI DELETE /channels/no-such-channel answered 404: Channel not found"
    )
    assert gone.value.is_gone
    with pytest.raises(AriRequestError) as invalid:
        await stream.request("DELETE", "/channels/x", {"reason": "not-a-reason"})
    assert (invalid.value.status, invalid.value.message) == (400, "Invalid reason for hangup reason provided")


async def test_a_ping_is_answered_and_timed_out_on_an_older_asterisk(
    fake_ari: FakeAri, ari_client: AriClient, stream: EventStream
) -> None:
    status, body = await stream.request("GET", "/asterisk/ping")
    assert status == 200 and json.loads(body)["ping"] == "pong"
    fake_ari.rest_over_websocket = False
    with pytest.raises(PeerUnavailable, match=r"no answer within 0\.1 s"):
        await ari_client.ping(over=stream, time_limit=0.1)


async def test_a_lost_websocket_fails_the_requests_waiting(
    fake_ari: FakeAri, ari_client: AriClient, stream: EventStream
) -> None:
    fake_ari.add_fault(method="GET", path="/asterisk/ping", hang=True, via="websocket")
    waiting = asyncio.create_task(stream.request("GET", "/asterisk/ping", time_limit=5.0))
    await asyncio.sleep(0.05)
    await fake_ari.drop_websockets()
    with pytest.raises(PeerUnavailable, match="lost before the answer"):
        await asyncio.wait_for(waiting, 1.0)
    with pytest.raises(PeerUnavailable, match="not connected"):
        await stream.request("GET", "/asterisk/ping")


# -- the fake as Asterisk: raw frames ---------------------------------------------------------


async def _answer(ws: aiohttp.ClientWebSocketResponse, request: object) -> dict[str, object]:
    await ws.send_str(request if isinstance(request, str) else json.dumps(request))
    return await next_event(ws)


async def test_the_fake_answers_as_asterisk_does(http: aiohttp.ClientSession, fake_ari: FakeAri) -> None:
    ws = await connect(http, fake_ari)
    channel = await fake_ari.create_channel()
    request = {"type": "RESTRequest", "transaction_id": "t", "request_id": "r1", "method": "DELETE"}
    answer = await _answer(ws, {**request, "uri": f"channels/{channel.id}?reason_code=21"})
    assert list(answer) == [
        "type", "transaction_id", "request_id", "status_code", "reason_phrase", "uri",
        "application", "timestamp", "asterisk_id",
    ]  # fmt: skip
    assert (answer["transaction_id"], answer["request_id"], answer["status_code"]) == ("t", "r1", 204)
    assert (answer["reason_phrase"], answer["uri"]) == ("No Content", f"channels/{channel.id}")
    assert channel.hangup_cause == 21
    gone = await _answer(ws, {**request, "uri": f"channels/{channel.id}"})
    assert (gone["status_code"], gone["reason_phrase"], gone["content_type"]) == (
        404,
        "Not Found",
        "application/json",
    )
    assert json.loads(str(gone["message_body"])) == {"message": "Channel not found"}
    await ws.close()


def _req(**fields: object) -> dict[str, object]:
    return {"type": "RESTRequest", "request_id": "r", **fields}


PING = "asterisk/ping"
BAD = "Bad request"


@pytest.mark.parametrize(
    ("frame", "status", "reason", "message"),
    [
        ("{not json", 400, "Failed to parse request message JSON", None),
        ({"request_id": "r"}, 400, BAD, "No 'type' property."),
        ({"type": "RESTHandshakeRequest", "request_id": "r"}, 400, BAD, "Unknown request type."),
        (_req(method="GET"), 400, BAD, "Empty or missing 'uri' property."),
        (_req(uri=PING), 400, BAD, "Unknown or missing 'method' property."),
        (_req(method="GET", uri=PING, query_strings={}), 400, BAD, "Unable to parse 'query_strings' array."),
        (_req(method="GET", uri=PING, message_body="{}"), 400, BAD, "No 'content_type' for 'message_body'."),
        (_req(method="GET", uri="nowhere"), 404, "Not Found", "Resource not found"),
        (_req(method="PUT", uri=PING), 405, "Method Not Allowed", "Invalid method"),
        (_req(method="GET", uri="/" + PING), 405, "Method Not Allowed", "Invalid method"),
        (_req(method="DELETE", uri="channels/x", query_strings=[{"name": "reason_cod", "value": "21"}]),
         400, "Bad Request", "Unknown parameter 'reason_cod' for hangup"),
    ],
    ids=[
        "not-json", "no-type", "other-type", "no-uri", "no-method", "bad-query-strings", "no-content-type",
        "unknown-path", "wrong-method", "leading-slash", "unknown-param",
    ],
)  # fmt: skip
async def test_the_fake_refuses_what_asterisk_refuses(
    http: aiohttp.ClientSession,
    fake_ari: FakeAri,
    frame: object,
    status: int,
    reason: str,
    message: str | None,
) -> None:
    ws = await connect(http, fake_ari)
    answer = await _answer(ws, frame)
    assert (answer["status_code"], answer["reason_phrase"]) == (status, reason)
    assert answer["request_id"] == ("" if isinstance(frame, str) else "r")
    body = answer.get("message_body")
    assert (None if body is None else json.loads(str(body))["message"]) == message
    await ws.close()


async def test_the_answer_goes_through_the_event_filter(
    http: aiohttp.ClientSession, fake_ari: FakeAri
) -> None:
    ws = await connect(http, fake_ari)
    ping = {"type": "RESTRequest", "request_id": "r", "method": "GET", "uri": "asterisk/ping"}
    filter_path = f"{fake_ari.url}/applications/{APP}/eventFilter"
    async with http.put(filter_path, json={"allowed": [{"type": "Dial"}]}) as put:
        assert put.status == 200
    await ws.send_str(json.dumps(ping))
    await quiet(ws, 0.2)  # dropped by the filter: Asterisk never sends it
    async with http.put(filter_path, json={"allowed": [{"type": "Dial"}, {"type": "RESTResponse"}]}) as put:
        assert put.status == 200
    answer = await _answer(ws, ping)
    assert answer["status_code"] == 200 and json.loads(str(answer["message_body"]))["ping"] == "pong"
    assert [r.status for r in fake_ari.requests_to("GET", "/asterisk/ping", via="websocket")] == [200, 200]
    await ws.close()


async def test_an_older_asterisk_never_answers(http: aiohttp.ClientSession, fake_ari: FakeAri) -> None:
    fake_ari.rest_over_websocket = False
    ws = await connect(http, fake_ari)
    await ws.send_str(
        json.dumps({"type": "RESTRequest", "request_id": "r", "method": "GET", "uri": "asterisk/ping"})
    )
    await ws.send_str("{not json")
    await quiet(ws, 0.2)
    assert fake_ari.requests_to(via="websocket") == [] and fake_ari.rest_responses == []
    await ws.close()


# -- against a scripted peer ------------------------------------------------------------------


def answer_to(request: dict[str, object], status: int, **extra: object) -> str:
    """A RESTResponse as Asterisk writes it (compact, ``type`` first)."""
    uri = str(request["uri"]).partition("?")[0]
    fields = {"type": "RESTResponse", "transaction_id": "", "request_id": request["request_id"]}
    fields.update(status_code=status, reason_phrase="x", uri=uri, **extra)
    fields.update(application=APP, timestamp="2026-11-28T06:38:51.793+0000", asterisk_id="02:fc:00:00:00:01")
    return json.dumps(fields, separators=(",", ":"))


VARSET = json.dumps({
    "variable": "V", "value": "RESTResponse", "type": "ChannelVarset",
    "timestamp": "2026-11-28T06:38:51.793+0000", "asterisk_id": "02:fc:00:00:00:01", "application": APP,
})  # fmt: skip
"""An event whose value happens to be the word: still an event."""


@asynccontextmanager
async def scripted(script: Callable[[web.WebSocketResponse], object]) -> AsyncIterator[AriClient]:
    """A loopback peer whose events websocket runs ``script`` (a coroutine function); a client on it."""

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await script(ws)  # type: ignore[misc]
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ari/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/ari"
    try:
        async with AriClient(AriConfig(url, "u", "p", app=APP, request_timeout=1.0)) as client:
            yield client
    finally:
        await runner.cleanup()


async def _requests(ws: web.WebSocketResponse, count: int) -> list[dict[str, object]]:
    got: list[dict[str, object]] = []
    while len(got) < count:
        msg = await ws.receive()
        got.append(json.loads(msg.data))
    return got


async def test_several_requests_in_flight_get_their_own_answers() -> None:
    seen: list[dict[str, object]] = []

    async def reverse(ws: web.WebSocketResponse) -> None:
        requests = await _requests(ws, 3)
        seen.extend(requests)
        for request, status in zip(reversed(requests), (204, 404, 200), strict=True):
            await ws.send_str(
                answer_to(request, status, content_type="application/json", message_body='{"message":"m"}')
            )
        await ws.send_str(VARSET)
        await asyncio.sleep(0.2)

    events: list[Event] = []
    async with scripted(reverse) as client, client.events() as stream:
        reader = asyncio.create_task(_collect(stream, events))
        calls = [stream.request("DELETE", f"/channels/c{n}", {"reason_code": "21"}) for n in range(3)]
        first, second, third = await asyncio.gather(*calls, return_exceptions=True)
        await stream.close()
        await reader
    ids = [r["request_id"] for r in seen]
    assert len(set(ids)) == 3
    assert [r["uri"] for r in seen] == [f"channels/c{n}?reason_code=21" for n in range(3)]
    assert first == (200, '{"message":"m"}')  # answered last
    assert isinstance(second, AriRequestError) and (second.status, second.path) == (404, "/channels/c1")
    assert third == (204, '{"message":"m"}')
    assert [type(e) for e in events] == [ChannelVarset]  # answers are never events


async def test_a_late_answer_is_dropped_and_a_malformed_one_skipped() -> None:
    async def late(ws: web.WebSocketResponse) -> None:
        [request] = await _requests(ws, 1)
        await asyncio.sleep(0.3)
        await ws.send_str(answer_to(request, 204))  # after the request gave up
        await ws.send_str('{"type":"RESTResponse","request_id":"9"}')  # no status_code
        await ws.send_str(VARSET)
        await asyncio.sleep(0.2)

    events: list[Event] = []
    async with scripted(late) as client, client.events() as stream:
        reader = asyncio.create_task(_collect(stream, events))
        with pytest.raises(PeerUnavailable, match=r"no answer within 0\.1 s"):
            await stream.request("GET", "/asterisk/ping", time_limit=0.1)
        await asyncio.sleep(0.4)
        await stream.close()
        await reader
    assert [type(e) for e in events] == [ChannelVarset]
    assert stream.malformed == 1


def test_rest_response_reads_only_rest_responses() -> None:
    assert rest_response(VARSET) is None
    assert rest_response("{not json") is None
    read = rest_response(answer_to({"request_id": "7", "uri": "channels/1.2?reason_code=21"}, 204))
    assert read is not None and (read.request_id, read.status_code, read.uri) == ("7", 204, "channels/1.2")
    with pytest.raises(PeerProtocolError, match=r"RESTResponse\.status_code"):
        rest_response('{"type":"RESTResponse","transaction_id":"","request_id":"7","status_code":"204"}')
