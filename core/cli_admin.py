"""The administrative commands: init, import, export, purge, stats, audit, prefix."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import click
from callshield import logsetup, service
from callshield.cli_support import (
    EXIT_BLOCKED,
    App,
    expiry,
    make_scope,
    now,
    period_options,
    runs_async,
    scope_options,
    when,
)
from callshield.errors import InvalidInput, KeyFileError
from callshield.importer import CHUNK_LINES, FORMATS, ImportRequest, import_file
from callshield.keys import generate_key_file
from callshield.models import Action, PrefixRule, Source
from callshield.numbers import normalize, normalize_prefix
from callshield.service_config import service_settings
from callshield.store import describe
from callshield.transfer import write_export

pass_app = click.make_pass_decorator(App)


@click.command()
@pass_app
@runs_async
async def init(app: App) -> None:
    """Create the key file (mode 0600) and the store, if they do not exist yet."""
    s = app.settings
    if s.key_hex is None and not s.key_file.exists():
        if "://" not in s.store and Path(s.store).exists():
            raise KeyFileError(
                f"store {s.store} exists but key file {s.key_file} is missing: restore the key file "
                "(a new key would make every stored number unmatchable)"
            )
        generate_key_file(s.key_file)
        click.echo(f"created key file {s.key_file} (mode 0600): back it up, the list is useless without it")
    async with app.store() as store:
        await store.audit(app.actor, "init", "", {"store": describe(s.store)}, now())
        click.echo(f"store ready: {describe(s.store)} (key {store.key_fingerprint})")


@contextmanager
def _import_bars(show: bool) -> Iterator[tuple[Callable[[str, int], None], Callable[[int], None]]]:
    """(phase, progress) callbacks for import_file: on a terminal, one bar per phase."""
    current: list[Callable[[int], None]] = []
    with ExitStack() as bars:

        def phase(label: str, total: int) -> None:
            bars.close()
            if show:
                bar = bars.enter_context(click.progressbar(length=total, file=sys.stderr, label=label))
                current[:] = [bar.update]

        def progress(n: int) -> None:
            for update in current:
                update(n)

        yield phase, progress


@click.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="[default: csv for *.csv, else text]")
@click.option("--column", metavar="NAME", help="CSV: the header of the number column.")
@scope_options
@period_options
@click.option("--reason", default="imported list", show_default=True)
@click.option("--source", type=click.Choice([s.value for s in Source]), default="import", show_default=True)
@click.option("--rejects", type=click.Path(path_type=Path), help="Reject file [default: FILE.rejects].")
@click.option("--workers", type=click.IntRange(0, 64), help="Parser processes [default: one per core].")
@click.option(
    "--batch-lines",
    type=click.IntRange(1, 1_000_000),
    default=CHUNK_LINES,
    show_default=True,
    help="Lines per chunk (per transaction for files up to 4 MB; larger ones go by hash ranges).",
)
@pass_app
@runs_async
async def import_(
    app: App,
    file: Path,
    fmt: str | None,
    column: str | None,
    company: str | None,
    campaign: str | None,
    days: int | None,
    permanent: bool,
    reason: str,
    source: str,
    rejects: Path | None,
    workers: int | None,
    batch_lines: int,
) -> None:
    """Shield every number of FILE (text: one per line; csv: --column; hashes: an export)."""
    scope, src, moment = make_scope(company, campaign), Source(source), now()
    req = ImportRequest(
        path=file,
        fmt=fmt or ("csv" if file.suffix.lower() == ".csv" else "text"),
        column=column,
        scope=scope,
        source=src,
        reason=reason,
        expires_at=expiry(app, moment, src, scope, days, permanent),
        rejects=rejects or file.with_name(file.name + ".rejects"),
        workers=workers,
        batch_lines=batch_lines,
    )
    size = file.stat().st_size if file.is_file() else 0
    show = sys.stderr.isatty() and size > 0
    async with app.store() as store:
        with _import_bars(show) as (phase, update):
            report = (
                (lambda line: None) if show else (lambda line: click.echo(f"  rejected {line}", err=True))
            )
            summary = await import_file(
                store, req, app.key(), app.settings.numbers, app.actor, moment, update, report, phase
            )
    click.echo(
        f"{file.name}: {summary.lines} lines, {summary.added} added,"
        f" {summary.already_present} already present, {summary.invalid} invalid"
        + (f" (listed in {summary.rejects})" if summary.rejects else "")
    )


@click.command()
@click.option("--hashes", is_flag=True, help="Keyed hashes (for an instance sharing the key), not masked.")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="File [default: stdout]."
)
@pass_app
@runs_async
async def export(app: App, hashes: bool, output: Path | None) -> None:
    """Write the list as CSV: masked numbers, or keyed hashes. Never plaintext."""
    async with app.store() as store:
        out = _open_output(output)
        try:
            count = await write_export(store.entries(), out, hashes=hashes, fingerprint=store.key_fingerprint)
        finally:
            if output is not None:
                out.close()
        detail = {
            "count": count,
            "format": "hashes" if hashes else "masked",
            "output": str(output or "stdout"),
        }
        await store.audit(app.actor, "export", "", detail, now())
    if output is not None:
        click.echo(f"exported {count} entries to {output}", err=True)


def _open_output(output: Path | None) -> TextIO:
    if output is None:
        return sys.stdout
    try:
        return output.open("w", encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot write {output}: {e.strerror}") from None


@click.command()
@pass_app
@runs_async
async def purge(app: App) -> None:
    """Delete expired entries (audited): keeping data longer than needed is a violation too."""
    async with app.store() as store:
        count = await store.purge_expired(app.actor, now())
    click.echo(f"purged {count} expired entr{'y' if count == 1 else 'ies'}")


@click.command()
@pass_app
@runs_async
async def stats(app: App) -> None:
    """Counts of entries by state, source and scope."""
    async with app.store() as store:
        st = await store.stats(now())
    click.echo(f"store:             {describe(app.settings.store)}")
    click.echo(f"entries:           {st.entries}")
    click.echo(f"  active:          {st.active}")
    click.echo(f"  expired (purge): {st.expired_pending_purge}")
    click.echo(f"  permanent:       {st.permanent}")
    for label, groups in (("source", st.by_source), ("scope", st.by_scope)):
        for name, n in groups.items():
            click.echo(f"  {label} {name}: {n}")
    click.echo(f"prefix rules:      {st.prefixes}")
    click.echo(f"audit records:     {st.audit_records}")


@click.group(invoke_without_command=True)
@click.option("--since", type=click.IntRange(0), default=0, help="Records after this sequence number.")
@click.option("--number", help="Only records about this number.")
@click.pass_context
def audit(ctx: click.Context, since: int, number: str | None) -> None:
    """Show the audit log; 'audit verify' checks its hash chain."""
    if ctx.invoked_subcommand is None:
        _show_audit(ctx.ensure_object(App), since, number)


@runs_async
async def _show_audit(app: App, since: int, number: str | None) -> None:
    async with app.store() as store:
        ref = store.ref(normalize(number, app.settings.numbers)) if number else None
        async for r in store.audit_records(since):
            if ref is None or ref in r.detail:
                click.echo(f"{r.seq:>7} {r.at[:19]} {r.actor:<16} {r.action:<13} {r.masked:<16} {r.detail}")


@audit.command()
@pass_app
@runs_async
async def verify(app: App) -> int:
    """Check the audit chain; exit 1 and name the first bad record if it was tampered with."""
    async with app.store() as store:
        report = await store.verify_audit()
    if not report.ok:
        click.echo(f"audit chain BROKEN after {report.checked} good records: {report.problem}")
        return EXIT_BLOCKED
    click.echo(f"audit chain OK: {report.checked} records; head #{report.head_seq} {report.head_hash}")
    click.echo("(note the head: removing the newest records can only be seen against an earlier head)")
    return 0


@click.group()
def prefix() -> None:
    """Block or allow number ranges (longest prefix wins; allow beats block at equal length)."""


@prefix.command(name="add")
@click.argument("prefix_")
@click.option("--allow", "action", flag_value="ALLOW", help="Allow the range (overrides shorter blocks).")
@click.option("--block", "action", flag_value="BLOCK", default=True, help="Block the range [default].")
@scope_options
@period_options
@click.option("--reason", default="range rule", show_default=True)
@pass_app
@runs_async
async def prefix_add(
    app: App,
    prefix_: str,
    action: str,
    company: str | None,
    campaign: str | None,
    days: int | None,
    permanent: bool,
    reason: str,
) -> None:
    """Add a rule for PREFIX (e.g. +861380013). Permanent unless --days."""
    moment = now()
    until = None if permanent or days is None else moment + timedelta(days=days)
    rule = PrefixRule(
        normalize_prefix(prefix_), Action(action), make_scope(company, campaign), reason, moment, until
    )
    async with app.store() as store:
        await store.add_prefix(rule, app.actor)
    click.echo(f"{rule.action} {rule.prefix} ({rule.scope}) {when(until)}")


@prefix.command(name="remove")
@click.argument("prefix_")
@scope_options
@click.option("--reason", required=True)
@pass_app
@runs_async
async def prefix_remove(
    app: App, prefix_: str, company: str | None, campaign: str | None, reason: str
) -> None:
    """Remove the rule for PREFIX."""
    async with app.store() as store:
        n = await store.remove_prefix(
            normalize_prefix(prefix_), make_scope(company, campaign), app.actor, reason, now()
        )
    click.echo(f"removed {n} rule{'s' if n != 1 else ''}")


@prefix.command(name="list")
@pass_app
@runs_async
async def prefix_list(app: App) -> None:
    """List the prefix rules."""
    async with app.store() as store:
        for r in await store.prefixes():
            click.echo(f"{r.action:<5} {r.prefix:<16} {r.scope!s:<28} {when(r.expires_at):<20} {r.reason}")


@click.command()
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
@pass_app
@runs_async
async def serve(app: App, log_level: str) -> None:
    """Run the service: the ARI gate for each [[ari.server]], the FastAGI gate, scheduled purges.

    Runs until SIGTERM/SIGINT, then finishes the decisions in flight and exits 0.
    """
    logsetup.configure(log_level)
    await service.serve(app.settings, service_settings(app.settings))


def register(group: click.Group) -> None:
    from callshield.cli_journal import journal_group
    from callshield.cli_mark import mark_command

    commands: list[Any] = [
        init,
        import_,
        export,
        purge,
        stats,
        audit,
        prefix,
        serve,
        mark_command,
        journal_group,
    ]
    for command in commands:
        group.add_command(command)
