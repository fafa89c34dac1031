"""Refusal-to-hangup latency: the agent's last code digit in, the customer's hang-up request out.

    .venv/bin/python bench/capture.py                  # 100 concurrent calls, 5 rounds
    .venv/bin/python bench/capture.py --calls 20 --rounds 2

In one process (the issue's "in-process" target, p99 <= 50 ms): a minimal ARI stub (aiohttp, on
127.0.0.1) answers the REST calls the capture makes (subscription, hang-up, snoop, play) and
records when each hang-up request arrives; :class:`~callshield.ari.capture.KeypadCapture` with the
service's real :class:`~callshield.capture.RefusalRecorder` on a real SQLite store (fsync'd
writes) gets, for N watched calls at once, the ``Dial`` event and then ``*`` and ``9`` digit
events shaped like the captures. Latency per call: from handing over the ``9`` event to the stub
receiving ``DELETE /channels/{customer}``. Prints p50/p99/max per round, best and median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from callshield.ari.capture import KeypadCapture
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.events import parse_event
from callshield.ari.models import parse_channel
from callshield.capture import RefusalRecorder
from callshield.config import ShieldPeriods
from callshield.journal import Journal
from callshield.keypad import KeypadCode
from callshield.models import Scope
from callshield.numbers import NumberRules
from callshield.store.sqlite import SqliteStore

CAPTURES = Path(__file__).resolve().parents[1].parent / "shared" / "asterisk" / "captures"


def channel_json(channel_id: str, name: str, number: str) -> dict[str, Any]:
    return {
        "id": channel_id, "name": name, "state": "Up", "protocol_id": f"call-{channel_id}",
        "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
        "accountcode": "", "creationtime": "2026-11-28T06:38:51.793+0000", "language": "en",
        "dialplan": {"context": "agents", "exten": "s", "priority": 1, "app_name": "Dial", "app_data": ""},
    }  # fmt: skip


class Stub:
    """The REST side of Asterisk for the capture, recording hang-up arrival times."""

    def __init__(self) -> None:
        self.hangups: dict[str, float] = {}
        app = web.Application()
        app.router.add_post("/ari/applications/{app}/subscription", self.subscription)
        app.router.add_delete("/ari/channels/{id}", self.hangup)
        app.router.add_post("/ari/channels/{id}/snoop", self.snoop)
        app.router.add_post("/ari/channels/{id}/play", self.play)
        self.runner = web.AppRunner(app, access_log=None)

    async def start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def subscription(self, request: web.Request) -> web.Response:
        lists = (
            "channel_ids",
            "bridge_ids",
            "endpoint_ids",
            "device_names",
            "events_allowed",
            "events_disallowed",
        )
        body: dict[str, object] = {"name": request.match_info["app"], **{name: [] for name in lists}}
        return web.json_response(body)

    async def hangup(self, request: web.Request) -> web.Response:
        self.hangups[request.match_info["id"]] = time.perf_counter()
        return web.Response(status=204)

    async def snoop(self, request: web.Request) -> web.Response:
        return web.json_response(channel_json("snoop-" + request.match_info["id"], "Snoop/x", ""))

    async def play(self, request: web.Request) -> web.Response:
        playback: dict[str, object] = {"id": "p", "media_uri": "tone:425/300", "target_uri": "channel:x",
                                       "language": "en", "state": "queued"}  # fmt: skip
        return web.json_response(playback, status=201)


def frame(kind: str, agent: str, peer: str, digit: str = "") -> str:
    base = {"timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
            "asterisk_id": "02:fc:00:00:00:01", "application": "callshield"}  # fmt: skip
    body: dict[str, object]
    if kind == "Dial":
        body = {"type": "Dial", "caller": channel_json(agent, "PJSIP/agent", "agent1"),
                "peer": channel_json(peer, "PJSIP/carrier", "13900139000"), "dialstring": "x@carrier",
                "dialstatus": ""}  # fmt: skip
    else:
        body = {"type": "ChannelDtmfReceived", "digit": digit, "duration_ms": 120,
                "channel": channel_json(agent, "PJSIP/agent", "agent1")}  # fmt: skip
    return json.dumps({**body, **base})


async def one_round(capture: KeypadCapture, stub: Stub, calls: int, round_no: int) -> list[float]:
    agents = [(f"a{round_no}-{i}", f"c{round_no}-{i}") for i in range(calls)]
    for i, (agent, _) in enumerate(agents):
        number = f"+86139{round_no:02d}{i:06d}"
        await capture.watch(parse_channel(channel_json(agent, "PJSIP/agent", "agent1")), number, Scope())
    for agent, peer in agents:
        capture.on_event(parse_event(frame("Dial", agent, peer)))
        capture.on_event(parse_event(frame("Dtmf", agent, peer, "*")))
    started: dict[str, float] = {}
    work = []
    for agent, peer in agents:
        event = parse_event(frame("Dtmf", agent, peer, "9"))
        started[peer] = time.perf_counter()
        job = capture.on_event(event)
        assert job is not None, "the code did not match"
        work.append(asyncio.create_task(job))
    await asyncio.gather(*work)
    return [(stub.hangups[peer] - started[peer]) * 1000 for _, peer in agents]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(calls: int, rounds: int) -> None:
    stub = Stub()
    port = await stub.start()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        key = os.urandom(32)
        store = await SqliteStore.open(Path(tmp) / "shield.db", key)
        recorder = RefusalRecorder(store, ShieldPeriods(), Journal(Path(tmp) / "journal", key), "bench")
        client = AriClient(AriConfig(f"http://127.0.0.1:{port}/ari", "u", "p", app="callshield"))
        capture = KeypadCapture(client, recorder, KeypadCode(), NumberRules(), app="callshield", pbx="bench")
        results = []
        try:
            for r in range(rounds):
                latencies = await one_round(capture, stub, calls, r)
                results.append((percentile(latencies, 50), percentile(latencies, 99), max(latencies)))
                p50, p99, top = results[-1]
                print(f"round {r + 1}: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {top:.1f} ms", flush=True)
            stats = await store.stats(datetime.now(UTC))
        finally:
            await client.close()
            await store.close()
    await stub.runner.cleanup()
    p99s = [r[1] for r in results]
    print(f"{calls} concurrent refusals x {rounds} rounds ({stats.entries} entries stored)")
    print(f"p99 best {min(p99s):.1f} ms, median {statistics.median(p99s):.1f} ms (target <= 50 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
