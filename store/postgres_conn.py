"""PostgreSQL store plumbing: the store URL, the connection pool, and error translation.

The URL is libpq's (``postgresql://user@host:port/db?sslmode=require``) plus a few parameters of
callshield's own, removed before the rest goes to asyncpg:

``password_file``
    a file holding only the password (mode 0600, like the key file). Otherwise the password is the
    URL's, or ``$PGPASSWORD``, or ``~/.pgpass`` (``$PGPASSFILE``), as with libpq.
``pool_max``
    connections per process for writes and reads, and again for the gate's look-ups (default 5 each);
    ``connect_timeout`` and ``command_timeout``, in seconds (defaults 5 and 60).

Other query parameters are server settings for each connection (``search_path=callshield`` puts the
store in that schema). Messages name the store as ``postgresql://host:port/db``: never the password.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from callshield.errors import (
    CallShieldError,
    ConfigError,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
)

_OWN = ("password_file", "pool_max", "connect_timeout", "command_timeout")
_SETTINGS = {
    "application_name": "callshield",
    # Every statement is a short indexed one: plan it once per connection, not per execution (a
    # custom plan for the look-up costs more than executing it).
    "plan_cache_mode": "force_generic_plan",
}


@dataclass(frozen=True)
class PgLocation:
    """Where the store is and how to connect, parsed from the store URL."""

    dsn: str = field(repr=False)
    """The URL for asyncpg: callshield's own parameters removed (may hold the password)."""
    where: str
    """``postgresql://host:port/db``, for messages."""
    password: str | None = field(default=None, repr=False)
    """From ``password_file``; None: the URL's, ``$PGPASSWORD`` or ``~/.pgpass``."""
    pool_max: int = 5
    connect_timeout: float = 5.0
    command_timeout: float = 60.0
    settings: tuple[tuple[str, str], ...] = ()
    """Server settings callshield sets on each connection (those the URL does not set itself)."""


def parse_location(url: str) -> PgLocation:
    """Split a ``postgresql://`` store URL into what asyncpg gets and callshield's own options."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ConfigError(f"store URL postgresql://...: malformed ({e})") from None
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    where = f"postgresql://{hosts}{parts.path or '/'}"
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise ConfigError(f"store {where}: malformed query ({e})") from None
    own = {k: v for k, v in query if k in _OWN}
    rest = [(k, v) for k, v in query if k not in _OWN]
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    password = _read_password(Path(own["password_file"])) if "password_file" in own else None
    try:
        pool_max = int(own.get("pool_max", "5"))
        timeouts = float(own.get("connect_timeout", "5")), float(own.get("command_timeout", "60"))
    except ValueError:
        pool_max, timeouts = 0, (0.0, 0.0)
    if pool_max < 1 or min(timeouts) <= 0:
        raise ConfigError(f"store {where}: pool_max and the timeouts must be positive numbers")
    settings = tuple((k, v) for k, v in _SETTINGS.items() if k not in dict(rest))
    return PgLocation(dsn, where, password, pool_max, *timeouts, settings=settings)


def _read_password(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"store password file {path} cannot be read: {e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode_text = f"{mode & 0o777:o}"
        raise ConfigError(f"store password file {path} is readable by others (mode {mode_text}); chmod 600")
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"store password file {path} is empty")
    return password


async def _keep(con: Any) -> None:
    """Pool reset: nothing to undo (an open transaction is rolled back by asyncpg itself).

    asyncpg's default reset is a round trip per release (``RESET ALL`` and more) that the gate's
    one-statement look-up would pay every time; callshield changes no session state.
    """


async def create_pool(loc: PgLocation) -> Any:
    """A pool of at most ``loc.pool_max`` connections; broken ones are replaced on the next acquire."""
    return await asyncpg.create_pool(
        loc.dsn,
        password=loc.password,
        min_size=1,
        max_size=loc.pool_max,
        timeout=loc.connect_timeout,
        command_timeout=loc.command_timeout,
        max_inactive_connection_lifetime=300.0,
        server_settings=dict(loc.settings),
        reset=_keep,
    )


async def connect(loc: PgLocation, *, command_timeout: bool = True) -> Any:
    """One connection outside the pool, set up as the pool's are (``command_timeout=False``:
    without asyncpg's statement timeout, for a caller that keeps one itself)."""
    return await asyncpg.connect(
        loc.dsn,
        password=loc.password,
        timeout=loc.connect_timeout,
        command_timeout=loc.command_timeout if command_timeout else None,
        server_settings=dict(loc.settings),
    )


def is_lost(error: BaseException) -> bool:
    """True for errors that mean the connection or the server went away (worth reconnecting)."""
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error) and "pool" not in str(error)
    return isinstance(
        error,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    )


def translate_error(error: Exception, where: str) -> CallShieldError:
    """asyncpg/OS errors as callshield's store errors (messages name the store, never a number)."""
    if isinstance(error, CallShieldError):
        return error
    if isinstance(error, asyncpg.InterfaceError) and "pool is clos" in str(error):
        return StoreUnavailable(f"store {where} is closed")
    if is_lost(error) or isinstance(
        error, asyncpg.OperatorInterventionError | asyncpg.InsufficientResourcesError
    ):
        return StoreUnavailable(f"store {where} is unavailable: {_text(error)}")
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return ConfigError(f"store {where} refused the login: {_text(error)}")
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return StoreUnavailable(f"store {where}: {_text(error)} (create the database first)")
    if isinstance(error, asyncpg.UndefinedTableError):
        return StoreCorrupt(f"store {where} is missing a table: {_text(error)}")
    if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        return StoreError(f"store {where}: {_text(error)}")
    if isinstance(error, asyncpg.ClientConfigurationError | ValueError):
        return ConfigError(f"store {where}: {error}")
    return StoreError(f"store {where}: {type(error).__name__}: {error}")


def _text(error: BaseException) -> str:
    """The server's or driver's message only: a DETAIL line could quote a stored value."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, TimeoutError):
        return "timed out"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(message).splitlines()[0]


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Raise asyncpg/OS errors from the body as callshield's store errors."""
    try:
        yield
    except Exception as e:
        raise translate_error(e, where) from None
