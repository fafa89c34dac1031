"""The shield store: numbers as keyed hashes, prefix rules, and the audit log.

:func:`open_store` picks the backend from the configured location: a file path is the embedded
SQLite store; a ``postgresql://`` URL is the shared PostgreSQL store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from callshield.errors import ConfigError
from callshield.store.base import ShieldStore


async def open_store(location: str, key: bytes, *, create: bool = True) -> ShieldStore:
    """Open the store at ``location`` (SQLite path or PostgreSQL URL) with the deployment key."""
    if location.startswith(("postgresql://", "postgres://")):
        from callshield.store.postgres import PostgresStore

        return await PostgresStore.open(location, key, create=create)
    if "://" in location:
        raise ConfigError(
            f"store location {location.split('://', maxsplit=1)[0]}://...: expected a file path or postgresql://"
        )
    from callshield.store.sqlite import SqliteStore

    return await SqliteStore.open(Path(location), key, create=create)


def describe(location: str) -> str:
    """``location`` as it may be shown or recorded: a URL without passwords (in it or its query)."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("password", "sslpassword")
    ]
    netloc = f"{user}@{hosts}" if user else hosts
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))


__all__ = ["ShieldStore", "describe", "open_store"]
