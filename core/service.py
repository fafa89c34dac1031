"""``callshield serve``: the long-running service on a PBX.

One process holds the store and the :class:`~callshield.gate.Gate`, and serves it to:

- one :class:`~callshield.ari.app.StasisApp` per configured Asterisk server (reconnecting forever);
- the FastAGI server (``callshield/gate``), unless disabled;
- the refusal capture (``[capture]``): the agent's keypad code and the customer's opt-out over
  ARI (per server) and FastAGI (``callshield/mark``, ``callshield/optout``), all recorded through
  one :class:`~callshield.capture.RefusalRecorder` whose journal is replayed every few seconds;
- a purge of expired entries on a schedule (keeping data longer than needed is a violation too).

SIGTERM or SIGINT: stop taking calls, finish the decisions in flight, close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

from callshield.agi import AgiServer, Handler
from callshield.agi.capture import MARK_SCRIPT, OPTOUT_SCRIPT, mark_handler, optout_handler
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.ari.app import StasisApp
from callshield.ari.capture import KeypadCapture
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.optout import OptOut
from callshield.capture import RefusalRecorder, replay_forever
from callshield.capture_config import CaptureSettings, capture_settings
from callshield.config import Settings
from callshield.errors import CallShieldError, ConfigError
from callshield.gate import Gate, utc_now
from callshield.journal import Journal
from callshield.keys import load_key
from callshield.service_config import AriServer, ServiceSettings
from callshield.store import open_store
from callshield.store.base import ShieldStore

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0
REPLAY_INTERVAL = 5.0
"""Seconds between replays of the refusal journal into the store."""


async def serve(settings: Settings, service: ServiceSettings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    if not service.servers and not service.agi.enabled:
        raise ConfigError("nothing to serve: configure an [[ari.server]] or enable [agi] listen")
    stop = stop or _signal_event()
    key = load_key(settings)
    capture = capture_settings(settings)
    store = await open_store(settings.store, key)
    try:
        recorder = RefusalRecorder(store, settings.periods, Journal(capture.journal, key), "service")
        gate = Gate(
            store,
            settings.numbers,
            timeout=service.gate.timeout,
            audit_decisions=service.gate.audit_decisions,
            pending=recorder.pending,
        )
        await _run(store, Parts(settings, service, capture, gate, recorder), stop)
    finally:
        await store.close()


@dataclass(frozen=True)
class Parts:
    """What the adapters are built from."""

    settings: Settings
    service: ServiceSettings
    capture: CaptureSettings
    gate: Gate
    recorder: RefusalRecorder


async def _run(store: ShieldStore, parts: Parts, stop: asyncio.Event) -> None:
    service = parts.service
    agi = None
    if service.agi.enabled:
        agi = AgiServer(_agi_routes(parts), service.agi.host, service.agi.port)
        await agi.start()
        log.info("FastAGI gate listening on %s:%d", service.agi.host, agi.port)
    apps = [_stasis_app(server, parts) for server in service.servers]
    tasks = [asyncio.create_task(app.run(), name=f"ari-{app.name}") for app in apps]
    tasks.append(asyncio.create_task(_purge_forever(store, service.purge_interval), name="purge"))
    tasks.append(asyncio.create_task(replay_forever(parts.recorder, REPLAY_INTERVAL), name="replay"))
    log.info("callshield serving %d Asterisk server(s)", len(apps))
    await stop.wait()
    log.info("stopping: finishing the decisions in flight")
    await asyncio.gather(*(app.stop(SHUTDOWN_GRACE) for app in apps))
    if agi is not None:
        await agi.close(SHUTDOWN_GRACE)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped; decisions: %s", dict(parts.gate.counts) or "none")


def _agi_routes(parts: Parts) -> dict[str, Handler]:
    routes = {GATE_SCRIPT: gate_handler(parts.gate)}
    if parts.capture.enabled:
        rules = parts.settings.numbers
        routes[MARK_SCRIPT] = mark_handler(parts.recorder, rules)
        routes[OPTOUT_SCRIPT] = optout_handler(parts.recorder, rules, parts.capture.optout)
    return routes


def _stasis_app(server: AriServer, parts: Parts) -> StasisApp:
    client = AriClient(AriConfig(f"{server.url}/ari", server.username, server.password, app=server.app))
    capture = optout = None
    if parts.capture.enabled:
        rules, cap = parts.settings.numbers, parts.capture
        capture = KeypadCapture(
            client, parts.recorder, cap.keypad, rules, app=server.app, pbx=server.name, tone=cap.tone
        )
        optout = OptOut(client, parts.recorder, rules, cap.optout)
    return StasisApp(
        server.name,
        client,
        parts.gate,
        app=server.app,
        hangup_blocked=parts.service.gate.hangup_blocked,
        capture=capture,
        optout=optout,
    )


async def _purge_forever(store: ShieldStore, interval: float) -> None:
    while True:
        try:
            purged = await store.purge_expired("service", utc_now())
            if purged:
                log.info("purged %d expired entries", purged)
        except CallShieldError as e:
            log.error("scheduled purge failed (%s); retrying in %.0f s", e, interval)
        await asyncio.sleep(interval)


def _signal_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
