"""The refusal journal: where a refusal waits, durably, while the shield store cannot take it.

One line per refusal, appended, written and ``fsync``'d (the directory too, when the file is new)
before :meth:`Journal.append` returns, so the caller may acknowledge the refusal once it has. The
number is never in the file in plaintext: each line is JSON with a random id, the masked number
and the refusal sealed with AES-256-GCM under a key derived from the deployment key (the line's
id and masked number are the associated data, so every field is authenticated). Anyone holding
the deployment key can already recover numbers from the store's hashes by trying every number;
the journal gives away nothing more. Files are mode 0600.

Files beside ``PATH``: ``PATH.replaying`` (refusals being handed to the store), ``PATH.done``
(ids the store has taken), ``PATH.rejected`` (lines that could not be read: torn by a crash in
mid-write, damaged, or sealed under another key; kept, never silently dropped), ``PATH.lock``.

:meth:`Journal.replay` is crash-safe at every step: under the journal's lock it copies the
readable lines to ``PATH.replaying`` (fsync) and only then empties the journal; each refusal the
store takes is marked in ``PATH.done``; when every one is done both files go. A crash in between
repeats a step: a line copied twice is one id, a done mark lost with the page cache (power loss,
not a process kill) hands one refusal to the store again, which keeps the later expiry anyway.
Appends (any process) and replays (one at a time: ``flock`` on ``PATH.lock``) run concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from callshield.errors import InvalidInput, StoreUnavailable
from callshield.models import Scope, Source
from callshield.store.base import NewEntry
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

VERSION = 1
_NONCE_BYTES = 12
_PRIVATE = 0o600
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Pending:
    """One refusal in the journal, waiting for the store."""

    id: str
    """32 random hex digits (:func:`new_id`): how replay tells a refusal it has already handed over."""
    entry: NewEntry
    actor: str
    """Who recorded it, for the store's audit record."""


@dataclass(frozen=True)
class ReplayReport:
    stored: int = 0
    """Refusals the store took in this pass."""
    waiting: int = 0
    """Refusals still waiting (the store refused them or went away); the next pass retries."""
    unreadable: int = 0
    """Lines moved to ``PATH.rejected`` in this pass (torn by a crash, damaged, another key)."""
    busy: bool = False
    """Another replay (this process or another) was running; this pass did nothing."""


Apply = Callable[[Pending], Awaitable[bool]]
"""Hands one refusal to the store: True once stored, False to keep it for a later pass."""


def new_id() -> str:
    """A fresh refusal id."""
    return secrets.token_hex(16)


def journal_key(key: bytes) -> bytes:
    """The journal's own AES-256 key, derived from the deployment key."""
    return hmac.new(key, b"callshield refusal journal v1", hashlib.sha256).digest()


class Journal:
    """The journal at ``path``, sealed under (a key derived from) the deployment ``key``."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self.replaying = _beside(path, "replaying")
        self.done = _beside(path, "done")
        self.rejected = _beside(path, "rejected")
        self._lock_path = _beside(path, "lock")
        self._aead = AESGCM(journal_key(key))

    def append(self, item: Pending) -> None:
        """Write one refusal and fsync it. Blocking (run it in a thread); once it returns, it is on disk.

        Raises StoreUnavailable if the journal cannot be written: the refusal is then not recorded.
        """
        line = self._seal(item)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _append_lines(self.path, [line])
        except OSError as e:
            raise StoreUnavailable(f"refusal journal {self.path} cannot be written: {e.strerror}") from None

    def empty(self) -> bool:
        """True when no refusal waits (nothing appended, nothing left from a replay)."""
        try:
            return self.path.stat().st_size == 0 and not self.replaying.exists()
        except FileNotFoundError:
            return not self.replaying.exists()

    def peek(self) -> tuple[list[Pending], int]:
        """The refusals waiting, each once, oldest first, and the count of lines kept in ``PATH.rejected``.

        Reads only, takes no lock: safe beside a running service (a line being appended just then
        is not shown). Raises StoreUnavailable if the files cannot be read.
        """
        try:
            done = set(_read_lines(self.done)) if self.replaying.exists() else set()
            lines = [*_read_lines(self.replaying), *_read_lines(self.path)]
            rejected = len(_read_lines(self.rejected))
        except OSError as e:
            raise StoreUnavailable(f"refusal journal {self.path} cannot be read: {e.strerror}") from None
        return self._undone(lines, done), rejected

    async def replay(self, apply: Apply) -> ReplayReport:
        """Hand every waiting refusal to ``apply``, oldest first; see the module doc for the steps."""
        try:
            with _try_lock(self._lock_path) as held:
                if not held:
                    return ReplayReport(busy=True)
                unreadable = await asyncio.to_thread(self._collect)
                items = await asyncio.to_thread(self._pending)
                stored = await self._hand_over(items, apply)
                if stored == len(items):
                    await asyncio.to_thread(self._finish)
                return ReplayReport(stored, len(items) - stored, unreadable)
        except OSError as e:
            raise StoreUnavailable(f"refusal journal {self.path} cannot be replayed: {e.strerror}") from None

    async def _hand_over(self, items: list[Pending], apply: Apply) -> int:
        stored = 0
        fd = _open_private(self.done, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            for item in items:
                if await apply(item):
                    _write_all(fd, item.id.encode("ascii") + b"\n")  # no fsync: see the module doc
                    stored += 1
        finally:
            os.close(fd)
        return stored

    def _collect(self) -> int:
        """Move the journal's lines into the replay file (readable ones) or the rejects (the others)."""
        if not self.replaying.exists():
            self.done.unlink(missing_ok=True)  # left by a crash after the last replay finished
        try:
            f = self.path.open("r+b")
        except FileNotFoundError:
            return 0
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # appends wait; released when the file closes
            lines = [line for line in f.read().split(b"\n") if line]
            readable = [(line, self._open_line(line) is not None) for line in lines]
            good = [line for line, ok in readable if ok]
            bad = [line for line, ok in readable if not ok]
            if bad:
                _append_lines(self.rejected, bad)
                log.warning("refusal journal: %d unreadable line(s) kept in %s", len(bad), self.rejected)
            if good:
                _append_lines(self.replaying, good)
            f.truncate(0)
            os.fsync(f.fileno())
            return len(bad)

    def _pending(self) -> list[Pending]:
        """The refusals in the replay file not yet marked done, each id once, in journal order."""
        return self._undone(_read_lines(self.replaying), set(_read_lines(self.done)))

    def _undone(self, lines: list[bytes], done: set[bytes]) -> list[Pending]:
        """The refusals in ``lines`` whose ids are not in ``done``, each id once, in line order;
        unreadable lines are passed over (a line torn while copying is still whole in the journal)."""
        items: dict[str, Pending] = {}
        for line in lines:
            item = self._open_line(line)
            if item is not None and item.id.encode("ascii") not in done:
                items.setdefault(item.id, item)
        return list(items.values())

    def _finish(self) -> None:
        self.replaying.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        self.done.unlink(missing_ok=True)

    # the line format ---------------------------------------------------------------------------
    def _seal(self, item: Pending) -> bytes:
        header = {"v": VERSION, "id": item.id, "masked": item.entry.masked}
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, _dump(_payload(item)), _dump(header))
        line = {
            **header,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }
        return _dump(line)

    def _open_line(self, line: bytes) -> Pending | None:
        """The refusal in one line, or None if the line is torn, damaged or sealed under another key."""
        try:
            data = json.loads(line)
            header = {"v": data["v"], "id": data["id"], "masked": data["masked"]}
            if header["v"] != VERSION or not _ID.fullmatch(str(header["id"])):
                return None
            nonce, sealed = base64.b64decode(data["nonce"]), base64.b64decode(data["sealed"])
            payload = json.loads(self._aead.decrypt(nonce, sealed, _dump(header)))
            return _pending_from(str(header["id"]), payload)
        except (ValueError, KeyError, TypeError, AttributeError, InvalidTag, InvalidInput, binascii.Error):
            return None


def _payload(item: Pending) -> dict[str, Any]:
    entry = item.entry
    return {
        "e164": entry.e164,
        "scope": str(entry.scope),
        "source": str(entry.source),
        "reason": entry.reason,
        "expires_at": None if entry.expires_at is None else entry.expires_at.isoformat(),
        "evidence": dict(entry.evidence),
        "actor": item.actor,
    }


def _pending_from(item_id: str, p: dict[str, Any]) -> Pending:
    expires = None if p["expires_at"] is None else datetime.fromisoformat(p["expires_at"])
    evidence = {str(k): str(v) for k, v in p["evidence"].items()}
    entry = NewEntry(
        str(p["e164"]), Scope.parse(p["scope"]), Source(p["source"]), str(p["reason"]), expires, evidence
    )
    return Pending(item_id, entry, str(p["actor"]))


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# files -------------------------------------------------------------------------------------------
def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.name}.{suffix}")


def _open_private(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CLOEXEC, _PRIVATE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, _PRIVATE)
    return fd


def _append_lines(path: Path, lines: list[bytes]) -> None:
    """Append whole lines under the file's lock and fsync; a torn last line stays on its own line."""
    fd = _open_private(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        _write_all(fd, (b"\n" if torn else b"") + b"".join(line + b"\n" for line in lines))
        os.fsync(fd)
        if size == 0:
            _fsync_dir(path.parent)  # the file may be new: make its directory entry durable too
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_lines(path: Path) -> list[bytes]:
    try:
        return [line for line in path.read_bytes().split(b"\n") if line]
    except FileNotFoundError:
        return []


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Hold ``path``'s exclusive lock if nobody else does (yields False if somebody does)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _open_private(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
