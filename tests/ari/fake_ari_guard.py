"""Guard tests on the fake ARI server: a running GuardApp, a real store, numbers, inspection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from callshield.ari.client import AriClient, AriConfig
from callshield.ari.connection import Backoff
from callshield.ari.guard import GateLedger, GuardApp
from callshield.gate import Gate
from callshield.guard_config import GuardSettings
from callshield.models import Scope, Source
from callshield.numbers import NumberRules
from callshield.store.audit import AuditRecord
from callshield.store.base import NewEntry, ShieldStore
from fake_ari import FakeAri

APP = "callshield-guard"
SHIELDED, CLEAN = "13800138000", "13900139000"
"""National numbers (region CN); neither may ever appear in a log line or an audit record."""
SHIELDED_E164, CLEAN_E164 = "+86" + SHIELDED, "+86" + CLEAN
RULES = NumberRules(strip_prefixes=("9",))
SETTINGS = GuardSettings(enabled=True, trunks=frozenset({"PJSIP/carrier"}))
NOW = datetime.now(UTC)


async def shield(store: ShieldStore, e164: str = SHIELDED_E164) -> None:
    until = NOW + timedelta(days=365)
    await store.add(NewEntry(e164, Scope(), Source.CUSTOMER_OPTOUT, "said no", until), "t", NOW)


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)


def client_for(fake: FakeAri) -> AriClient:
    return AriClient(AriConfig(fake.url, fake.username, fake.password, app=APP, request_timeout=1.0))


@asynccontextmanager
async def guarding(
    fake: FakeAri,
    store: ShieldStore,
    *,
    ledger: GateLedger | None = None,
    strict: bool = False,
    backoff: Backoff | None = None,
    rest_over_websocket: bool = True,
    **options: Any,
) -> AsyncIterator[GuardApp]:
    """A running guard, connected, its event filter set and its first channel listing done.

    Its hang-ups go over the websocket once the guard's probe is answered (see
    :func:`rest_ready`), as serve's guard does; ``rest_over_websocket=False``: over HTTP only."""
    listings = len(fake.requests_to("GET", "/channels"))
    guard = GuardApp(
        "pbx1",
        client_for(fake),
        Gate(store, RULES),
        store,
        replace(SETTINGS, strict=strict),
        RULES,
        GateLedger() if ledger is None else ledger,
        backoff=backoff or Backoff(0.05, 0.2),
        rest_over_websocket=rest_over_websocket,
        **options,
    )
    task = asyncio.create_task(guard.run())
    await asyncio.wait_for(guard.connected.wait(), 5)
    await until(lambda: len(fake.requests_to("GET", "/channels")) > listings)
    try:
        yield guard
    finally:
        await guard.stop()
        await asyncio.wait_for(task, 5)


async def audit_of(store: ShieldStore, count: int = 1, within: float = 5.0) -> list[AuditRecord]:
    """The ``bypass-blocked`` audit records, once there are ``count`` (written after the hang-up)."""
    async with asyncio.timeout(within):
        while True:
            found = [r async for r in store.audit_records() if r.action == "bypass-blocked"]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.005)


def hangups(fake: FakeAri, via: str | None = None) -> list[tuple[str, str | None]]:
    """(path, reason_code) of every DELETE /channels/{id} the guard sent (over ``via``: ``http``,
    ``websocket``; None: either)."""
    return [(r.path, r.params.get("reason_code")) for r in fake.requests_to("DELETE", "/channels/*", via=via)]


async def rest_ready(guard: GuardApp, within: float = 5.0) -> None:
    """Wait until the guard's hang-ups go over its events websocket (its probe was answered)."""
    await until(lambda: guard.judge.over is not None, within)
