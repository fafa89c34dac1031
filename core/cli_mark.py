"""``callshield mark``: flag the customer of a call (or a number) as refusing, from a desk or CRM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click
from callshield.ari.client import AriClient, AriConfig
from callshield.capture import Durability, RefusalRecorder, mark
from callshield.capture_config import capture_settings
from callshield.cli_support import App, make_scope, runs_async, scope_options
from callshield.errors import InvalidInput, StoreError
from callshield.journal import Journal
from callshield.marking import Marked, mark_call
from callshield.models import Scope, Source
from callshield.service_config import service_settings
from callshield.store import open_store

pass_app = click.make_pass_decorator(App)


@asynccontextmanager
async def recorder_for(app: App) -> AsyncIterator[RefusalRecorder]:
    """A recorder on the store, or on the journal alone when the store cannot be opened."""
    key, settings = app.key(), app.settings
    journal = Journal(capture_settings(settings).journal, key)
    try:
        store = await open_store(settings.store, key)
    except StoreError as e:
        click.echo(f"callshield: the store is unavailable ({e}); the refusal goes to the journal", err=True)
        yield RefusalRecorder(None, settings.periods, journal, app.actor)
        return
    try:
        yield RefusalRecorder(store, settings.periods, journal, app.actor)
    finally:
        await store.close()


@click.command(name="mark")
@click.argument("number", required=False)
@click.option("--channel", "channel_id", metavar="ID", help="An ongoing call's channel id (either leg).")
@click.option("--call-id", metavar="ID", help="An ongoing call's SIP Call-ID (either leg).")
@click.option("--server", metavar="NAME", help="The [[ari.server]] to look on [default: all].")
@scope_options
@click.option("--reason", default="refusal flagged by the agent", show_default=True)
@click.option("--agent", metavar="NAME", help="Evidence: the agent who flagged it.")
@pass_app
@runs_async
async def mark_command(
    app: App,
    number: str | None,
    channel_id: str | None,
    call_id: str | None,
    server: str | None,
    company: str | None,
    campaign: str | None,
    reason: str,
    agent: str | None,
) -> None:
    """Shield NUMBER, or the customer of the call named by --channel / --call-id, and end that call.

    Exits 0 only once the refusal is durably stored (in the store, or in the journal that the
    service replays into it when the store is back).
    """
    if sum(x is not None for x in (number, channel_id, call_id)) != 1:
        raise InvalidInput("give exactly one of NUMBER, --channel or --call-id")
    scope = make_scope(company, campaign)
    evidence = {"agent": agent} if agent else {}
    async with recorder_for(app) as recorder:
        if number is not None:
            recorded = await mark(
                recorder,
                number,
                app.settings.numbers,
                scope=scope,
                source=Source.AGENT_FLAG,
                reason=reason,
                evidence=evidence,
            )
            where = (
                "stored"
                if recorded.where is Durability.STORE
                else "kept in the journal until the store is back"
            )
            click.echo(f"marked {recorded.masked} ({scope}): {where}")
            return
        marked = await _mark_on_servers(app, recorder, server, channel_id, call_id, scope, reason)
    ended = f"call ended (channel {marked.ended})" if marked.ended else "the call had already ended"
    click.echo(f"marked {marked.masked} ({scope}); {ended}")


async def _mark_on_servers(
    app: App,
    recorder: RefusalRecorder,
    server: str | None,
    channel_id: str | None,
    call_id: str | None,
    scope: Scope,
    reason: str,
) -> Marked:
    servers = [s for s in service_settings(app.settings).servers if server in (None, s.name)]
    if not servers:
        raise InvalidInput(f"no [[ari.server]] {'named ' + repr(server) if server else 'configured'}")
    misses = []
    for s in servers:
        async with AriClient(AriConfig(f"{s.url}/ari", s.username, s.password, app=s.app)) as client:
            try:
                return await mark_call(
                    client,
                    recorder,
                    app.settings.numbers,
                    channel_id=channel_id,
                    call_id=call_id,
                    scope=scope,
                    reason=reason,
                    actor=app.actor,
                )
            except InvalidInput as e:
                misses.append(f"{s.name}: {e}")
    raise InvalidInput("; ".join(misses))
