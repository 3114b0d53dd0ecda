"""`conecta simulate`: access points and citizens played through the real RADIUS path, for demos."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import select

from portal.cli.context import Context, pass_ctx
from portal.core.db import session_factory
from portal.core.model import AcctRecord
from portal.core.redisconn import connect, serving_redis
from radius import simulate as sim

PROGRESS = "simulation.json"    # in the data dir: what a run set out to do and how far it got


def register(main: click.Group) -> None:
    """Add `conecta simulate`."""
    main.add_command(simulate)


class Progress:
    """The plan of a run (people, days, seed, its day) and the visits played, kept on disk at every one."""

    def __init__(self, path: Path, plan: dict) -> None:
        self.path, self.plan = path, plan

    @classmethod
    def unfinished(cls, path: Path) -> Progress | None:
        """The progress of a run that was interrupted, if any."""
        try:
            plan = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(path, plan) if plan.get("done", 0) < plan.get("total", 0) else None

    def save(self) -> None:
        """Write it atomically."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.plan))
        os.replace(tmp, self.path)

    def total(self, n: int) -> None:
        """The number of visits planned."""
        self.plan["total"] = n
        self.save()

    def played(self, n: int) -> None:
        """`n` more visits played."""
        self.plan["done"] += n
        self.save()


@click.command()
@click.option("--people", default=300, show_default=True, type=click.IntRange(1, 100000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--if-empty", is_flag=True,
              help="only when no accounting is stored yet, or to finish an interrupted run (what `make run` uses)")
@pass_ctx
def simulate(c: Context, people: int, days: int, seed: int, if_empty: bool) -> None:
    """Play access points and citizens through the real RADIUS path (sites named after a real program)."""
    path = c.settings.data_dir / PROGRESS
    progress = Progress.unfinished(path) if if_empty else None
    if progress is not None:
        click.echo(f"finishing the demo simulation interrupted after {progress.plan['done']} of "
                   f"{progress.plan['total']} visits")
    elif if_empty:
        with c.db() as db:
            if db.scalar(select(AcctRecord.id).limit(1)) is not None:
                click.echo("accounting already stored; no demo data added")
                return
    if progress is None:
        progress = Progress(path, {"people": people, "days": days, "seed": seed, "done": 0, "total": 1,
                                   "today": datetime.now(c.settings.tz).isoformat()})
    _play(c, progress)


def _play(c: Context, progress: Progress) -> None:
    plan, skip = progress.plan, progress.plan["done"]
    c.settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with serving_redis(c.settings) as url:
            bar = click.progressbar(length=1, label="simulating", file=sys.stderr)
            with bar:
                def total(n: int) -> None:
                    bar.length = n
                    bar.update(skip)
                    progress.total(n)

                def played(n: int) -> None:
                    bar.update(n)
                    progress.played(n)
                visits, rejected = sim.run(c.settings, c.policies, session_factory(c.engine), connect(url),
                                           plan["people"], plan["days"], plan["seed"], played, total,
                                           datetime.fromisoformat(plan["today"]), skip)
    except KeyboardInterrupt:
        click.echo(f"\nsimulation stopped after {plan['done']} of {plan['total']} visits; "
                   "`conecta simulate --if-empty` (or `make run`) plays the rest", err=True)
        sys.exit(130)
    click.echo(f"{visits} visits played through RADIUS over {plan['days']} days; {rejected} refused by policy")
