"""The gate's one procedure, shared by the ARI and FastAGI adapters: resolve, look up, decide.

Whatever goes wrong on the way (an unparseable number, a store error, a look-up slower than the
configured deadline, a bug) becomes a BLOCK with reason ``error``: a call is never let through
because of an error. The adapters only translate their wire format into :meth:`Gate.check` and
act on the :class:`Verdict`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from callshield.errors import CallShieldError, NumberError
from callshield.models import NO_MATCHES, Matches, ShieldEntry
from callshield.numbers import NumberRules, Target, classify
from callshield.policy import CallContext, Decision, Reason, blocked_by_error, decide
from callshield.privacy import mask
from callshield.store.base import ShieldStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Verdict:
    """A decision about one call, with the number in the only form that may be shown."""

    decision: Decision
    masked: str
    e164: str | None
    """Kept for the adapter's own follow-up (the guard's 'gate allowed this' record); never logged."""

    @property
    def until(self) -> str:
        """``SHIELD_UNTIL``: the block's end in ISO 8601 UTC, ``permanent``, or empty if allowed."""
        if self.decision.allowed:
            return ""
        if self.decision.until is None:
            return "" if self.decision.reason == Reason.ERROR else "permanent"
        return self.decision.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def variables(self) -> dict[str, str]:
        """The channel variables the gate sets: ``SHIELD_RESULT``, ``SHIELD_REASON``, ``SHIELD_UNTIL``."""
        return {
            "SHIELD_RESULT": str(self.decision.action),
            "SHIELD_REASON": self.decision.reason,
            "SHIELD_UNTIL": self.until,
        }


def call_arguments(args: Sequence[str]) -> tuple[str, str | None, str | None]:
    """``(number, company, campaign)`` from a gate entry's arguments (``NUMBER[,company[,campaign]]``,
    as the ARI and FastAGI gates take them); empty ones are None, extra ones ignored."""
    padded = (*args, "", "", "")
    return padded[0], padded[1] or None, padded[2] or None


class Gate:
    """Decides calls against one store. Cheap: one inline look-up, no audit write unless asked."""

    def __init__(
        self,
        store: ShieldStore,
        rules: NumberRules,
        *,
        timeout: float = 1.0,
        audit_decisions: bool = False,
        clock: Callable[[], datetime] = utc_now,
        pending: Callable[[str], tuple[ShieldEntry, ...]] | None = None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._deadline = None if store.inline_lookup and not audit_decisions else timeout
        """Seconds a decision may take; None when nothing on its path awaits (an inline look-up):
        arming a timer per call costs more than such a look-up's whole Python work."""
        self._audit = audit_decisions
        self._clock = clock
        self._pending = pending
        """Refusals not in the store yet (journaled while its writes failed): they block too."""
        self.counts: Counter[str] = Counter()
        """Decisions by ``ACTION/reason``, for the service's periodic summary."""

    @property
    def rules(self) -> NumberRules:
        """How this gate reads numbers (a caller that classified with the same may pass ``target``)."""
        return self._rules

    async def check(
        self,
        raw: str,
        company: str | None = None,
        campaign: str | None = None,
        *,
        target: Target | None = None,
    ) -> Verdict:
        """Decide a call to ``raw`` (digits as dialled) made for ``company``/``campaign``.

        ``target``: ``classify(raw, self.rules)``, when the caller has it already (the guard reads
        every leg's number before it knows whether to ask): not read twice. Without it, a number
        that cannot be read is BLOCK like any other error.
        """
        try:
            if self._deadline is None:
                verdict = await self._check(raw, company, campaign, target)
            else:
                async with asyncio.timeout(self._deadline):
                    verdict = await self._check(raw, company, campaign, target)
        except TimeoutError:
            verdict = Verdict(blocked_by_error("store look-up timed out"), mask(raw), None)
        except NumberError as e:
            verdict = Verdict(blocked_by_error(f"number: {e}"), mask(raw), None)
        except CallShieldError as e:
            verdict = Verdict(blocked_by_error(f"{type(e).__name__}: {e}"), mask(raw), None)
        except Exception:
            log.exception("gate failed on %s; blocking", mask(raw))
            verdict = Verdict(blocked_by_error("internal error"), mask(raw), None)
        self.counts[verdict.decision.action + "/" + verdict.decision.reason] += 1
        return verdict

    async def _check(
        self, raw: str, company: str | None, campaign: str | None, target: Target | None
    ) -> Verdict:
        if target is None:
            target = classify(raw, self._rules)
        e164 = target.e164
        matches = NO_MATCHES
        if e164:
            matches = await self._store.lookup(e164)
            if self._pending is not None:
                journaled = self._pending(e164)
                if journaled:
                    matches = Matches(matches.entries + journaled, matches.prefixes)
        now = self._clock()
        decision = decide(CallContext(e164, target.exempt, company, campaign), matches, now)
        masked = target.masked
        if self._audit:
            detail = {"verdict": str(decision.action), "reason": decision.reason, "company": company or ""}
            await self._store.audit("gate", "gate-decision", masked, detail, now)
        return Verdict(decision, masked, e164)
