"""The deployment's secret key: numbers are stored only as HMAC-SHA256 under it.

``callshield init`` writes 32 random bytes, hex-encoded, to the key file with mode 0600. Every
instance that shares a list (export/import of hashes, one PostgreSQL store) needs the same key.
Losing the key makes the stored hashes unmatchable; a new key is never created over an existing
store (the store records the key's fingerprint and refuses another key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from callshield.config import Settings
from callshield.errors import KeyFileError

KEY_BYTES = 32


def generate_key_file(path: Path) -> bytes:
    """Create a new key file (mode 0600). Refuses to overwrite an existing one."""
    key = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; refusing to replace it") from None
    except OSError as e:
        raise KeyFileError(f"cannot create key file {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def load_key(settings: Settings) -> bytes:
    """The key from ``$CALLSHIELD_KEY`` or the key file; clear errors for every way it can be wrong."""
    if settings.key_hex is not None:
        return _decode(settings.key_hex, "CALLSHIELD_KEY")
    path = settings.key_file
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist (run 'callshield init' once)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"key file {path} cannot be read: {e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    return _decode(text.strip(), f"key file {path}")


def fingerprint(key: bytes) -> str:
    """A short, non-secret identifier of a key, recorded in the store to catch a wrong key file."""
    return hmac.new(key, b"callshield key fingerprint v1", hashlib.sha256).hexdigest()[:16]


def _decode(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{where}: expected {KEY_BYTES * 2} hex digits")
    return key
