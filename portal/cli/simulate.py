"""`conecta simulate`: access points and citizens played through the real RADIUS path, for demos."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from portal.cli.context import Context, pass_ctx
from portal.core.db import session_factory
from portal.core.model import AcctRecord
from portal.core.redisconn import connect, serving_redis
from radius import simulate as sim


def register(main: click.Group) -> None:
    """Add `conecta simulate`."""
    main.add_command(simulate)


@click.command()
@click.option("--people", default=300, show_default=True, type=click.IntRange(1, 100000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--if-empty", is_flag=True, help="only when no accounting is stored yet (what `make run` uses)")
@pass_ctx
def simulate(c: Context, people: int, days: int, seed: int, if_empty: bool) -> None:
    """Play access points and citizens through the real RADIUS path (sites named after a real program)."""
    if if_empty:
        with c.db() as db:
            if db.scalar(select(AcctRecord.id).limit(1)) is not None:
                click.echo("accounting already stored; no demo data added")
                return
    with serving_redis(c.settings) as url:
        bar = click.progressbar(length=1, label="simulating", file=sys.stderr)
        with bar:
            def total(n: int) -> None:
                bar.length = n
            played, rejected = sim.run(c.settings, c.policies, session_factory(c.engine), connect(url),
                                       people, days, seed, bar.update, total)
    click.echo(f"{played} visits played through RADIUS over {days} days; {rejected} refused by policy")
