"""Recording refusals durably: the one path every capture (keypad code, opt-out, mark) goes through.

:meth:`RefusalRecorder.record` returns only once the refusal is durable: committed in the store
(``synchronous=FULL``), or, when the store fails or does not answer within ``store_timeout``,
fsync'd in the :class:`~callshield.journal.Journal`. Only then may the caller acknowledge it (tone,
confirmation prompt, exit 0). If both fail it raises, and the caller must not acknowledge.

A store write that outlives ``store_timeout`` is never cancelled (cancelling a write in the middle
of its transaction can leave the store's connection unusable); it is left to finish, and if it
does, replay skips that refusal. :meth:`RefusalRecorder.replay` hands journaled refusals to the
store; :func:`replay_forever` is the service's loop. Each refusal carries a random ``refusal_id``
and its ``refused_at`` time in its evidence, so a refusal handed over twice (a crash between the
store's commit and the journal's done mark) is recognisable as one.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from callshield.config import ShieldPeriods
from callshield.errors import CallShieldError, InvalidInput, NumberError, StoreUnavailable
from callshield.gate import utc_now
from callshield.journal import Journal, Pending, new_id
from callshield.models import GLOBAL, Scope, ShieldEntry, Source
from callshield.numbers import NumberRules, normalize
from callshield.privacy import mask
from callshield.store.base import (
    MAX_EVIDENCE_ITEMS,
    MAX_EVIDENCE_KEY,
    MAX_EVIDENCE_VALUE,
    MAX_REASON,
    AddResult,
    NewEntry,
    ShieldStore,
)

log = logging.getLogger(__name__)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: Evidence keys the store or the recorder write themselves.
RESERVED_EVIDENCE = frozenset({"at", "source", "reason", "refusal_id", "refused_at"})
CLIPPED = "...[clipped]"
DEFAULT_STORE_TIMEOUT = 0.5


class RefusalSink(Protocol):
    """What the capture adapters (ARI, FastAGI, marking) hand refusals to: durable on return."""

    async def refuse(
        self, e164: str, scope: Scope, source: Source, reason: str, evidence: dict[str, str], at: datetime
    ) -> None: ...


@dataclass(frozen=True)
class Refusal:
    """A customer's refusal, as a capture adapter saw it."""

    e164: str
    """The refused number in E.164 (adapters resolve it with :func:`callshield.numbers.classify`)."""
    scope: Scope
    source: Source
    reason: str
    evidence: Mapping[str, str]
    """Call id, channel, agent, digits, ...: kept with the entry, one item per refusal."""
    at: datetime
    """When the customer refused (aware); the shield period starts here."""

    def __post_init__(self) -> None:
        if not _E164.fullmatch(self.e164):
            raise NumberError(f"{mask(self.e164)}: a refusal needs an E.164 number")
        if self.at.tzinfo is None:
            raise InvalidInput("a refusal's time must carry its time zone")
        if not self.reason:
            raise InvalidInput("a refusal needs a reason")
        if len(self.reason) > MAX_REASON:
            raise InvalidInput(f"the reason is {len(self.reason)} characters long (at most {MAX_REASON})")
        if len(self.evidence) > MAX_EVIDENCE_ITEMS - len(RESERVED_EVIDENCE):
            raise InvalidInput(
                f"{len(self.evidence)} evidence items (at most {MAX_EVIDENCE_ITEMS - len(RESERVED_EVIDENCE)})"
            )
        for k, v in self.evidence.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidInput("refusal evidence must map text to text")
            if k in RESERVED_EVIDENCE or len(k) > MAX_EVIDENCE_KEY:
                raise InvalidInput(f"refusal evidence may not use the key {k[:MAX_EVIDENCE_KEY]!r}")
        evidence = {k: _clip(v) for k, v in self.evidence.items()}  # a refusal is never lost for its evidence
        object.__setattr__(self, "evidence", MappingProxyType(evidence))


def _clip(value: str) -> str:
    """An evidence value cut to the store's bound (a PBX may hand over a very long SIP Call-ID)."""
    if len(value) <= MAX_EVIDENCE_VALUE:
        return value
    return value[: MAX_EVIDENCE_VALUE - len(CLIPPED)] + CLIPPED


class Durability(enum.StrEnum):
    """Where a refusal was durably recorded before :meth:`RefusalRecorder.record` returned."""

    STORE = "store"
    JOURNAL = "journal"


@dataclass(frozen=True)
class Recorded:
    """What :meth:`RefusalRecorder.record` did: the refusal is durable in ``where``."""

    refusal_id: str
    masked: str
    where: Durability
    expires_at: datetime | None
    """In the store: the shield's end now in force (the later of old and new). In the journal: this
    refusal's own end, which the shield will have at least. None: permanent."""
    created: bool | None = None
    """In the store: True if the number was not shielded in that scope before. None: journaled."""


class RefusalRecorder:
    """Records refusals in ``store`` (None: it could not be opened, so every refusal is journaled).

    ``actor`` names the recorder in the store's audit records; ``clock`` gives the time of the
    store writes (a refusal's own time is :attr:`Refusal.at`).
    """

    def __init__(
        self,
        store: ShieldStore | None,
        periods: ShieldPeriods,
        journal: Journal,
        actor: str,
        *,
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.periods = periods
        self.journal = journal
        self.actor = actor
        self.store_timeout = store_timeout
        self.clock = clock
        self._late: dict[str, asyncio.Task[AddResult]] = {}
        """Store writes that outlived ``store_timeout``, by refusal id (their refusals are journaled)."""
        self._pending: dict[str, list[ShieldEntry]] = {}
        """Refusals journaled by this process and not yet replayed, by E.164: the gate checks them
        too, so a number refused while store writes fail is blocked at once, not after the replay."""

    def pending(self, e164: str) -> tuple[ShieldEntry, ...]:
        """This process's journaled refusals of ``e164`` that the store may not have yet."""
        return tuple(self._pending.get(e164, ()))

    async def record(self, refusal: Refusal) -> Recorded:
        """Make ``refusal`` durable (store, else journal); raises StoreUnavailable if neither took it."""
        refusal_id = new_id()
        entry = NewEntry(
            refusal.e164,
            refusal.scope,
            refusal.source,
            refusal.reason,
            self.periods.expiry(refusal.at, refusal.source, refusal.scope),
            {**refusal.evidence, "refusal_id": refusal_id, "refused_at": refusal.at.isoformat()},
        )
        task = (
            None
            if self.store is None
            else asyncio.create_task(self.store.add(entry, self.actor, self.clock()))
        )
        result = await self._outcome(refusal_id, task)
        if result is not None:
            log.info("refusal %s: %s shielded (%s, %s)", refusal_id, entry.masked, entry.scope, entry.source)
            return Recorded(refusal_id, entry.masked, Durability.STORE, result.expires_at, result.created)
        await asyncio.to_thread(self.journal.append, Pending(refusal_id, entry, self.actor))
        self._pending.setdefault(refusal.e164, []).append(
            ShieldEntry(
                b"", entry.masked, entry.scope, entry.source, entry.reason, refusal.at, entry.expires_at
            )
        )
        if task is not None and not task.done():
            self._late[refusal_id] = task  # only now: its line is in the journal
        log.warning("refusal %s: %s kept in journal %s", refusal_id, entry.masked, self.journal.path)
        return Recorded(refusal_id, entry.masked, Durability.JOURNAL, entry.expires_at)

    async def refuse(
        self, e164: str, scope: Scope, source: Source, reason: str, evidence: dict[str, str], at: datetime
    ) -> None:
        """:meth:`record` in the shape of the capture adapters' ``RefusalSink`` protocol."""
        await self.record(Refusal(e164, scope, source, reason, evidence, at))

    async def _outcome(self, refusal_id: str, task: asyncio.Task[AddResult] | None) -> AddResult | None:
        """The store's answer within ``store_timeout``, or None (no store, failed, or still busy)."""
        if task is None:
            return None
        done, _ = await asyncio.wait({task}, timeout=self.store_timeout)
        if not done:
            log.warning("refusal %s: store did not answer in %.2f s", refusal_id, self.store_timeout)
            task.add_done_callback(_log_late)
            return None
        try:
            return task.result()
        except CallShieldError as e:
            log.warning("refusal %s: store failed: %s", refusal_id, e)
        except Exception:
            log.exception("refusal %s: store failed unexpectedly", refusal_id)
        return None

    async def replay(self) -> int:
        """Hand journaled refusals to the store; how many it took. Safe to call any time, from anywhere."""
        store = self.store
        if store is None:
            return 0
        before = set(self._late)
        unavailable: list[StoreUnavailable] = []

        async def apply(item: Pending) -> bool:
            return not unavailable and await self._replay_one(store, item, unavailable)

        try:
            report = await self.journal.replay(apply)
        except CallShieldError as e:
            log.error("refusal journal replay failed: %s", e)
            return 0
        if report.stored or report.waiting:
            log.info("journal replay: %d stored, %d still waiting", report.stored, report.waiting)
        if unavailable:
            log.warning("journal replay stopped, store unavailable: %s", unavailable[0])
        if not report.busy and not report.waiting and not unavailable:
            self._pending.clear()
        if not report.busy and not report.waiting:
            for refusal_id in before:  # their lines were handled, here or by another process
                task = self._late.get(refusal_id)
                if task is not None and task.done():
                    del self._late[refusal_id]
        return report.stored

    async def _replay_one(
        self, store: ShieldStore, item: Pending, unavailable: list[StoreUnavailable]
    ) -> bool:
        late = self._late.pop(item.id, None)
        if late is not None:
            await asyncio.wait({late})
            if not late.cancelled() and late.exception() is None:
                return True  # the store finished the first write after all
        try:
            await store.add(item.entry, item.actor, self.clock())
        except StoreUnavailable as e:
            unavailable.append(e)
            return False
        except Exception:
            log.exception(
                "refusal %s (%s): the store refused it; kept for the next pass", item.id, item.entry.masked
            )
            return False
        return True


def _log_late(task: asyncio.Task[AddResult]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a store write that timed out failed later: %s", task.exception())


async def replay_forever(recorder: RefusalRecorder, interval: float) -> None:
    """The service's loop: replay now (the journal of a previous run), then every ``interval`` seconds."""
    while True:
        try:
            await recorder.replay()
        except Exception:
            log.exception("refusal journal replay failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


async def mark(
    recorder: RefusalRecorder,
    number: str,
    rules: NumberRules,
    *,
    scope: Scope = GLOBAL,
    source: Source = Source.AGENT_FLAG,
    reason: str = "marked by operator",
    evidence: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> Recorded:
    """Mark the customer of ``number`` (as dialled or typed) as refusing: the CLI's and admin API's call.

    Durable when it returns (see :meth:`RefusalRecorder.record`). Raises NumberError (nothing
    recorded) for input that is not a number that can be shielded, such as an emergency code.
    """
    e164 = normalize(number, rules)
    when = recorder.clock() if at is None else at
    return await recorder.record(Refusal(e164, scope, source, reason, dict(evidence or {}), when))
