"""Marking a customer by command (agent desktop, CRM, ``callshield mark``, the admin API).

:func:`callshield.capture.mark` shields a number directly. :func:`mark_call` finds an ongoing call on an
Asterisk server over ARI (by channel id or SIP Call-ID, either leg), shields its customer and
ends the call. Which leg is the customer: an outbound leg (created by ``Dial()`` or an
origination, ``dialplan.app_name`` ``AppDial``/``AppDial2``) is the customer, and its caller
number is the number dialled; for the agent's leg, the customer's number is its connected line
and the customer leg is the outbound leg showing that number.

It returns only after the refusal is durably stored (the sink's promise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from callshield.ari.capture import CUSTOMER_HANGUP_CAUSE
from callshield.ari.client import AriClient
from callshield.ari.models import Channel
from callshield.capture import RefusalSink
from callshield.errors import AriRequestError, CallShieldError, InvalidInput
from callshield.models import Scope, Source
from callshield.numbers import NumberRules, normalize
from callshield.privacy import mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Marked:
    masked: str
    ended: str | None
    """The channel hung up, or None (no call, or it was already gone)."""


def is_outbound_leg(channel: Channel) -> bool:
    return channel.dialplan.app_name in ("AppDial", "AppDial2")


def find_call(
    channels: list[Channel], rules: NumberRules, channel_id: str | None, call_id: str | None
) -> tuple[Channel, str]:
    """(customer leg, its E.164) of the call that ``channel_id`` or ``call_id`` names, either leg."""
    target = next((c for c in channels if c.id == channel_id or (call_id and c.protocol_id == call_id)), None)
    if target is None:
        named = f"with Call-ID {call_id!r}" if call_id else f"{channel_id!r}"
        raise InvalidInput(f"no live channel {named} on this Asterisk")
    if is_outbound_leg(target):
        return target, normalize(target.caller.number, rules)
    e164 = normalize(target.connected.number, rules)
    for leg in channels:
        if is_outbound_leg(leg) and leg.caller.number and _same(leg.caller.number, e164, rules):
            return leg, e164
    return target, e164


def _same(number: str, e164: str, rules: NumberRules) -> bool:
    try:
        return normalize(number, rules) == e164
    except CallShieldError:
        return False


async def mark_call(
    client: AriClient,
    sink: RefusalSink,
    rules: NumberRules,
    *,
    channel_id: str | None = None,
    call_id: str | None = None,
    scope: Scope,
    reason: str,
    actor: str,
) -> Marked:
    """Shield the customer of the ongoing call and end it."""
    leg, e164 = find_call(await client.list_channels(), rules, channel_id, call_id)
    evidence = {
        "customer_channel": leg.id,
        "call_id": leg.protocol_id,
        "named_channel": channel_id or "",
        "actor": actor,
    }
    await sink.refuse(e164, scope, Source.AGENT_FLAG, reason, evidence, datetime.now(UTC))
    try:
        await client.hangup(leg.id, reason_code=CUSTOMER_HANGUP_CAUSE)
    except AriRequestError as e:
        if not e.is_gone:
            raise
        return Marked(mask(e164), None)
    log.info("marked %s and ended channel %s", mask(e164), leg.id)
    return Marked(mask(e164), leg.id)
