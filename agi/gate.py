"""FastAGI scripts of callshield: ``callshield/gate`` (the dial-time check).

    AGI(agi://HOST:4573/callshield/gate,${NUMBER}[,company[,campaign]])

sets ``SHIELD_RESULT`` (ALLOW|BLOCK), ``SHIELD_REASON`` and ``SHIELD_UNTIL`` with the same
:class:`~callshield.gate.Gate` the ARI application uses, then returns: the server closes the socket
at once and Asterisk continues the dialplan. The shipped ``callshield-gate-agi`` context treats
anything but ``AGISTATUS=SUCCESS`` and ``SHIELD_RESULT=ALLOW`` as blocked.
"""

from __future__ import annotations

import logging

from callshield.agi.protocol import Command
from callshield.agi.server import Handler
from callshield.agi.session import AgiSession
from callshield.ari.guard_ledger import GateLedger
from callshield.gate import Gate, Verdict, call_arguments
from callshield.logsetup import InfoLine

log = logging.getLogger(__name__)
_info = InfoLine(log)
"""The per-decision line: straight into ``callshield serve``'s log buffer when nothing else listens."""

GATE_SCRIPT = "callshield/gate"
KEPT_COMMANDS = 256
"""Distinct verdicts whose commands a gate handler keeps formatted (:class:`VerdictCommands`)."""


class VerdictCommands:
    """The ``SET VARIABLE`` commands of each verdict, formatted once per distinct verdict: ALLOW
    has a handful; a BLOCK's ``SHIELD_UNTIL`` is its entry's expiry, so at most ``limit`` are kept
    (all dropped when full)."""

    def __init__(self, limit: int = KEPT_COMMANDS) -> None:
        self._kept: dict[tuple[str, str, str], tuple[Command, ...]] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._kept)

    def __call__(self, verdict: Verdict) -> tuple[Command, ...]:
        decision = verdict.decision
        key = (decision.action, decision.reason, verdict.until)
        found = self._kept.get(key)
        if found is None:
            if len(self._kept) >= self._limit:
                self._kept.clear()
            variables = verdict.variables().items()
            found = self._kept[key] = tuple(Command("SET VARIABLE", *item) for item in variables)
        return found


def gate_handler(gate: Gate, ledger: GateLedger | None = None) -> Handler:
    """The gate script; ``ledger`` notes allowed calls for the guard (the uniqueid is the channel id)."""

    commands = VerdictCommands()

    async def gate_script(session: AgiSession) -> None:
        request = session.request
        uniqueid = request.uniqueid
        number, company, campaign = call_arguments(request.args)
        verdict = await gate.check(number, company, campaign)
        decision = verdict.decision
        if ledger is not None and decision.allowed and verdict.e164 is not None:
            ledger.allowed(uniqueid, verdict.e164)
        await session.set_variables(commands(verdict))
        await session.close()  # Asterisk continues the dialplan now; the log line can wait
        _info(
            "agi gate %s %s %s (%s) uniqueid=%s",
            verdict.masked,
            decision.action,
            decision.reason,
            decision.rule,
            uniqueid,
        )

    return gate_script
