"""PostgreSQL schema of the shield store, as forward migrations, and the check run on every open.

The same concepts as the SQLite schema (:mod:`callshield.store.sqlite_schema`): ``meta`` (application,
schema version, key fingerprint), ``entries`` keyed by ``(number_hash, scope)``, ``prefixes``, and the
hash-chained ``audit`` log, append-only by trigger. Differences: times are ``timestamptz`` (whole
seconds, as SQLite's integers), evidence is ``jsonb``, each prefix rule also carries ``prefix_key``,
a 64-bit keyed hash of the prefix (what look-ups of schema version 1 matched rules by), and ``meta``
holds ``prefix_version``, which a trigger bumps on every change of the prefix rules: look-ups keep
the rules (a handful, rarely changed) and read only this version with the number's entries. A
look-up sends the server only the number's keyed hash (a server that logs parameters logs no
number).

The tables live in the connection's current schema (the first existing one on ``search_path``; a
``?search_path=NAME`` URL parameter selects it), so one database can hold several stores. The check
and the migrations run under a transaction-level advisory lock, so processes opening a new store
at once create it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from callshield.errors import KeyFileError, StoreCorrupt, StoreError, StoreUnavailable
from callshield.store.audit import format_at

APPLICATION = "callshield"

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE entries (
        number_hash bytea       NOT NULL CHECK (octet_length(number_hash) = 32),
        scope       text        NOT NULL,
        masked      text        NOT NULL,
        source      text        NOT NULL,
        reason      text        NOT NULL,
        evidence    jsonb       NOT NULL DEFAULT '[]',
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz,
        PRIMARY KEY (number_hash, scope)
    );
    CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE prefixes (
        prefix     text        NOT NULL,
        scope      text        NOT NULL,
        prefix_key bigint      NOT NULL,
        action     text        NOT NULL CHECK (action IN ('ALLOW', 'BLOCK')),
        reason     text        NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        PRIMARY KEY (prefix, scope)
    );
    CREATE INDEX prefixes_key ON prefixes (prefix_key);
    CREATE TABLE audit (
        seq       bigint PRIMARY KEY,
        at        text   NOT NULL,
        actor     text   NOT NULL,
        action    text   NOT NULL,
        masked    text   NOT NULL,
        detail    text   NOT NULL,
        prev_hash bytea  NOT NULL,
        hash      bytea  NOT NULL
    );
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
        END
    $$;
    CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    """,
    # 1 -> 2: the version of the prefix rules, bumped by every statement that changes them (from
    # any process, or by hand): a look-up reads the version with the number's entries and keeps
    # the rules themselves. The trigger runs as the schema's owner, so the service role needs no
    # right to write ``meta``.
    """
    INSERT INTO meta (key, value) VALUES ('prefix_version', '0');
    CREATE FUNCTION prefixes_changed() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            EXECUTE format('UPDATE %I.meta SET value = (value::bigint + 1)::text WHERE key = %L',
                           TG_TABLE_SCHEMA, 'prefix_version');
            RETURN NULL;
        END
    $$;
    CREATE TRIGGER prefixes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON prefixes
        FOR EACH STATEMENT EXECUTE FUNCTION prefixes_changed();
    """,
)

LATEST = len(MIGRATIONS)

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('callshield {} ' || current_schema(), 0))"
MIGRATION_LOCK = _LOCK.format("migrate")
AUDIT_LOCK = _LOCK.format("audit")
"""Serialises every audited write of one store across all processes and hosts (see ``Writer``)."""

_STATE = """
SELECT current_schema(),
       ARRAY(SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema())
"""


async def prepare(con: Any, key_fingerprint: str, where: str, *, create: bool) -> None:
    """Check the store in the connection's schema (creating or migrating it as needed).

    Raises StoreUnavailable (no schema, or no store with ``create=False``), StoreCorrupt (foreign
    tables, another application, a newer schema), KeyFileError (another key's store) or StoreError
    (a migration is due but this role may not run it). An up-to-date store is checked without a
    lock or a write, so a role without DDL rights (the service's) can open it.
    """
    if await _current(con, key_fingerprint, where, create=create):
        return
    async with con.transaction():
        await con.execute(MIGRATION_LOCK)
        if await _current(con, key_fingerprint, where, create=create):
            return
        version = int((await _meta(con, await _tables(con))).get("schema_version", "0"))
        try:
            for step in range(version, LATEST):
                await con.execute(MIGRATIONS[step])
        except asyncpg.InsufficientPrivilegeError as e:
            raise StoreError(
                f"store {where} needs schema version {LATEST} (it has {version}) but this role may not "
                f"create it ({e}): run 'callshield init' once as the role that owns the schema"
            ) from None
        if version == 0:
            now = format_at(datetime.now(UTC))
            rows = [("application", APPLICATION), ("key_fingerprint", key_fingerprint), ("created_at", now)]
            await con.executemany("INSERT INTO meta (key, value) VALUES ($1, $2)", rows)
            await con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', $1)", str(LATEST))
        else:
            await con.execute("UPDATE meta SET value = $1 WHERE key = 'schema_version'", str(LATEST))


async def _tables(con: Any) -> tuple[str | None, set[str]]:
    schema, tables = await con.fetchrow(_STATE)
    return (None if schema is None else str(schema)), {str(t) for t in tables}


async def _current(con: Any, key_fingerprint: str, where: str, *, create: bool) -> bool:
    """True if the store is there, ours, of the latest version and for this key; raises if it never can be."""
    schema, tables = await _tables(con)
    if schema is None:
        raise StoreUnavailable(f"store {where}: no schema on its search_path exists (create one first)")
    if not tables:
        if not create:
            raise StoreUnavailable(f"store {where} has no callshield tables (run 'callshield init')")
        return False
    meta = await _meta(con, (schema, tables))
    if meta.get("application") != APPLICATION:
        raise StoreCorrupt(f"schema {schema} of {where} is not a callshield store; refusing to touch it")
    version = int(meta.get("schema_version", "0"))
    if version > LATEST:
        raise StoreCorrupt(
            f"store {where} has schema version {version}, newer than this callshield knows ({LATEST}):"
            " upgrade callshield"
        )
    if meta.get("key_fingerprint") != key_fingerprint:
        raise KeyFileError(
            f"the key does not match store {where} (key {key_fingerprint}, store made with "
            f"{meta.get('key_fingerprint')}): use the key file the store was created with"
        )
    return version == LATEST


async def _meta(con: Any, state: tuple[str | None, set[str]]) -> dict[str, str]:
    """The meta table of the current schema ({} if it has none)."""
    if "meta" not in state[1]:
        return {}
    return {str(k): str(v) for k, v in await con.fetch("SELECT key, value FROM meta")}
