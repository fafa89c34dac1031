"""``callshield serve``: the long-running service on a PBX.

One process holds the store and the :class:`~callshield.gate.Gate`, and serves it to:

- one :class:`~callshield.ari.app.StasisApp` per configured Asterisk server (reconnecting forever);
- the FastAGI server (``callshield/gate``), unless disabled;
- a purge of expired entries on a schedule (keeping data longer than needed is a violation too).

SIGTERM or SIGINT: stop taking calls, finish the decisions in flight, close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from callshield.agi import AgiServer
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.ari.app import StasisApp
from callshield.ari.client import AriClient, AriConfig
from callshield.config import Settings
from callshield.errors import CallShieldError, ConfigError
from callshield.gate import Gate, utc_now
from callshield.keys import load_key
from callshield.service_config import AriServer, ServiceSettings
from callshield.store import open_store
from callshield.store.base import ShieldStore

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0


async def serve(settings: Settings, service: ServiceSettings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    if not service.servers and not service.agi.enabled:
        raise ConfigError("nothing to serve: configure an [[ari.server]] or enable [agi] listen")
    stop = stop or _signal_event()
    store = await open_store(settings.store, load_key(settings))
    try:
        gate = Gate(
            store,
            settings.numbers,
            timeout=service.gate.timeout,
            audit_decisions=service.gate.audit_decisions,
        )
        await _run(store, gate, service, stop)
    finally:
        await store.close()


async def _run(store: ShieldStore, gate: Gate, service: ServiceSettings, stop: asyncio.Event) -> None:
    agi = None
    if service.agi.enabled:
        agi = AgiServer({GATE_SCRIPT: gate_handler(gate)}, service.agi.host, service.agi.port)
        await agi.start()
        log.info("FastAGI gate listening on %s:%d", service.agi.host, agi.port)
    apps = [_stasis_app(server, gate, service) for server in service.servers]
    tasks = [asyncio.create_task(app.run(), name=f"ari-{app.name}") for app in apps]
    tasks.append(asyncio.create_task(_purge_forever(store, service.purge_interval), name="purge"))
    log.info("callshield serving %d Asterisk server(s)", len(apps))
    await stop.wait()
    log.info("stopping: finishing the decisions in flight")
    await asyncio.gather(*(app.stop(SHUTDOWN_GRACE) for app in apps))
    if agi is not None:
        await agi.close(SHUTDOWN_GRACE)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped; decisions: %s", dict(gate.counts) or "none")


def _stasis_app(server: AriServer, gate: Gate, service: ServiceSettings) -> StasisApp:
    client = AriClient(AriConfig(f"{server.url}/ari", server.username, server.password, app=server.app))
    return StasisApp(server.name, client, gate, app=server.app, hangup_blocked=service.gate.hangup_blocked)


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
