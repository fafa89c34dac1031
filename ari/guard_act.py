"""What the guard does with one outbound leg: nothing if the gate allowed it, else decide and act.

1. :meth:`LegJudge.resolve` reads the number (``classify``, no store work) and
   :meth:`LegJudge.passed_gate` asks the :class:`~callshield.ari.guard.GateLedger` whether the gate
   allowed this number for the channel that dialled it: then there is nothing to do.
2. Otherwise :meth:`LegJudge.decide` decides with the same :class:`~callshield.gate.Gate` (so the
   same ``decide()``; a number that cannot be read or a store error is BLOCK with reason
   ``error``, as at the gate), given the number as read in 1 when the gate reads numbers the
   same way. Strict mode blocks without asking the store (emergency and service codes excepted).
3. Allowed: one INFO line. Blocked: :meth:`LegJudge.block` hangs the leg up at once (``DELETE
   /channels/{id}``, Q.850 cause 21: the INVITE is cancelled while the far end rings), then logs
   one WARNING and writes an audit record ``bypass-blocked``. Numbers appear masked only.

The ``DELETE`` goes over the guard's events websocket (REST over the websocket) when
:attr:`LegJudge.over` is set, i.e. Asterisk answered there on the current connection; else over
HTTP. A websocket ``DELETE`` that gets no answer in time, or whose websocket is lost, is sent again
over HTTP at once (a channel already gone then answers 404: "it had already ended"); error statuses
are retried as over HTTP. A leg is never let through for want of an answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from callshield.ari.client import AriClient
from callshield.ari.gate import BLOCK_CAUSE
from callshield.ari.guard_ledger import GateLedger
from callshield.ari.guard_legs import OutboundLeg
from callshield.ari.websocket import EventStream
from callshield.errors import AriRequestError, CallShieldError, NumberError, PeerError, PeerUnavailable
from callshield.gate import Gate, Verdict, utc_now
from callshield.logsetup import InfoLine
from callshield.models import Action
from callshield.numbers import NumberRules, Target, classify
from callshield.policy import Decision, Reason, blocked_by_error
from callshield.privacy import mask
from callshield.store.base import ShieldStore

log = logging.getLogger(__name__)
info = InfoLine(log)
"""The per-clean-bypass INFO line, on serve's cheap path when nothing else listens."""

HANGUP_ATTEMPTS = 3
RETRY_DELAY = 0.05
AUDIT_ACTION = "bypass-blocked"
HUNG_UP = f"hung up (cause {BLOCK_CAUSE})"
NOT_GATED = "not-gated"
"""Reason of a strict-mode block: the leg did not pass the gate."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A leg's number as read, before any store work."""

    raw: str = field(repr=False)
    target: Target | None = field(repr=False)
    """None if the number cannot be read (the gate's check then blocks it, reason ``error``)."""

    @property
    def e164(self) -> str | None:
        return self.target.e164 if self.target is not None else None

    @property
    def masked(self) -> str:
        """Computed when shown only (legs that passed the gate never are)."""
        return self.target.masked if self.target is not None else mask(self.raw)


class LegJudge:
    """Decides and acts on outbound legs of one ARI server (see the module docstring)."""

    def __init__(
        self,
        name: str,
        client: AriClient,
        gate: Gate,
        store: ShieldStore,
        rules: NumberRules,
        ledger: GateLedger,
        *,
        strict: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = name
        self._client = client
        self._gate = gate
        self._store = store
        self._rules = rules
        self._ledger = ledger
        self._strict = strict
        self._clock = clock
        self._same_rules = rules == gate.rules
        """The gate reads numbers as :meth:`resolve` does: it is handed the number read, not the
        digits (configured otherwise, it reads them itself: its reading decides)."""
        self.counts: Counter[str] = Counter()
        """Legs by outcome: ``gated``, ``allowed``, ``blocked``."""
        self.over: EventStream | None = None
        """The events websocket that hang-ups go over (Asterisk answered REST requests on it);
        None: over HTTP. Set and cleared by the guard per connection."""

    def resolve(self, leg: OutboundLeg) -> Resolved:
        """The leg's number read like the gate reads it; unreadable: masked only."""
        try:
            return Resolved(leg.number, classify(leg.number, self._rules))
        except NumberError:
            return Resolved(leg.number, None)

    def passed_gate(self, leg: OutboundLeg, number: Resolved) -> bool:
        """True (and counted) if the gate allowed this number for the channel that dialled it."""
        if leg.caller_id == "" or number.e164 is None:
            return False
        if not self._ledger.was_allowed(leg.caller_id, number.e164):
            return False
        self.counts["gated"] += 1
        log.debug("guard %s: leg %s of channel %s passed the gate", self.name, leg.channel_id, leg.caller_id)
        return True

    async def decide(self, leg: OutboundLeg, number: Resolved) -> Verdict | None:
        """Decide a leg that did not pass the gate: None (logged) if allowed, else the verdict
        that :meth:`block` acts on (counted as blocked already)."""
        if self._strict:
            verdict = _strict_verdict(number)
        else:  # the number as resolve() read it, if the gate reads numbers the same way
            verdict = await self._gate.check(leg.number, target=number.target if self._same_rules else None)
        decision = verdict.decision
        if not decision.allowed:
            self.counts["blocked"] += 1
            return verdict
        self.counts["allowed"] += 1
        info(
            "guard %s: leg %s (%s) to %s did not pass the gate; allowed (%s)",
            self.name,
            leg.channel_id,
            _origin(leg),
            verdict.masked,
            decision.reason,
        )
        return None

    def failed(self, number: Resolved) -> Verdict:
        """The verdict on a leg whose decision failed: BLOCK, reason ``error`` (counted)."""
        self.counts["blocked"] += 1
        return Verdict(blocked_by_error("internal error"), number.masked, None)

    async def block(self, leg: OutboundLeg, verdict: Verdict) -> None:
        """Hang the blocked leg up at once, then log it and write its audit record."""
        outcome = await self._hang_up(leg.channel_id)
        decision = verdict.decision
        log.warning(
            "guard %s: leg %s (%s) to %s did not pass the gate and is blocked (%s: %s); %s",
            self.name,
            leg.channel_id,
            _origin(leg),
            verdict.masked,
            decision.reason,
            decision.rule,
            outcome,
        )
        await self._audit(leg, verdict, outcome == HUNG_UP)

    async def _hang_up(self, channel_id: str) -> str:
        """DELETE the leg with cause 21 (retried on ARI failures); says how it went."""
        for attempt in range(1, HANGUP_ATTEMPTS + 1):
            try:
                await self._delete(channel_id)
                return HUNG_UP
            except AriRequestError as e:
                if e.status == 404:
                    return "it had already ended"
                error: PeerError = e
            except PeerError as e:
                error = e
            if attempt < HANGUP_ATTEMPTS:
                await asyncio.sleep(RETRY_DELAY * attempt)
        log.error("guard %s: could not hang up leg %s (%s)", self.name, channel_id, error)
        return "the hang-up failed"

    async def _delete(self, channel_id: str) -> None:
        """One ``DELETE`` of the leg: over the websocket if :attr:`over`, and over HTTP if that
        one got no answer (an error status is raised as it came)."""
        stream = self.over
        if stream is not None and stream.connected:
            try:
                await self._client.hangup(channel_id, reason_code=BLOCK_CAUSE, over=stream)
                return
            except PeerUnavailable as e:
                log.warning(
                    "guard %s: hang-up of leg %s over the event websocket: %s; sending it over HTTP",
                    self.name,
                    channel_id,
                    e,
                )
        await self._client.hangup(channel_id, reason_code=BLOCK_CAUSE)

    async def _audit(self, leg: OutboundLeg, verdict: Verdict, hung_up: bool) -> None:
        detail = {
            "pbx": self.name,
            "channel": leg.channel_id,
            "caller_channel": leg.caller_id or "",
            "reason": verdict.decision.reason,
            "rule": verdict.decision.rule,
            "strict": self._strict,
            "hung_up": hung_up,
        }
        try:
            await self._store.audit("guard", AUDIT_ACTION, verdict.masked, detail, self._clock())
        except CallShieldError as e:
            log.error("guard %s: audit record for leg %s not written (%s)", self.name, leg.channel_id, e)


def _strict_verdict(number: Resolved) -> Verdict:
    if number.target is not None and number.target.exempt:
        return Verdict(Decision(Action.ALLOW, Reason.EXEMPT, rule="exempt short code"), number.masked, None)
    decision = Decision(Action.BLOCK, NOT_GATED, rule="strict mode: did not pass the gate")
    return Verdict(decision, number.masked, number.e164)


def _origin(leg: OutboundLeg) -> str:
    if leg.caller_id is None:
        return "found after reconnecting"
    return f"dialled by {leg.caller_id}" if leg.caller_id else "originated"
