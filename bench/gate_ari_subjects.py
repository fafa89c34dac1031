"""The two subjects of the ARI gate benchmark; ``gate_ari.py`` runs each as its own process.

``callshield``: the service's ARI gate as ``callshield serve`` builds it: ``SqliteStore`` +
``Gate(store, NumberRules())`` + ``StasisApp`` on an ``AriClient``, logging configured like
``serve`` (``--log-level``, INFO by default: one line per decision). The gate alone: no keypad
capture (serve's default adds a channel subscription per allowed call), no guard ledger.

``floor``: a bare aiohttp client doing the same protocol work with no shield work: one
websocket, ``json.loads`` of every frame, and for each StasisStart the same REST calls for the
same verdict (``POST .../variable`` SHIELD_UNTIL for a shielded number, then ``POST
.../continue?label=...``) on one session with the same pool size (16) and basic auth.
Which numbers are shielded it takes from the calls file, not from the store. It gets the same
transport-level tuning as callshield's REST client, which any bare client could use: the
``Authorization`` header built once, and request URLs built from their parts (``URL.build``
with the already quoted path, then ``extend_query``) instead of parsed from text per request.

Both print ``ready`` once their websocket is up and serve until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
from urllib.parse import quote

import aiohttp
from callshield import logsetup
from callshield.ari.app import StasisApp
from callshield.ari.client import AriClient, AriConfig
from callshield.gate import Gate
from callshield.numbers import NumberRules
from callshield.store.sqlite import SqliteStore
from gate_serve import announce, profiled, run_subject, subject_arguments, until_stopped
from gate_workload import load_key, read_calls
from yarl import URL

USERNAME, PASSWORD = "shield", "shieldpass"
POOL = 16
"""Connections per REST session: ``AriConfig.max_connections``'s default, for both subjects."""


async def serve_callshield(args: argparse.Namespace) -> None:
    logsetup.configure(args.log_level)  # as `callshield serve` does
    store = await SqliteStore.open(args.store, load_key(args.key_file), create=False)
    gate = Gate(store, NumberRules())
    app = StasisApp(
        "bench", AriClient(AriConfig(args.url, USERNAME, PASSWORD, app=args.app)), gate, app=args.app
    )
    runner = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.connected.wait(), 30)
        announce()
        with profiled(args.profile):
            await until_stopped(args.max_seconds)
        await app.stop()
        await runner
    finally:
        runner.cancel()
        await store.close()
    logging.getLogger("bench").warning("decisions: %s", dict(gate.counts))


class Floor:
    """The bare client: a websocket reader and the REST calls, nothing else."""

    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
        self.root = args.url.rstrip("/")
        parsed = URL(self.root)
        self.origin = parsed.scheme, parsed.raw_authority, parsed.raw_path
        self.app = args.app
        self.until = args.until
        self.blocked = {c.number for c in read_calls(args.calls) if c.blocked}
        self.session = session
        token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.tasks: set[asyncio.Task[None]] = set()
        self.decisions = 0

    async def events(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event.get("type") == "StasisStart":
                task = asyncio.create_task(self.decide(event["channel"]["id"], event["args"][1]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def url(self, channel: str, action: str, params: dict[str, str]) -> URL:
        scheme, authority, root = self.origin
        path = f"{root}/channels/{quote(channel, safe='')}/{action}"
        return URL.build(scheme=scheme, authority=authority, path=path, encoded=True).extend_query(params)

    async def decide(self, channel: str, number: str) -> None:
        label = "allow-clean"
        if number in self.blocked:
            params = {"variable": "SHIELD_UNTIL", "value": self.until}
            async with self.session.post(self.url(channel, "variable", params), headers=self.headers) as r:
                await r.read()
            label = "block-shielded"
        async with self.session.post(
            self.url(channel, "continue", {"label": label}), headers=self.headers
        ) as r:
            await r.read()
        self.decisions += 1


async def serve_floor(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=POOL, keepalive_timeout=10.0)
    async with aiohttp.ClientSession(connector=connector) as session:
        floor = Floor(args, session)
        ws_url = floor.root.replace("http://", "ws://", 1) + "/events"
        query = {"app": args.app, "api_key": f"{USERNAME}:{PASSWORD}"}
        ws = await session.ws_connect(ws_url, params=query, heartbeat=10.0)
        reader = asyncio.create_task(floor.events(ws))
        announce()
        await until_stopped(args.max_seconds)
        await ws.close()
        await reader
        if floor.tasks:
            await asyncio.wait(set(floor.tasks), timeout=5)
    print(f"floor decisions: {floor.decisions}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="ARI root, http://127.0.0.1:PORT/ari")
    parser.add_argument("--app", required=True)
    subject_arguments(parser)
    run_subject(parser.parse_args(), serve_callshield, serve_floor)


if __name__ == "__main__":
    main()
