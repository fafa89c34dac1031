"""``callshield serve``: the long-running service on a PBX.

One process holds the store and the :class:`~callshield.gate.Gate`, and serves it to:

- one :class:`~callshield.ari.app.StasisApp` per configured Asterisk server (reconnecting forever);
- the FastAGI server (``callshield/gate``), unless disabled;
- the refusal capture (``[capture]``): the agent's keypad code and the customer's opt-out over
  ARI (per server) and FastAGI (``callshield/mark``, ``callshield/optout``), all recorded through
  one :class:`~callshield.capture.RefusalRecorder` whose journal is replayed every few seconds;
- a purge of expired entries on a schedule (keeping data longer than needed is a violation too).

If the store cannot be reached when the service starts (PostgreSQL not up yet after a reboot),
the service waits for it, retrying with capped backoff, instead of exiting to be restarted: until
then nothing answers Asterisk, and the shipped dialplan blocks every call (fail closed).

SIGTERM or SIGINT: stop taking calls, finish the decisions in flight, close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass

from callshield.agi import AgiServer, Handler
from callshield.agi.capture import MARK_SCRIPT, OPTOUT_SCRIPT, mark_handler, optout_handler
from callshield.agi.gate import GATE_SCRIPT, gate_handler
from callshield.ari.app import StasisApp
from callshield.ari.capture import KeypadCapture
from callshield.ari.client import AriClient, AriConfig
from callshield.ari.connection import Backoff
from callshield.ari.guard import EventHook, GateLedger, GuardApp
from callshield.ari.guard_legs import LegMatcher
from callshield.ari.optout import OptOut
from callshield.capture import RefusalRecorder, replay_forever
from callshield.capture_config import CaptureSettings, capture_settings
from callshield.config import Settings
from callshield.errors import CallShieldError, ConfigError, StoreUnavailable
from callshield.gate import Gate, utc_now
from callshield.guard_config import GuardSettings, guard_settings
from callshield.journal import Journal
from callshield.keys import load_key
from callshield.service_config import AriServer, ServiceSettings
from callshield.store import open_store
from callshield.store.base import ShieldStore

log = logging.getLogger(__name__)

DIALER_EVENTS = frozenset(
    {
        "ChannelDtmfReceived",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "BridgeDestroyed",
        "ChannelDestroyed",
    }
)
"""Events the guard's connection hands to the dialer-mode keypad capture."""
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
    guard = guard_settings(settings)
    if guard.enabled and not service.servers:
        raise ConfigError("[guard] enabled needs an [[ari.server]] to watch")
    store = await open_store_patiently(settings.store, key, stop)
    if store is None:
        return  # stopped before the store could be reached
    try:
        recorder = RefusalRecorder(store, settings.periods, Journal(capture.journal, key), "service")
        gate = Gate(
            store,
            settings.numbers,
            timeout=service.gate.timeout,
            audit_decisions=service.gate.audit_decisions,
            pending=recorder.pending,
        )
        await _run(store, Parts(settings, service, capture, gate, recorder, guard, GateLedger()), stop)
    finally:
        await store.close()


async def open_store_patiently(
    location: str, key: bytes, stop: asyncio.Event, backoff: Backoff | None = None
) -> ShieldStore | None:
    """The store, tried again while it is unavailable; None if ``stop`` is set first.

    Only :class:`StoreUnavailable` is waited out (the server down or not up yet, the database or
    its tables not created yet). Any other error (a wrong key, a damaged store, a refused login)
    is raised at once: waiting would not mend it. The waits grow like the ARI reconnects' (default
    about 1, 2, 4 ... 30 s). One ERROR line per distinct reason, one INFO line when the store answers.
    """
    backoff = backoff or Backoff(first=1.0)
    reason = None
    while True:
        try:
            store = await open_store(location, key)
        except StoreUnavailable as e:
            if str(e) != reason:
                reason = str(e)
                log.error("%s; no calls are gated until it answers (Asterisk blocks them); retrying", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff.delay())
                return None
            continue
        if reason is not None:
            log.info("the store answers; starting the gate")
        return store


@dataclass(frozen=True)
class Parts:
    """What the adapters are built from."""

    settings: Settings
    service: ServiceSettings
    capture: CaptureSettings
    gate: Gate
    recorder: RefusalRecorder
    guard: GuardSettings
    ledger: GateLedger
    """Calls the gate allowed, so the guard leaves their outbound legs alone."""

    @property
    def gate_ledger(self) -> GateLedger | None:
        """The ledger the gates note their ALLOWs in: only when a guard reads it."""
        return self.ledger if self.guard.enabled else None


async def _run(store: ShieldStore, parts: Parts, stop: asyncio.Event) -> None:
    service = parts.service
    agi = None
    if service.agi.enabled:
        agi = AgiServer(_agi_routes(parts), service.agi.host, service.agi.port)
        await agi.start()
        log.info("FastAGI gate listening on %s:%d", service.agi.host, agi.port)
    apps = [_stasis_app(server, parts) for server in service.servers]
    guards = [_guard_app(server, store, parts) for server in service.servers] if parts.guard.enabled else []
    tasks = [asyncio.create_task(app.run(), name=f"ari-{app.name}") for app in apps]
    tasks += [asyncio.create_task(guard.run(), name=f"guard-{guard.name}") for guard in guards]
    tasks.append(asyncio.create_task(_purge_forever(store, service.purge_interval), name="purge"))
    tasks.append(asyncio.create_task(replay_forever(parts.recorder, REPLAY_INTERVAL), name="replay"))
    gc.freeze()  # what startup made (modules, number metadata, settings) is never traversed again:
    # a full collection under load pauses the loop less (bench/guard.py: worst hang-up wait under
    # the flood 32-40 ms -> 15-18 ms)
    log.info("callshield serving %d Asterisk server(s)", len(apps))
    await stop.wait()
    log.info("stopping: finishing the decisions in flight")
    await asyncio.gather(
        *(app.stop(SHUTDOWN_GRACE) for app in apps), *(guard.stop(SHUTDOWN_GRACE) for guard in guards)
    )
    if agi is not None:
        await agi.close(SHUTDOWN_GRACE)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped; decisions: %s", dict(parts.gate.counts) or "none")


def _agi_routes(parts: Parts) -> dict[str, Handler]:
    routes = {GATE_SCRIPT: gate_handler(parts.gate, parts.gate_ledger)}
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
        ledger=parts.gate_ledger,
    )


def _guard_app(server: AriServer, store: ShieldStore, parts: Parts) -> GuardApp:
    """The guard for one server; it also carries the dialer-mode keypad capture (it sees every
    channel, so the code works on calls that never passed the gate)."""
    guard, rules, cap = parts.guard, parts.settings.numbers, parts.capture
    client = AriClient(AriConfig(f"{server.url}/ari", server.username, server.password, app=guard.app))
    checker = Gate(store, rules, timeout=parts.service.gate.timeout, pending=parts.recorder.pending)
    hooks: list[EventHook] = []
    if cap.enabled:
        legs = LegMatcher(guard)
        dialer = KeypadCapture(
            client,
            parts.recorder,
            cap.keypad,
            rules,
            app=server.app,
            pbx=server.name,
            tone=cap.tone,
            is_customer_leg=lambda channel: legs.is_trunk(channel.name),
        )
        hooks.append(dialer.on_event)
    return GuardApp(
        server.name,
        client,
        checker,
        store,
        guard,
        rules,
        parts.ledger,
        hooks=hooks,
        hook_events=DIALER_EVENTS,
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
