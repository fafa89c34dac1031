"""The fake ARI server rejects what the ARI 10 spec (and a real Asterisk 22) rejects."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from callshield.ari.rest import basic_auth
from fake_ari import FakeAri
from fake_ari_spec import SPEC_DIR, AriSpec, Operation, Route
from raw_ari import call, connect, next_event, ws_params

SPEC = AriSpec.load()


def test_spec_is_the_shared_one() -> None:
    assert SPEC_DIR.resolve().parts[-3:] == ("shared", "asterisk", "ari-api-docs")
    assert SPEC.api_version == "10.0.0"
    assert len(SPEC.operations()) == 109


@pytest.mark.parametrize("operation", SPEC.operations(), ids=lambda op: f"{op.method} {op.path}")
def test_every_spec_operation_is_routed(operation: Operation) -> None:
    path = operation.path
    for param in operation.params:
        if param.kind == "path":
            path = path.replace("{" + param.name + "}", "x-1")
    route = SPEC.match(operation.method, path)
    assert isinstance(route, Route)
    assert route.operation == operation


async def test_unauthenticated_requests_get_401(fake_ari: FakeAri) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/channels", "/no/such/thing"):
            async with anonymous.get(fake_ari.url + path) as response:
                assert response.status == 401
                assert await response.json() == {"message": "Authentication required"}
                assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        wrong = {"Authorization": basic_auth(fake_ari.username, "nope")}
        async with anonymous.get(fake_ari.url + "/channels", headers=wrong) as response:
            assert response.status == 401


async def test_api_key_authenticates_rest_too(fake_ari: FakeAri) -> None:
    async with aiohttp.ClientSession() as session:
        params = {"api_key": f"{fake_ari.username}:{fake_ari.password}"}
        async with session.get(fake_ari.url + "/channels", params=params) as response:
            assert response.status == 200
            assert await response.json() == []
    assert fake_ari.requests[-1].params == {"api_key": "<redacted>"}


REJECTED = [
    ("GET", "/nosuch", None, 404, "Resource not found"),
    ("GET", "/channels/1.2/variable/extra", {"variable": "A"}, 404, "Resource not found"),
    ("GET", "/channels/", None, 404, "ARI URLs do not end with a slash. Try /ari/channels"),
    ("PUT", "/channels/1.2/continue", None, 405, "Invalid method"),
    ("DELETE", "/applications/shield", None, 405, "Invalid method"),
    ("POST", "/channels/1.2/variable", None, 400, "Variable name is required"),
    ("GET", "/channels/1.2/variable", None, 400, "Variable name is required"),
    ("POST", "/applications/shield/subscription", None, 400, "Missing parameter eventSource"),
    ("POST", "/channels/1.2/play", None, 400, "Missing required parameter 'media'"),
    ("DELETE", "/channels/1.2", {"reason": "bogus"}, 400, "Invalid reason for hangup reason provided"),
    ("POST", "/channels/1.2/continue", {"priority": "abc"}, 400, "Invalid value for parameter 'priority'"),
    ("POST", "/channels/1.2/variable", {"variable": "A", "report_events": "maybe"}, 400, "expected boolean"),
    ("POST", "/channels/1.2/mute", {"direction": "sideways"}, 400, "not one of both, in, out"),
    ("POST", "/channels/1.2/dial", {"timeout": "-1"}, 400, "below minimum 0"),
    ("POST", "/channels/1.2/continue", {"contxt": "x"}, 400, "Unknown parameter 'contxt'"),
    ("POST", "/channels/1.2/variables", None, 400, "Missing variables parameter"),
    ("GET", "/asterisk/info", None, 501, "Method not implemented"),
]


@pytest.mark.parametrize(("method", "path", "params", "status", "message"), REJECTED)
async def test_rejected_requests(
    fake_ari: FakeAri,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    params: dict[str, str] | None,
    status: int,
    message: str,
) -> None:
    got_status, body = await call(http, fake_ari, method, path, params)
    assert got_status == status
    assert isinstance(body, dict) and message in str(body["message"])
    recorded = fake_ari.requests[-1]
    assert (recorded.method, recorded.status) == (method, status)


async def test_405_names_the_allowed_methods(fake_ari: FakeAri, http: aiohttp.ClientSession) -> None:
    async with http.put(fake_ari.url + "/channels/1.2") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "DELETE, GET, POST"


async def test_unknown_parameters_pass_when_not_strict() -> None:
    async with FakeAri(strict_params=False) as fake, aiohttp.ClientSession() as session:
        channel = await fake.create_channel()
        params = {"api_key": f"{fake.username}:{fake.password}", "contxt": "x"}
        async with session.delete(f"{fake.url}/channels/{channel.id}", params=params) as response:
            assert response.status == 204


async def test_percent_encoded_ids_are_decoded(fake_ari: FakeAri, http: aiohttp.ClientSession) -> None:
    channel = await fake_ari.create_channel(id="odd/id")
    status, body = await call(http, fake_ari, "GET", "/channels/odd%2Fid")
    assert status == 200 and isinstance(body, dict) and body["id"] == "odd/id"
    assert fake_ari.requests[-1].path == "/channels/odd/id"
    assert fake_ari.channel("odd/id") is channel


async def test_websocket_needs_credentials_and_app(fake_ari: FakeAri) -> None:
    url = fake_ari.url + "/events"
    async with aiohttp.ClientSession() as session:
        for params, status in (
            ({"app": "shield"}, 401),
            ({"app": "shield", "api_key": "shield:wrong"}, 401),
            ({"api_key": "shield:shieldpass"}, 400),
            ({"app": "shield", "api_key": "shield:shieldpass", "subscribeAll": "perhaps"}, 400),
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await session.ws_connect(url, params=params)
            assert caught.value.status == status
        ws = await session.ws_connect(url, params=ws_params(fake_ari))
        assert fake_ari.app_connected("shield")
        await ws.close()
    handshake = fake_ari.requests_to("GET", "/events")[-1]
    assert handshake.status == 101 and handshake.params["api_key"] == "<redacted>"


async def test_websocket_also_takes_basic_auth_like_asterisk(
    fake_ari: FakeAri, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(fake_ari.url + "/events", params={"app": "shield"})
    await fake_ari.wait_connected("shield")
    await ws.close()


async def test_faults(fake_ari: FakeAri, http: aiohttp.ClientSession) -> None:
    fake_ari.add_fault(method="GET", path="/channels", status=500, message="boom")
    assert await call(http, fake_ari, "GET", "/channels") == (500, {"message": "boom"})
    assert await call(http, fake_ari, "GET", "/channels") == (200, [])
    fault = fake_ari.add_fault(path="/channels/*", status=503, times=None)
    for _ in range(3):
        assert (await call(http, fake_ari, "GET", "/channels/1.2"))[0] == 503
    assert fault.hits == 3
    fake_ari.clear_faults()
    fake_ari.add_fault(path="/channels", disconnect=True, times=None)  # aiohttp retries a GET once
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, fake_ari, "GET", "/channels")


async def test_hanging_request_is_released_on_close() -> None:
    async with FakeAri() as fake, aiohttp.ClientSession() as session:
        fake.add_fault(path="/channels", hang=True)
        auth = {"Authorization": basic_auth(fake.username, fake.password)}
        with pytest.raises(TimeoutError):
            timeout = aiohttp.ClientTimeout(total=0.2)
            await session.get(fake.url + "/channels", headers=auth, timeout=timeout)


async def test_delay_fault_delays(fake_ari: FakeAri, http: aiohttp.ClientSession) -> None:
    fake_ari.add_fault(path="/channels", delay=0.1)
    loop_time = asyncio.get_running_loop().time
    started = loop_time()
    assert (await call(http, fake_ari, "GET", "/channels"))[0] == 200
    assert loop_time() - started >= 0.1


async def test_every_event_is_shaped_like_a_capture(fake_ari: FakeAri, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, fake_ari, subscribe_all=True)
    channel = await fake_ari.stasis_start("shield", args=["5551234"])
    first = await next_event(ws)
    assert first["type"] == "ChannelCreated"
    assert list(first) == ["type", "timestamp", "channel", "asterisk_id", "application"]
    start = await next_event(ws)
    assert list(start) == ["type", "timestamp", "args", "channel", "asterisk_id", "application"]
    assert start["args"] == ["5551234"]
    assert start["channel"] == channel.snapshot()
    await ws.close()
