"""``callshield journal``: the refusals waiting in the journal for the store, and handing them over.

The service replays the journal every few seconds by itself; these commands are for the operator
who must see what is waiting (a store outage, a stopped service) or push it through by hand.
Exit status of both: 0 nothing waits, 1 refusals still wait, 2 error.
"""

from __future__ import annotations

import click
from callshield.capture import RefusalRecorder
from callshield.capture_config import capture_settings
from callshield.cli_support import EXIT_BLOCKED, EXIT_OK, App, runs_async, when
from callshield.journal import Journal, Pending
from callshield.store import open_store

pass_app = click.make_pass_decorator(App)


def _journal(app: App) -> Journal:
    return Journal(capture_settings(app.settings).journal, app.key())


def _show(journal: Journal) -> int:
    """Print what waits; the exit status for it."""
    waiting, rejected = journal.peek()
    click.echo(f"journal {journal.path}: {len(waiting)} refusal(s) waiting for the store")
    for item in waiting:
        click.echo(_line(item))
    if rejected:
        click.echo(
            f"{rejected} unreadable line(s) kept in {journal.rejected} "
            "(torn by a crash, damaged, or sealed under another key)"
        )
    return EXIT_BLOCKED if waiting else EXIT_OK


def _line(item: Pending) -> str:
    entry = item.entry
    return (
        f"  {item.id[:12]}  {entry.masked}  {entry.scope}  {entry.source}  "
        f"until {when(entry.expires_at)}  by {item.actor}"
    )


@click.group(name="journal", invoke_without_command=True)
@click.pass_context
def journal_group(ctx: click.Context) -> None:
    """The refusal journal: refusals kept while the store was unavailable (numbers masked).

    Without a subcommand: the same as `status`. Exit status 0 nothing waits, 1 refusals wait,
    2 error.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(status)


@journal_group.command()
@pass_app
@runs_async
async def status(app: App) -> int:
    """List the refusals waiting for the store, and the unreadable lines kept aside."""
    return _show(_journal(app))


@journal_group.command()
@pass_app
@runs_async
async def replay(app: App) -> int:
    """Hand the waiting refusals to the store now (each audited under the actor that recorded it)."""
    journal = _journal(app)
    store = await open_store(app.settings.store, app.key())
    try:
        stored = await RefusalRecorder(store, app.settings.periods, journal, app.actor).replay()
    finally:
        await store.close()
    click.echo(f"journal replay: {stored} refusal(s) stored")
    return _show(journal)
