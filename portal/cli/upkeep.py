"""`conecta counters rebuild` and `conecta purge`: the live counters and personal data past retention."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from policies.units import UnitError, parse_duration
from portal.cli.context import Context, pass_ctx
from portal.core import counters as live
from portal.core.model import utcnow
from portal.core.redisconn import connect, serving_redis
from portal.core.retention import purge as run_purge


def register(main: click.Group) -> None:
    """Add `conecta counters` and `conecta purge`."""
    main.add_command(counters)
    main.add_command(purge)


@click.group()
def counters() -> None:
    """Live per-person counters in Redis."""


@counters.command("rebuild")
@pass_ctx
def counters_rebuild(c: Context) -> None:
    """Restore today's and this month's counters in Redis from the SQL rollup."""
    with serving_redis(c.settings) as url, c.db() as db:
        n = live.rebuild(connect(url), db, datetime.now(c.settings.tz))
    click.echo(f"counters rebuilt for {n} people")


@click.command()
@click.option("--older-than", "older", required=True, help="retention, e.g. 365d")
@pass_ctx
def purge(c: Context, older: str) -> None:
    """Delete personal data and device identifiers past retention; keep the aggregates."""
    try:
        seconds = parse_duration(older)
    except UnitError as exc:
        raise click.ClickException(f"--older-than: {exc}") from None
    if seconds < 30 * 86400:
        raise click.ClickException("--older-than: less than 30d would delete live data; refused")
    with c.db() as db:
        counts = run_purge(db, utcnow() - timedelta(seconds=seconds))
        db.commit()
    for what, n in counts.items():
        click.echo(f"{n} {what} deleted")
