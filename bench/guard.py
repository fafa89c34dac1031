"""Benchmark: the guard on the full event stream of a busy PBX, against a bare websocket reader.

A source process (pinned to one core when there are two) serves the few ARI operations the guard
uses (events websocket, ``GET /channels``, ``DELETE /channels/{id}``, and REST requests on the
events websocket as Asterisk 22.4+ answers them: the guard's probe, then its hang-ups, which go
there once the probe is answered) and writes event frames cut
from ``dtmf_subscribe_all.jsonl`` (an agent's ``Dial()`` to the carrier): 20 frames per call,
one outbound leg per call (3 ``Dial`` events, 2 ``ChannelDestroyed``, 15 others: ChannelVarset,
ChannelCreated, bridges, DTMF, ...), fresh channel ids and a fresh number per call. Calls are 50%
gated (the ledger holds them), 45% bypasses to clean numbers, 5% bypasses to shielded numbers
(hung up, audited). Each pass's frames are encoded before the first goes out, then written as
fast as TCP takes them (built on the fly, they capped every reader at the source's pace, about
450,000 frames/s: the floor measured before was the source's).

Measured in this process (the other core), in interleaved passes over the same frames:

* floor: a bare aiohttp websocket reader (``receive()`` until N text frames);
* stream: the guard's event stream alone (``GuardStream``: other types dropped on a ``"type"``
  match, ``Dial`` progress dropped unparsed, a leg's start read lean; sharing the pass's legs, as
  the guard shares its ringing legs, so a known leg's answer ends its entry and is dropped too);
* guard: ``GuardApp`` (no server-side event filter: it gets every frame) + ``Gate`` + a real
  ``SqliteStore``, until every leg of the pass is decided and every blocked one hung up and its
  audit record written (timed to the decisions only, a pass left most of its records to be
  written during the next subject's: 880 of 1,015 when an append took four crossings);
* guard/F: the guard fed only what Asterisk sends under the guard's event filter (its types,
  ``Dial`` and ``ApplicationReplaced``: 3 frames of 20 per call), counted in PBX events;

and prints events/s (best and median), guard/floor (target >= 0.5x, and >= 20,000 events/s),
and for the guard subjects the time from a shielded leg's ``Dial`` handled to its hang-up
request under that flood (the guard saturated). Then the time from the ``Dial`` event to the
hang-up request of a shielded bypass (target p99 <= 5 ms): in-process (the guard handled the
Dial -> it calls DELETE) and end to end (the source wrote the Dial frame -> it read the DELETE),
idle (one call at a time) and under load (a paced background stream of ``--load-rate``
events/s). Nothing is asserted.

    .venv/bin/python bench/guard.py                      # 20,000 calls (400,000 events) x 3
    .venv/bin/python bench/guard.py --calls 2000 --repeats 1 --latency-calls 100   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import logging
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from callshield import logsetup, models
from callshield.ari.capture import KeypadCapture
from callshield.ari.client import AriClient, AriConfig, HangupReason
from callshield.ari.events import Dial, Event
from callshield.ari.guard import GUARD_EVENTS, EventHook, GateLedger, GuardApp, seen_of
from callshield.ari.guard_legs import LegMatcher
from callshield.ari.guard_stream import DialSeen, GuardStream
from callshield.ari.websocket import EventStream
from callshield.capture import RefusalRecorder
from callshield.config import ShieldPeriods
from callshield.gate import Gate
from callshield.guard_config import GuardSettings
from callshield.journal import Journal
from callshield.keypad import KeypadCode
from callshield.models import Scope
from callshield.numbers import NumberRules
from callshield.service import DIALER_EVENTS
from callshield.store.base import NewEntry
from callshield.store.sqlite import SqliteStore

CAPTURE = Path(__file__).resolve().parents[2] / "shared/asterisk/captures/dtmf_subscribe_all.jsonl"
PICK = (0, 1, 2, 3, 14, 15, 16, 19, 21, 24, 25, 27, 31, 34, 36, 37, 50, 62, 76, 84)
"""Frames of the capture that make one call (indices among its event frames)."""
FIRST_DIAL = PICK.index(19)
AGENT, PEER, NUMBER = "1795849090.0", "1795849090.1", "5557001"
END = "1795849999.0"
"""The peer of the ``Dial`` that ends every pass: an agent's phone, no outbound leg (the guard
reads it and has nothing to do); a reader has handled the pass when it has handled this."""
KINDS = (("gated", 0.50), ("clean", 0.45), ("shielded", 0.05))
ASTERISK_ID, STAMP = "02:fc:00:00:00:01", "2026-11-28T06:38:51.793+0000"
"""What the source's ``RESTResponse`` frames carry (REST over the websocket)."""
PROBE_EVERY = 20
"""Under load, every PROBE_EVERY-th call is a shielded bypass (one per 400 events)."""
SETTINGS = GuardSettings(enabled=True, trunks=frozenset({"PJSIP/carrier"}))
OUT = Path(__file__).resolve().parent / "out"
LEGEND = """\
  floor:   bare aiohttp websocket reader (receive() only)
  stream:  GuardStream as the guard opens it (no hooks, the legs shared), nothing done with the events
  guard:   GuardApp as shipped on every frame (no server-side event filter, no hooks)
  guard/F: GuardApp fed what Asterisk sends with the guard's event filter (3 of 20 frames);
           counted in PBX events (20 per call), not frames received
  guard+capture/F: the same with the dialer keypad capture on its connection, as serve runs it
           by default ([capture] enabled): its event types too (8 of 20 frames, parsed in full)"""


@dataclass(frozen=True)
class Call:
    agent: str
    peer: str
    number: str
    kind: str


def plan(calls: int, seed: int, prefix: str, kinds: tuple[tuple[str, float], ...] = KINDS) -> list[Call]:
    rng = random.Random(seed)
    names, weights = zip(*kinds, strict=True)
    first = {"gated": "137", "clean": "139", "shielded": "138"}
    return [
        Call(f"{prefix}.{2 * i}", f"{prefix}.{2 * i + 1}", f"{first[k]}{rng.randrange(10**8):08d}", k)
        for i, k in enumerate(rng.choices(names, weights, k=calls))
    ]


def frame_types() -> list[str]:
    raws = [json.loads(line)["raw"] for line in CAPTURE.read_text().splitlines() if '"event"' in line]
    return [str(json.loads(raws[index])["type"]) for index in PICK]


GUARD_PICKS = [i for i, t in enumerate(frame_types()) if t in GUARD_EVENTS]
CAPTURE_PICKS = [i for i, t in enumerate(frame_types()) if t in GUARD_EVENTS | DIALER_EVENTS]
"""What Asterisk sends the guard's connection when it also carries the keypad capture (serve's
default, ``[capture] enabled = true``): the event filter asks for the capture's types too."""


def templates() -> list[str]:
    raws = [json.loads(line)["raw"] for line in CAPTURE.read_text().splitlines() if '"event"' in line]
    out = []
    for index in PICK:
        text = raws[index].replace("{", "{{").replace("}", "}}")
        out.append(text.replace(AGENT, "{a}").replace(PEER, "{p}").replace(NUMBER, "{n}"))
    return out


def ws_frame(text: str) -> bytes:
    """An unmasked websocket text frame (server to client)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return b"\x81" + bytes([n]) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


# -- the source process -----------------------------------------------------------------------


@dataclass
class EventSource:
    flood: list[Call]
    latency: list[Call]
    load: list[Call]
    load_rate: float
    frames: list[str] = field(default_factory=templates)
    sent_at: dict[str, float] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, asyncio.Event] = field(default_factory=dict)

    def call_frames(self, call: Call, picks: range | list[int] | None = None) -> list[bytes]:
        chosen = range(len(self.frames)) if picks is None else picks
        return [ws_frame(self.frames[i].format(a=call.agent, p=call.peer, n=call.number)) for i in chosen]

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        reader = asyncio.create_task(self._requests(ws, transport, request.query["app"]))
        scenarios = {
            "idle": self._idle,
            "load": self._load,
            "filtered": self._filtered,
            "capture": self._capture,
        }
        await scenarios.get(request.query["app"], self._flood)(transport)
        await _write(transport, self.end_frame())
        await reader
        return ws

    def end_frame(self) -> bytes:
        """The ``Dial`` that ends a pass (:data:`END`): a call's first, to an agent's phone."""
        text = self.frames[FIRST_DIAL].format(a=AGENT, p=END, n="5557001")
        return ws_frame(text.replace("PJSIP/carrier-00000001", "PJSIP/agent9-00000001"))

    async def _flood(self, transport: asyncio.BaseTransport, picks: range | list[int] | None = None) -> None:
        """The whole pass, encoded before the first frame goes out: the readers are timed from their
        first frame, and building frames on the fly would cap every one of them at the source's pace."""
        chunks, chunk = [], bytearray()
        for call in self.flood:
            chunk += b"".join(self.call_frames(call, picks))
            if len(chunk) > 65536:
                chunks.append(bytes(chunk))
                chunk.clear()
        chunks.append(bytes(chunk))
        for data in chunks:
            await _write(transport, data)

    async def _capture(self, transport: asyncio.BaseTransport) -> None:
        """The flood as Asterisk sends it to a guard that carries the keypad capture."""
        await self._flood(transport, CAPTURE_PICKS)

    async def _filtered(self, transport: asyncio.BaseTransport) -> None:
        """The flood as Asterisk sends it with the guard's event filter: its 5 frames of 20 per call."""
        await self._flood(transport, GUARD_PICKS)

    async def _idle(self, transport: asyncio.BaseTransport) -> None:
        for call in self.latency:
            frames = self.call_frames(call)
            self.deleted[call.peer] = asyncio.Event()
            await _write(transport, b"".join(frames[:FIRST_DIAL]))
            self.sent_at[call.peer] = time.perf_counter()
            await _write(transport, frames[FIRST_DIAL])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.deleted[call.peer].wait(), 1.0)
            await _write(transport, b"".join(frames[-2:]))
            await asyncio.sleep(0.002)

    async def _load(self, transport: asyncio.BaseTransport) -> None:
        """The load calls paced at ``load_rate`` events/s (frames built as they fall due)."""
        started, sent = time.perf_counter(), 0
        pending: list[tuple[bytes, str | None]] = []
        calls = iter(self.load)
        total = len(PICK) * len(self.load)
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * self.load_rate) + 1)
            batch: list[bytes] = []
            probes: list[str] = []
            while sent + len(batch) < due:
                if not pending:
                    call = next(calls)
                    timed = call.peer if call.kind == "probe" else None
                    frames = self.call_frames(call)
                    pending = [(f, timed if i == FIRST_DIAL else None) for i, f in enumerate(frames)]
                frame, probe = pending.pop(0)
                batch.append(frame)
                if probe is not None:
                    probes.append(probe)
            now = time.perf_counter()
            for probe in probes:
                self.sent_at[probe] = now
            await _write(transport, b"".join(batch))
            sent += len(batch)
            await asyncio.sleep(0.001)

    async def hangup(self, request: web.Request) -> web.Response:
        self._hung_up(request.match_info["id"])
        return web.Response(status=204)

    def _hung_up(self, peer: str) -> None:
        self.deleted_at[peer] = time.perf_counter()
        if peer in self.deleted:
            self.deleted[peer].set()

    async def _requests(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport, app: str) -> None:
        """Answer the REST requests the guard sends on its events websocket as Asterisk 22.4+ does:
        a ``RESTResponse`` frame, 204 for a hang-up (noted like the HTTP one), 200 for its ping."""
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            request = json.loads(msg.data)
            uri = str(request["uri"]).partition("?")[0]
            answer: dict[str, object] = {"type": "RESTResponse", "transaction_id": ""}
            answer["request_id"] = request["request_id"]
            if request["method"] == "DELETE" and uri.startswith("channels/"):
                self._hung_up(uri.removeprefix("channels/"))
                answer.update(status_code=204, reason_phrase="No Content", uri=uri)
            else:  # the guard's probe, GET asterisk/ping
                body = json.dumps(
                    {"asterisk_id": ASTERISK_ID, "ping": "pong", "timestamp": STAMP}, separators=(",", ":")
                )
                answer.update(status_code=200, reason_phrase="OK", uri=uri)
                answer.update(content_type="application/json", message_body=body)
            answer.update(application=app, timestamp=STAMP, asterisk_id=ASTERISK_ID)
            await _write(transport, ws_frame(json.dumps(answer, separators=(",", ":"))))

    async def results(self, request: web.Request) -> web.Response:
        return web.json_response({"sent": self.sent_at, "deleted": self.deleted_at})


async def _write(transport: asyncio.BaseTransport, data: bytes) -> None:
    assert isinstance(transport, asyncio.WriteTransport)
    transport.write(data)
    while transport.get_write_buffer_size() > 1 << 20:  # noqa: ASYNC110 (no drain event on a raw transport)
        await asyncio.sleep(0.0002)


def source_main(source: EventSource, cpu: int | None, ports: multiprocessing.Queue[int]) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/ari/events", source.events)
        app.router.add_route("DELETE", "/ari/channels/{id}", source.hangup)
        app.router.add_get("/ari/channels", lambda _: _json([]))
        app.router.add_get("/bench/results", source.results)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _json(value: object) -> web.Response:
    return web.json_response(value)


# -- the subjects (this process) --------------------------------------------------------------


class TimedClient(AriClient):
    """Notes when each hang-up request starts."""

    hangups: dict[str, float]

    async def hangup(
        self,
        channel_id: str,
        *,
        reason_code: int | None = None,
        reason: HangupReason | None = None,
        over: EventStream | None = None,
    ) -> None:
        self.hangups[channel_id] = time.perf_counter()
        await super().hangup(channel_id, reason_code=reason_code, reason=reason, over=over)


@dataclass
class Counter:
    """Watches the events the guard handled: when it saw its first event and the :data:`END` of
    the pass, and when it handled each first Dial."""

    calls: int
    first: float = 0.0
    last: float = 0.0
    dials: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: Event) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        if isinstance(event, Dial):  # read in full, for a hook
            event = seen_of(event)
        if isinstance(event, DialSeen) and event.dialstatus == "":
            if event.peer_id == END:
                self.last = now
                self.done.set()
            else:
                self.dials[event.peer_id] = now

    def rate(self) -> float:
        """PBX events per second: 20 per call, whether Asterisk sent them all or not."""
        return len(PICK) * self.calls / (self.last - self.first)


def config(url: str, app: str) -> AriConfig:
    return AriConfig(url, "bench", "bench", app=app, ws_heartbeat=None, request_timeout=5.0)


async def floor(url: str, calls: int) -> float:
    frames = len(PICK) * calls
    params = {"app": "floor", "api_key": "bench:bench"}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/events", params=params) as ws:
        count, first = 0, 0.0
        while count < frames:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                count += 1
                first = first or time.perf_counter()
        return (frames - 1) / (time.perf_counter() - first)


class CountedStore(SqliteStore):
    """The store, counting the audit records written (every blocked leg writes one)."""

    audited = 0

    async def audit(
        self, actor: str, action: str, masked: str, detail: Mapping[str, Any], now: datetime
    ) -> None:
        await super().audit(actor, action, masked, detail, now)
        self.audited += 1


class CountedGuard(GuardApp):
    """The guard with a :class:`Counter` after its own handling of each event (not as a hook:
    a guard with hooks parses its events in full, for them)."""

    counter: Counter

    def dispatch(self, event: Event) -> None:
        super().dispatch(event)
        self.counter(event)


async def stream(url: str, flood: list[Call]) -> float:
    """The guard's event stream alone, as the guard opens it (sharing the legs the guard would
    know by then: the pass's), until the pass's last event."""
    calls = len(flood)
    counter = Counter(calls)
    client = AriClient(config(url, "stream"))
    opened = client.events(
        ["stream"], subscribe_all=True, wanted=GUARD_EVENTS, only_wanted=True, kind=GuardStream
    )
    assert isinstance(opened, GuardStream)
    opened.legs = dict.fromkeys(call.peer for call in flood)
    async with client, opened as events:
        async for event in events:
            counter(event)
            if counter.done.is_set():
                break
    return counter.rate()


async def run_guard(
    url: str, app: str, store: CountedStore, ledger: GateLedger, calls: int, *, capture: bool = False
) -> tuple[float, GuardApp, Counter, TimedClient]:
    counter, audited = Counter(calls), store.audited
    client = TimedClient(config(url, app))
    client.hangups = {}
    rules = NumberRules()
    settings = replace(SETTINGS, app=app)
    hooks: list[EventHook] = []
    if capture:  # as serve builds it with [capture] enabled (the default)
        journal = Journal(OUT / "guard-journal", os.urandom(32))  # written only if a code completed
        recorder = RefusalRecorder(store, ShieldPeriods(), journal, "bench")
        legs = LegMatcher(settings)
        keypad = KeypadCapture(
            client,
            recorder,
            KeypadCode(),
            rules,
            app=app,
            pbx="bench",
            is_customer_leg=lambda channel: legs.is_trunk(channel.name),
        )
        hooks.append(keypad.on_event)
    guard = CountedGuard(
        app,
        client,
        Gate(store, rules),
        store,
        settings,
        rules,
        ledger,
        server_filter=False,
        hooks=hooks,
        hook_events=DIALER_EVENTS if capture else (),
    )
    guard.counter = counter
    task = asyncio.create_task(guard.run())
    await asyncio.wait_for(counter.done.wait(), 600)
    counts = guard.judge.counts
    while sum(counts.values()) < calls or store.audited - audited < counts["blocked"]:  # noqa: ASYNC110
        await asyncio.sleep(0.0005)  # polled: no event to wait on
    counter.last = time.perf_counter()  # every leg decided, every blocked one hung up and audited
    rate = counter.rate()
    await guard.stop()
    await task
    return rate, guard, counter, client


def quantiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"p50 {statistics.median(ordered) * 1e3:6.3f} ms  p99 {p99 * 1e3:6.3f} ms"
        f"  max {ordered[-1] * 1e3:6.3f} ms  n={len(ordered)}"
    )


def rates(name: str, values: list[float], floor_median: float | None = None) -> None:
    ratio = f"  {statistics.median(values) / floor_median:.2f}x the floor" if floor_median else ""
    print(f"  {name:<15} best {max(values):9,.0f} events/s  median {statistics.median(values):9,.0f}{ratio}")


async def latency(url: str, app: str, store: CountedStore, ledger: GateLedger, calls: list[Call]) -> None:
    _, guard, counter, client = await run_guard(url, app, store, ledger, len(calls))
    probes = [c.peer for c in calls if c.kind in ("probe", "shielded")]
    async with aiohttp.ClientSession() as session, session.get(url.replace("/ari", "/bench/results")) as r:
        seen = await r.json()
    inner = [client.hangups[p] - counter.dials[p] for p in probes if p in client.hangups]
    outer = [seen["deleted"][p] - seen["sent"][p] for p in probes if p in seen["deleted"]]
    print(f"  {app:<5} in-process  Dial handled -> DELETE sent: {quantiles(inner)}")
    print(f"  {app:<5} end to end  Dial written -> DELETE read:  {quantiles(outer)}")
    print(f"        legs {dict(guard.judge.counts)}")


def log_like_serve(path: Path, level: str) -> None:
    """Logging as ``callshield serve`` sets it up (:func:`logsetup.configure`: its handler, format
    and flags, so the guard's INFO lines take serve's path), into ``path`` instead of stderr."""
    stream = path.open("w", buffering=io.DEFAULT_BUFFER_SIZE, encoding="utf-8", errors="backslashreplace")
    handler = logsetup.BlockHandler(stream)
    handler.setFormatter(logsetup.SecondsFormatter(logsetup.FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    logsetup.configure(level)  # serve's flags; the handler is the one above (configure keeps it)


async def main(args: argparse.Namespace) -> None:
    OUT.mkdir(exist_ok=True)
    log_file = OUT / "guard.log"
    log_like_serve(log_file, args.log_level)
    cpus = sorted(os.sched_getaffinity(0))
    source_cpu, own_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    flood = plan(args.calls, args.seed, "1795849", args.kinds)
    probes = plan(args.latency_calls, args.seed + 1, "1795850", (("shielded", 1.0),))
    load = plan(args.latency_calls * PROBE_EVERY, args.seed + 2, "1795851", (("gated", 0.5), ("clean", 0.5)))
    for i, probe in enumerate(probes):
        at = i * PROBE_EVERY + PROBE_EVERY // 2
        load[at] = Call(load[at].agent, load[at].peer, probe.number, "probe")
    source = EventSource(flood, probes, load, args.load_rate)
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    process = multiprocessing.get_context("fork").Process(
        target=source_main, args=(source, source_cpu, ports), daemon=True
    )
    process.start()
    if own_cpu is not None:
        os.sched_setaffinity(0, {own_cpu})
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/ari"
    print(f"guard benchmark; callshield logs at {args.log_level} to {log_file}")
    with tempfile.TemporaryDirectory() as tmp:
        store = await CountedStore.open(Path(tmp) / "shield.db", os.urandom(32))
        assert isinstance(store, CountedStore)
        try:
            await _run(args, url, store, flood, probes, load)
        finally:
            await store.close()
    process.terminate()
    where = f"source on CPU {source_cpu}, subjects on CPU {own_cpu}" if own_cpu is not None else "not pinned"
    print(f"{os.cpu_count()} CPUs, {where}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def _run(
    args: argparse.Namespace,
    url: str,
    store: CountedStore,
    flood: list[Call],
    probes: list[Call],
    load: list[Call],
) -> None:
    now, until = datetime.now(UTC), datetime.now(UTC) + timedelta(days=365)
    for call in [c for c in flood if c.kind == "shielded"] + probes:
        entry = NewEntry("+86" + call.number, Scope(), models.Source.IMPORT, "bench", until)
        await store.add(entry, "bench", now)
    ledger = GateLedger(ttl=3600, max_entries=10**7)
    for call in flood + load:
        if call.kind == "gated":
            ledger.allowed(call.agent, "+86" + call.number)
    size = sum(len(ws_frame(t.format(a=AGENT, p=PEER, n="13800138000"))) for t in templates()) / len(PICK)
    kinds = {k: sum(c.kind == k for c in flood) for k, _ in args.kinds}
    calls = len(flood)
    print(
        f"{calls:,} calls x {len(PICK)} frames = {len(PICK) * calls:,} events per pass, {size:.0f} B/frame,"
    )
    print(f"one outbound leg per call {kinds}; {args.repeats} interleaved passes")
    flooded: dict[str, list[float]] = {"guard": [], "guard/F": [], "guard+capture/F": []}
    subjects: dict[str, Callable[[], Awaitable[float]]] = {
        "floor": lambda: floor(url, calls),
        "stream": lambda: stream(url, flood),
        "guard": lambda: _guard_rate(url, "flood", store, ledger, calls, flooded["guard"]),
        "guard/F": lambda: _guard_rate(url, "filtered", store, ledger, calls, flooded["guard/F"]),
        "guard+capture/F": lambda: _guard_rate(
            url, "capture", store, ledger, calls, flooded["guard+capture/F"], capture=True
        ),
    }
    subjects = {name: run for name, run in subjects.items() if name == "floor" or name in args.subjects}
    results: dict[str, list[float]] = {name: [] for name in subjects}
    gc.collect()
    gc.freeze()  # as serve does once started: what exists now is never traversed by a collection
    for rep in range(args.repeats):
        for name, measure in subjects.items():
            cpu = time.process_time()
            results[name].append(await measure())
            cpu_us = (time.process_time() - cpu) / (len(PICK) * calls) * 1e6  # this process, every thread
            print(
                f"  pass {rep + 1} {name:<15} {results[name][-1]:9,.0f} events/s  {cpu_us:5.2f} us CPU/event",
                flush=True,
            )
    base = statistics.median(results["floor"])
    print("PBX events/s (guard target >= 0.5x the floor and >= 20,000/s):")
    for name, values in results.items():
        rates(name, values, None if name == "floor" else base)
    print(LEGEND)
    print("Dial handled -> hang-up request of a shielded bypass under the flood (in-process):")
    for name, waits in flooded.items():
        if name in subjects:
            print(f"  {name:<15} {quantiles(waits)}")
    if not probes:
        return
    print("Dial -> hang-up request of a shielded bypass (target p99 <= 5 ms):")
    await latency(url, "idle", store, ledger, probes)
    print(f"  (load: {args.load_rate:,.0f} events/s, a shielded bypass every {PROBE_EVERY} calls)")
    await latency(url, "load", store, ledger, load)


async def _guard_rate(
    url: str,
    app: str,
    store: CountedStore,
    ledger: GateLedger,
    calls: int,
    waits: list[float],
    *,
    capture: bool = False,
) -> float:
    """The guard's rate on a pass; adds to ``waits`` each shielded leg's time from its Dial
    handled to its hang-up request, under the flood (the guard saturated)."""
    rate, _, counter, client = await run_guard(url, app, store, ledger, calls, capture=capture)
    waits.extend(at - counter.dials[peer] for peer, at in client.hangups.items() if peer in counter.dials)
    return rate


def kinds_arg(text: str) -> tuple[tuple[str, float], ...]:
    """``gated:0.5,clean:0.45,shielded:0.05`` as (kind, weight) pairs."""
    pairs = [part.split(":") for part in text.split(",")]
    if any(len(p) != 2 or p[0] not in {"gated", "clean", "shielded"} for p in pairs):
        raise argparse.ArgumentTypeError("expected KIND:WEIGHT,... with kinds gated, clean, shielded")
    return tuple((kind, float(weight)) for kind, weight in pairs)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls per pass (20 events each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--latency-calls", type=int, default=300, help="shielded bypasses timed per phase (0: none)"
    )
    parser.add_argument("--load-rate", type=float, default=20_000, help="events/s of the loaded phase")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--kinds",
        type=kinds_arg,
        default=KINDS,
        help="the flood's mix of legs (default gated:0.5,clean:0.45,shielded:0.05)",
    )
    parser.add_argument(
        "--subjects",
        type=lambda text: set(text.split(",")),
        default={"stream", "guard", "guard/F", "guard+capture/F"},
        help="which of stream,guard,guard/F,guard+capture/F to measure (the floor always is)",
    )
    parser.add_argument("--log-level", default="INFO", help="callshield's log level (to bench/out/guard.log)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
