"""SQLite schema of the shield store, as forward migrations.

``MIGRATIONS[n]`` takes a store from schema version ``n`` to ``n + 1``; a new store runs them all.
A store whose version is newer than the last migration was written by a newer callshield and is
refused rather than guessed at. Times are integer Unix seconds (UTC), except the audit log's,
which are the ISO text its hash chain covers.
"""

from __future__ import annotations

APPLICATION = "callshield"

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE entries (
        number_hash BLOB    NOT NULL CHECK (length(number_hash) = 32),
        scope       TEXT    NOT NULL,
        masked      TEXT    NOT NULL,
        source      TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        evidence    TEXT    NOT NULL DEFAULT '[]',
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        PRIMARY KEY (number_hash, scope)
    ) WITHOUT ROWID;
    CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE prefixes (
        prefix     TEXT    NOT NULL,
        scope      TEXT    NOT NULL,
        action     TEXT    NOT NULL CHECK (action IN ('ALLOW', 'BLOCK')),
        reason     TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (prefix, scope)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        masked    TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash      BLOB NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 1 -> 2: a version of the prefix rules, bumped by every change to them (by any connection, or
    # by hand), so that a look-up can read it with the number's entries in one statement and keep
    # the rules themselves in memory.
    """
    INSERT INTO meta (key, value) VALUES ('prefix_version', '0');
    CREATE TRIGGER prefixes_inserted AFTER INSERT ON prefixes
        BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'prefix_version'; END;
    CREATE TRIGGER prefixes_updated AFTER UPDATE ON prefixes
        BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'prefix_version'; END;
    CREATE TRIGGER prefixes_deleted AFTER DELETE ON prefixes
        BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'prefix_version'; END;
    """,
)

LATEST = len(MIGRATIONS)
