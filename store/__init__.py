"""The shield store: numbers as keyed hashes, prefix rules, and the audit log.

:func:`open_store` picks the backend from the configured location: a file path is the embedded
SQLite store; a ``postgresql://`` URL is the shared PostgreSQL store.
"""

from __future__ import annotations

from pathlib import Path

from callshield.errors import ConfigError
from callshield.store.base import ShieldStore


async def open_store(location: str, key: bytes, *, create: bool = True) -> ShieldStore:
    """Open the store at ``location`` (SQLite path or PostgreSQL URL) with the deployment key."""
    if location.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the PostgreSQL store is not available in this version of callshield")
    if "://" in location:
        raise ConfigError(
            f"store location {location.split('://', maxsplit=1)[0]}://...: expected a file path or postgresql://"
        )
    from callshield.store.sqlite import SqliteStore

    return await SqliteStore.open(Path(location), key, create=create)


__all__ = ["ShieldStore", "open_store"]
