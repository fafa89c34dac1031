"""Constants and helpers shared by the test folders (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callshield.models import Scope, Source
from callshield.store.base import NewEntry, ShieldStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed 'now' for tests that pass the clock in."""
N1 = "+8613800138000"


def refusal(
    number: str = N1, days: int | None = 365, source: Source = Source.CUSTOMER_OPTOUT, **evidence: str
) -> NewEntry:
    """A global entry for ``number`` as ``source`` records it at :data:`T0` (``days``: None permanent)."""
    expires = None if days is None else T0 + timedelta(days=days)
    return NewEntry(number, Scope(), source, f"{source} refused", expires, evidence)


class StoreSink:
    """A refusal sink for adapter tests: straight into the store (the service's recorder adds the
    journal), remembering ``(e164, scope, source, evidence)`` of every refusal it took."""

    def __init__(self, store: ShieldStore) -> None:
        self.store = store
        self.refusals: list[tuple[str, Scope, Source, dict[str, str]]] = []

    async def refuse(
        self, e164: str, scope: Scope, source: Source, reason: str, evidence: dict[str, str], at: datetime
    ) -> None:
        entry = NewEntry(e164, scope, source, reason, at + timedelta(days=365), evidence)
        await self.store.add(entry, "test", at)
        self.refusals.append((e164, scope, source, evidence))
