"""The customer's own opt-out keypress: ``Stasis(callshield,optout[,company[,campaign]])``.

On an answered customer leg (a prerecorded campaign, or before an agent joins) the prompt starts
at once (US rules want the opt-out offered within 2 s), digits pressed during it count, and:

- the opt-out digit: the refusal is stored durably, the confirmation is played, the call ends;
- no digit before the timeout: the channel continues in the dialplan (the campaign goes on);
- the customer hangs up: nothing is recorded.

The customer's number is the leg's caller number (for an outbound leg Asterisk reports the
number dialled there), else its connected number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from callshield.ari.capture import CUSTOMER_HANGUP_CAUSE
from callshield.ari.client import AriClient
from callshield.ari.events import ChannelDtmfReceived, ChannelHangupRequest, Event, StasisEnd
from callshield.ari.models import Channel
from callshield.capture import RefusalSink
from callshield.capture_config import OptOutSettings
from callshield.errors import AriRequestError, CallShieldError, PeerError
from callshield.models import Scope, Source
from callshield.numbers import NumberRules, normalize
from callshield.privacy import mask

log = logging.getLogger(__name__)


class OptOut:
    """Runs one opt-out offer per channel; events for the channel come through :meth:`run`'s queue."""

    def __init__(
        self, client: AriClient, sink: RefusalSink, rules: NumberRules, settings: OptOutSettings
    ) -> None:
        self._client, self._sink, self._rules, self._settings = client, sink, rules, settings

    async def run(self, channel: Channel, args: list[str], events: asyncio.Queue[Event]) -> None:
        padded = [*args, "", ""]
        e164 = self._number(channel)
        if e164 is None:
            log.warning(
                "opt-out on %s: the customer's number is unknown; continuing without offer", channel.id
            )
            await self._leave(channel.id)
            return
        if channel.state != "Up":
            await self._client.answer(channel.id)
        await self._client.play(channel.id, self._settings.prompt)
        outcome = await self._collect(events)
        if outcome == "hangup":
            return
        if outcome != "digit":
            await self._leave(channel.id)
            return
        await self._opt_out(channel, e164, Scope(padded[0] or None, padded[1] or None))

    async def _opt_out(self, channel: Channel, e164: str, scope: Scope) -> None:
        evidence = {
            "channel": channel.id,
            "call_id": channel.protocol_id or "",
            "digits": self._settings.digit,
        }
        try:
            await self._sink.refuse(
                e164,
                scope,
                Source.CUSTOMER_OPTOUT,
                "customer pressed the opt-out digit",
                evidence,
                datetime.now(UTC),
            )
        except CallShieldError as e:
            log.error("opt-out of %s NOT recorded (%s); ending the call without confirmation", mask(e164), e)
        else:
            log.info("opt-out %s recorded on %s", mask(e164), channel.id)
            with contextlib.suppress(PeerError):
                await self._client.play(channel.id, self._settings.confirmation)
                await asyncio.sleep(self._settings.confirmation_seconds)
        with contextlib.suppress(PeerError):
            await self._client.hangup(channel.id, reason_code=CUSTOMER_HANGUP_CAUSE)

    async def _collect(self, events: asyncio.Queue[Event]) -> str:
        """``digit``, ``hangup`` or ``timeout``."""
        try:
            async with asyncio.timeout(self._settings.timeout):
                while True:
                    event = await events.get()
                    if isinstance(event, StasisEnd | ChannelHangupRequest):
                        return "hangup"
                    if isinstance(event, ChannelDtmfReceived) and event.digit == self._settings.digit:
                        return "digit"
        except TimeoutError:
            return "timeout"

    async def _leave(self, channel_id: str) -> None:
        try:
            await self._client.continue_in_dialplan(channel_id)
        except AriRequestError as e:
            if not e.is_gone:
                raise

    def _number(self, channel: Channel) -> str | None:
        for candidate in (
            channel.caller.number if channel.caller else "",
            channel.connected.number if channel.connected else "",
        ):
            try:
                return normalize(candidate, self._rules)
            except CallShieldError:
                continue
        return None
