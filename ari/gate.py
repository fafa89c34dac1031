"""Acting on a gate verdict over ARI, in as few round trips as the verdict needs.

The shipped dialplan (``callshield-gate``) has one label per verdict (``allow-clean``,
``block-shielded``, ...) that sets ``SHIELD_RESULT`` and ``SHIELD_REASON`` itself, so:

- allowed: ``continue`` to the label (1 round trip);
- blocked: ``SHIELD_UNTIL`` when there is an end date, then ``continue`` (1-2 round trips), or,
  with ``hangup_blocked``, ``DELETE`` with Q.850 cause 21 (1 round trip).

A dialplan without the labels (Asterisk answers 404 ``Requested label can not be found``) gets
the three variables and a plain ``continue`` to the next priority instead, with one warning.
A channel that is gone (404) or left Stasis (409) meanwhile is a normal race, not an error.
"""

from __future__ import annotations

import logging

from callshield.ari.client import AriClient
from callshield.errors import AriRequestError
from callshield.gate import Verdict

log = logging.getLogger(__name__)

BLOCK_CAUSE = 21
"""Q.850 call rejected: a SIP phone sees 403 Forbidden."""


def dialplan_label(verdict: Verdict) -> str:
    """The label of ``callshield-gate`` that carries this verdict: ``allow-clean``, ``block-error``..."""
    return f"{verdict.decision.action.lower()}-{verdict.decision.reason}"


def stasis_args(app_data: str, app: str) -> list[str] | None:
    """The arguments of ``Stasis(app,...)`` from a channel's ``dialplan.app_data``, if it is ours.

    Used for channels found parked after a reconnect: Asterisk does not replay their StasisStart.
    """
    name, *args = app_data.split(",")
    return args if name.strip() == app else None


class VerdictActor:
    """Applies verdicts to channels of one ARI server."""

    def __init__(self, client: AriClient, *, hangup_blocked: bool = False) -> None:
        self._client = client
        self._hangup_blocked = hangup_blocked
        self._labels_missing = False

    async def apply(self, channel_id: str, verdict: Verdict, label: str) -> bool:
        """Act on the verdict (``label``: its :func:`dialplan_label`); False if the channel was
        already gone (a normal race)."""
        try:
            if self._hangup_blocked and not verdict.decision.allowed:
                await self._client.hangup(channel_id, reason_code=BLOCK_CAUSE)
            elif self._labels_missing:
                await self._by_variables(channel_id, verdict)
            else:
                await self._to_label(channel_id, verdict, label)
        except AriRequestError as e:
            if not e.is_gone:
                raise
            log.info("channel %s left before its verdict (%s)", channel_id, e.status)
            return False
        return True

    async def _to_label(self, channel_id: str, verdict: Verdict, label: str) -> None:
        if verdict.until:
            await self._client.set_channel_var(channel_id, "SHIELD_UNTIL", verdict.until)
        try:
            await self._client.continue_in_dialplan(channel_id, label=label)
        except AriRequestError as e:
            if e.status != 404 or "label" not in e.message.lower():
                raise
            log.warning(
                "the dialplan has no label %s where channel %s runs Stasis: install "
                "extensions_callshield.conf; setting SHIELD_* variables and continuing instead",
                label,
                channel_id,
            )
            self._labels_missing = True
            await self._by_variables(channel_id, verdict)

    async def _by_variables(self, channel_id: str, verdict: Verdict) -> None:
        for name, value in verdict.variables().items():
            await self._client.set_channel_var(channel_id, name, value)
        await self._client.continue_in_dialplan(channel_id)
