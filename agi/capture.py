"""FastAGI capture scripts, for dialplan-only setups (no ARI).

``callshield/mark``: the agent's keypad feature (``features.conf`` applicationmap, activated on
the agent's own channel during the bridged call). The customer's number is the script argument,
else ``SHIELD_NUMBER`` (set by the ``callshield-gate-agi`` context), else ``DIALEDPEERNUMBER``;
the customer leg is ``BRIDGEPEER``. The refusal is stored durably, the customer leg is hung up,
then the agent hears a confirmation beep.

``callshield/optout``: the customer's own opt-out on an answered leg: the prompt at once, the
opt-out digit (during or after it), the refusal stored, a confirmation, hang-up. No digit: the
script returns and the dialplan continues.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from callshield.agi.server import Handler
from callshield.agi.session import AgiSession
from callshield.capture import RefusalSink
from callshield.capture_config import OptOutSettings
from callshield.errors import CallShieldError, InvalidInput
from callshield.models import Scope, Source
from callshield.numbers import NumberRules, normalize
from callshield.privacy import mask

log = logging.getLogger(__name__)

MARK_SCRIPT = "callshield/mark"
OPTOUT_SCRIPT = "callshield/optout"


async def _first_number(session: AgiSession, rules: NumberRules, candidates: list[str]) -> str | None:
    for name in candidates:
        value = name if not name.startswith("$") else await session.get_variable(name[1:])
        if value:
            try:
                return normalize(value.split("@")[0].split("/")[-1], rules)
            except CallShieldError:
                continue
    return None


async def _scope(session: AgiSession, args: tuple[str, ...]) -> Scope:
    company = args[1] if len(args) > 1 and args[1] else await session.get_variable("SHIELD_COMPANY")
    campaign = args[2] if len(args) > 2 and args[2] else await session.get_variable("SHIELD_CAMPAIGN")
    try:
        return Scope(company or None, (campaign or None) if company else None)
    except InvalidInput:
        return Scope()


def mark_handler(sink: RefusalSink, rules: NumberRules, confirmation: str = "beep") -> Handler:
    async def mark(session: AgiSession) -> None:
        req = session.request
        arg = req.args[0] if req.args else ""
        e164 = await _first_number(session, rules, [arg, "$SHIELD_NUMBER", "$DIALEDPEERNUMBER"])
        peer = await session.get_variable("BRIDGEPEER")
        if e164 is None:
            log.warning("agi mark on %s: the customer's number is unknown; nothing marked", req.uniqueid)
            await session.stream_file("beeperr")
            return
        evidence = {
            "agent_channel_uniqueid": req.uniqueid,
            "agent": req.callerid,
            "customer_channel": peer or "",
            "via": "features.conf",
        }
        await sink.refuse(
            e164,
            await _scope(session, req.args),
            Source.AGENT_KEYPAD,
            "agent keypad code",
            evidence,
            datetime.now(UTC),
        )
        log.info("agi mark %s recorded (uniqueid %s); ending the call", mask(e164), req.uniqueid)
        if peer:
            await session.send("HANGUP", peer)
        await session.stream_file(confirmation)

    return mark


def optout_handler(sink: RefusalSink, rules: NumberRules, settings: OptOutSettings) -> Handler:
    files = [uri.removeprefix("sound:") for uri in settings.prompt]
    confirmation = [uri.removeprefix("sound:") for uri in settings.confirmation]

    async def optout(session: AgiSession) -> None:
        req = session.request
        arg = req.args[0] if req.args else ""
        e164 = await _first_number(session, rules, [arg, req.callerid])
        if e164 is None:
            log.warning("agi opt-out on %s: the customer's number is unknown; no offer", req.uniqueid)
            return
        await session.answer()
        digit = None
        for name in files:
            digit = digit or await session.stream_file(name, settings.digit)
        if digit is None:
            digit = await session.wait_for_digit(int(settings.timeout * 1000))
        if digit != settings.digit:
            return
        evidence = {"uniqueid": req.uniqueid, "digits": settings.digit, "via": "fastagi"}
        await sink.refuse(
            e164,
            await _scope(session, req.args),
            Source.CUSTOMER_OPTOUT,
            "customer pressed the opt-out digit",
            evidence,
            datetime.now(UTC),
        )
        log.info("agi opt-out %s recorded (uniqueid %s)", mask(e164), req.uniqueid)
        for name in confirmation:
            await session.stream_file(name)
        await session.hangup()

    return optout
