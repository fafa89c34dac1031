"""Plumbing shared by the ``callshield`` commands: the context, option groups, errors, formatting.

Exit statuses (documented in the README): 0 done / allowed, 1 blocked (``check``) or a broken
audit chain (``audit verify``), 2 error of any kind (bad input, configuration, store). A command
never changes the store when it exits 2 because of bad input.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from callshield.config import Settings, load_settings
from callshield.errors import CallShieldError, InvalidInput
from callshield.keys import load_key
from callshield.models import Scope, Source
from callshield.store import ShieldStore, open_store

EXIT_OK, EXIT_BLOCKED, EXIT_ERROR = 0, 1, 2
log = logging.getLogger("callshield.cli")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class App:
    """What every command gets: settings (loaded lazily, so ``--help`` never needs a config)."""

    config: Path | None
    actor_name: str | None

    @functools.cached_property
    def settings(self) -> Settings:
        return load_settings(self.config)

    @property
    def actor(self) -> str:
        name = self.actor_name or os.environ.get("CALLSHIELD_ACTOR") or getpass.getuser()
        return f"cli:{name}"

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ShieldStore]:
        key = load_key(self.settings)
        store = await open_store(self.settings.store, key)
        try:
            yield store
        finally:
            await store.close()

    def key(self) -> bytes:
        return load_key(self.settings)


def fail(message: str) -> NoReturn:
    click.echo(f"callshield: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def runs_async(fn: Callable[P, Awaitable[int | None]]) -> Callable[P, None]:
    """Run an async command body; turn callshield errors into a message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            status: int | None = asyncio.run(_as_coroutine(fn(*args, **kwargs)))
        except CallShieldError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted; every batch already committed is kept, re-run to complete")
        sys.exit(status or EXIT_OK)

    return wrapper


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def scope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--campaign", metavar="NAME", help="Scope: one campaign of --company.")(fn)
    return click.option("--company", metavar="NAME", help="Scope: one company (default: global).")(fn)


def period_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--permanent", is_flag=True, help="Never expires.")(fn)
    return click.option(
        "--days", type=click.IntRange(1, 36500), metavar="N", help="Shield for N days (default: configured)."
    )(fn)


def make_scope(company: str | None, campaign: str | None) -> Scope:
    return Scope(company, campaign)


def expiry(
    app: App, now: datetime, source: Source, scope: Scope, days: int | None, permanent: bool
) -> datetime | None:
    """The expiry from --days/--permanent, else from the configured periods."""
    if days is not None and permanent:
        raise InvalidInput("--days and --permanent exclude each other")
    if permanent:
        return None
    if days is not None:
        return now + timedelta(days=days)
    return app.settings.periods.expiry(now, source, scope)


def when(at: datetime | None) -> str:
    return "permanently" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def now() -> datetime:
    return datetime.now(UTC)
