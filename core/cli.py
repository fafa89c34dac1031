"""``callshield``: the operators' command line.

    callshield init | check NUMBER | add NUMBER | remove NUMBER | list | import FILE | export
              | purge | stats | audit [verify] | prefix add|remove|list | serve

Exit statuses: 0 done (``check``: allowed), 1 ``check``: blocked / ``audit verify``: chain broken,
2 error. See :mod:`callshield.cli_support`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from callshield import __version__
from callshield.cli_support import (
    EXIT_BLOCKED,
    EXIT_OK,
    App,
    expiry,
    make_scope,
    now,
    period_options,
    runs_async,
    scope_options,
    when,
)
from callshield.models import NO_MATCHES, Source
from callshield.numbers import classify, normalize
from callshield.policy import CallContext, decide
from callshield.privacy import mask
from callshield.store.base import NewEntry

pass_app = click.make_pass_decorator(App)
SOURCES = click.Choice([s.value for s in Source])


class _Commands(click.Group):
    """The command group; the commands of :mod:`callshield.cli_admin` are added on first use.

    Importing this module must stay cheap: each parser process of a large import (spawned, so it
    imports the main script, which imports this) would otherwise carry the service's and the ARI
    client's modules, about 25 MiB each, that it never uses.
    """

    def _load(self) -> None:
        if "import" not in self.commands:
            from callshield import cli_admin

            cli_admin.register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="callshield")
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML config file [default: $CALLSHIELD_CONFIG or /etc/callshield/callshield.toml].",
)
@click.option("--actor", metavar="NAME", help="Who is acting, for the audit log [default: your user name].")
@click.pass_context
def main(ctx: click.Context, config: Path | None, actor: str | None) -> None:
    """callshield: the do-not-call shield for Asterisk."""
    ctx.obj = App(config, actor)


@main.command()
@click.argument("number")
@scope_options
@click.option("--at", "at", type=click.DateTime(), help="Decide as of this time (UTC) instead of now.")
@pass_app
@runs_async
async def check(app: App, number: str, company: str | None, campaign: str | None, at: datetime | None) -> int:
    """Would a call to NUMBER go out? Exit 0 allowed, 1 blocked, 2 error."""
    moment = now() if at is None else at.replace(tzinfo=now().tzinfo)
    target = classify(number, app.settings.numbers)
    async with app.store() as store:
        matches = await store.lookup(target.e164) if target.e164 else None
        call = CallContext(target.e164, target.exempt, company, campaign)
        decision = decide(call, matches or NO_MATCHES, moment)
        detail = {"verdict": str(decision.action), "reason": decision.reason, "rule": decision.rule}
        if target.e164:
            detail["ref"] = store.ref(target.e164)
        await store.audit(app.actor, "check", target.masked, detail, now())
    until = "" if decision.allowed else f", {_until(decision.until)}"
    rule = f" ({decision.rule})" if decision.rule else ""
    verb = "ALLOWED" if decision.allowed else "BLOCKED"
    click.echo(f"{verb} {target.masked}: {decision.reason}{rule}{until}")
    return EXIT_OK if decision.allowed else EXIT_BLOCKED


def _until(at: datetime | None) -> str:
    return "permanently" if at is None else f"until {when(at)}"


@main.command()
@click.argument("number")
@scope_options
@period_options
@click.option("--reason", default="added by operator", show_default=True, help="Why (kept with the entry).")
@click.option(
    "--source", type=SOURCES, default=Source.ADMIN.value, show_default=True, help="How the refusal came."
)
@click.option("--call-id", help="Evidence: the call's id (linkedid / SIP Call-ID).")
@click.option("--note", help="Evidence: free text (no phone numbers).")
@pass_app
@runs_async
async def add(
    app: App,
    number: str,
    company: str | None,
    campaign: str | None,
    days: int | None,
    permanent: bool,
    reason: str,
    source: str,
    call_id: str | None,
    note: str | None,
) -> None:
    """Shield NUMBER (default: for the configured period, 365 days)."""
    e164 = normalize(number, app.settings.numbers)
    scope, src, moment = make_scope(company, campaign), Source(source), now()
    evidence = {k: v for k, v in {"call_id": call_id, "note": note}.items() if v}
    entry = NewEntry(e164, scope, src, reason, expiry(app, moment, src, scope, days, permanent), evidence)
    async with app.store() as store:
        result = await store.add(entry, app.actor, moment)
    state = "shielded" if result.created else "already shielded, evidence added;"
    click.echo(f"{state} {entry.masked} ({scope}) {_until(result.expires_at)}")


@main.command()
@click.argument("number")
@scope_options
@click.option("--all-scopes", is_flag=True, help="Remove the number from every scope.")
@click.option("--reason", required=True, help="Why the shield is lifted (kept in the audit log).")
@pass_app
@runs_async
async def remove(
    app: App, number: str, company: str | None, campaign: str | None, all_scopes: bool, reason: str
) -> None:
    """Lift the shield from NUMBER (global scope unless --company/--campaign/--all-scopes)."""
    e164 = normalize(number, app.settings.numbers)
    scope = None if all_scopes else make_scope(company, campaign)
    async with app.store() as store:
        removed = await store.remove(e164, scope, app.actor, reason, now())
    where = "all scopes" if scope is None else str(scope)
    click.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'} for {mask(e164)} ({where})")


@main.command(name="list")
@scope_options
@click.option("--source", type=SOURCES, help="Only entries from this source.")
@click.option("--all", "include_expired", is_flag=True, help="Include expired entries not yet purged.")
@click.option("--limit", type=click.IntRange(0), default=0, help="At most N entries (0: all).")
@pass_app
@runs_async
async def list_(
    app: App, company: str | None, campaign: str | None, source: str | None, include_expired: bool, limit: int
) -> None:
    """List shielded numbers (masked)."""
    scope = make_scope(company, campaign) if company else None
    shown = 0
    async with app.store() as store:
        active_at = None if include_expired else now()
        async for e in store.entries(scope, Source(source) if source else None, active_at):
            until = when(e.expires_at)
            click.echo(f"{e.masked:<18} {e.scope!s:<28} {e.source!s:<16} until {until:<20} {e.reason}")
            shown += 1
            if shown == limit:
                break
        await store.audit(app.actor, "list", "", {"shown": shown, "scope": str(scope or "all")}, now())
