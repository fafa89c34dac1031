"""Raw aiohttp access to the fake ARI server, to test the fake without callshield's client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from fake_ari import FakeAri


def ws_params(fake: FakeAri, apps: str = "shield", *, subscribe_all: bool = False) -> dict[str, str]:
    """Query of an events websocket with valid credentials."""
    params = {"app": apps, "api_key": f"{fake.username}:{fake.password}"}
    if subscribe_all:
        params["subscribeAll"] = "true"
    return params


async def connect(
    session: aiohttp.ClientSession, fake: FakeAri, apps: str = "shield", *, subscribe_all: bool = False
) -> aiohttp.ClientWebSocketResponse:
    """Open an events websocket and wait until the fake registered it."""
    ws = await session.ws_connect(
        f"{fake.url}/events", params=ws_params(fake, apps, subscribe_all=subscribe_all)
    )
    for app in apps.split(","):
        await fake.wait_connected(app)
    return ws


async def next_event(ws: aiohttp.ClientWebSocketResponse, within: float = 1.0) -> dict[str, object]:
    """The next event frame, decoded."""
    msg = await ws.receive(timeout=within)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    event: dict[str, object] = json.loads(msg.data)
    return event


async def events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, object]]:
    """The next ``count`` event frames."""
    return [await next_event(ws) for _ in range(count)]


async def quiet(ws: aiohttp.ClientWebSocketResponse, within: float = 0.05) -> None:
    """Fail if an event arrives within ``within`` seconds."""
    try:
        msg = await ws.receive(timeout=within)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {msg.data!r}")


async def call(
    session: aiohttp.ClientSession,
    fake: FakeAri,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    body: object = None,
) -> tuple[int, object]:
    """One REST call (basic auth of the session); returns status and decoded JSON (or None)."""
    data = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if body is not None else None
    async with session.request(method, fake.url + path, params=params, data=data, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


async def sleep_a_little() -> None:
    """Give background event tasks a chance to run."""
    await asyncio.sleep(0.01)


class Sockets:
    """Opens events websockets on the fake and keeps them (and closes them) for a test."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeAri) -> None:
        self._session = session
        self._fake = fake
        self._open: list[aiohttp.ClientWebSocketResponse] = []

    async def open(
        self, apps: str = "shield", *, subscribe_all: bool = False
    ) -> aiohttp.ClientWebSocketResponse:
        """A connected events websocket for ``apps``."""
        ws = await connect(self._session, self._fake, apps, subscribe_all=subscribe_all)
        self._open.append(ws)
        return ws

    async def close(self) -> None:
        """Close every websocket opened."""
        for ws in self._open:
            await ws.close()
