"""The `conecta` command: init, run, radius, portal, counters, and the fleet sub-commands."""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator
from functools import cached_property

import click

from policies import PolicyError, load_policies
from portal import logs
from portal.fleet import FleetError
from portal.reports import ReportError


class Context:
    """Settings, engine and policies, loaded on first use so `--help` needs none of them."""

    @cached_property
    def settings(self):  # noqa: ANN201
        """Validated settings from the environment."""
        from portal.settings import load_settings
        return load_settings()

    @cached_property
    def engine(self):  # noqa: ANN201
        """The SQLAlchemy engine."""
        from portal.db import engine_for
        return engine_for(self.settings)

    @cached_property
    def policies(self):  # noqa: ANN201
        """Policies loaded and validated from the policy dir."""
        return load_policies(self.settings.policy_dir)

    def db(self):  # noqa: ANN201
        """A new ORM session."""
        from portal.db import session_factory
        return session_factory(self.engine)()


pass_ctx = click.make_pass_decorator(Context, ensure=True)


class ConectaGroup(click.Group):
    """Turns expected errors into one human line and exit status 1."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        """Run the command; report bad input without a traceback."""
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from portal.settings import SettingsError
        try:
            return super().invoke(ctx)
        except (FleetError, PolicyError, SettingsError, ReportError) as exc:
            raise click.ClickException(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(f"database: {first} (did you run `conecta init`?)") from None


@click.group(cls=ConectaGroup)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Conecta: free municipal Wi-Fi — RADIUS, captive portal and reports."""
    logs.setup(log_level.upper())
    ctx.obj = Context()


@contextlib.contextmanager
def redis_url(settings) -> Iterator[str]:  # noqa: ANN001
    """The configured Redis URL, the embedded one `conecta run` started, or a new embedded one."""
    from portal.redisconn import EmbeddedRedis, running_embedded_url
    url = settings.redis_url or running_embedded_url(settings.data_dir)
    if url:
        yield url
        return
    embedded = EmbeddedRedis(settings.data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()


@main.command()
@click.option("--demo", is_flag=True, help="add a demo site and a NAS for 127.0.0.1 and print its secret")
@pass_ctx
def init(c: Context, demo: bool) -> None:
    """Create or upgrade the schema and validate policies/."""
    from portal.schema import upgrade
    click.echo(f"policies: {', '.join(sorted(c.policies))} ({c.settings.policy_dir})")
    upgrade(c.engine)
    click.echo(f"database ready: {c.engine.url.render_as_string(hide_password=True)}")
    if demo:
        _demo(c)


def _demo(c: Context) -> None:
    from sqlalchemy import select

    from portal import fleet
    from portal.model import Nas
    with c.db() as db:
        nas = db.scalar(select(Nas).where(Nas.name == "demo-ap"))
        if nas is None:
            if not db.scalar(select(fleet.Site.id).where(fleet.Site.name == "Parque Demo")):
                fleet.add_site(db, c.policies, "Parque Demo", "park", "parque", planned_gb_month=50)
            spec = fleet.NasSpec("demo-ap", "Parque Demo", "127.0.0.1", secrets.token_hex(16), "coova",
                                 uam_secret=secrets.token_hex(16))
            nas, _ = fleet.add_nas(db, spec, production=False)
            fleet.commit_or_explain(db)
        click.echo(f"demo site 'Parque Demo', NAS 'demo-ap' for 127.0.0.1, secret: {nas.secret}")


@main.command()
@pass_ctx
def run(c: Context) -> None:
    """Everything on one machine: portal, RADIUS and workers, on embedded defaults."""
    from portal.launcher import run_all
    sys.exit(run_all(c.settings, c.engine))


@main.command()
@click.option("--workers", type=click.IntRange(1, 64),
              help="server processes sharing the ports [default: one per core on PostgreSQL, 1 on SQLite]")
@pass_ctx
def radius(c: Context, workers: int | None) -> None:
    """The RADIUS server alone (several may share one Redis and one database)."""
    c.policies  # noqa: B018 - fail early, with the file and key named, on a bad policy
    from radius.crew import default_workers, serve_workers
    with redis_url(c.settings) as url:
        serve_workers(c.settings, url, workers or default_workers(c.settings))


@main.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
def portal(c: Context, workers: int) -> None:
    """The portal alone under gunicorn (gthread workers)."""
    import subprocess

    from portal.launcher import gunicorn_command
    with redis_url(c.settings) as url:
        sys.exit(subprocess.call(gunicorn_command(c.settings, workers), env=_child_env(c, url)))


def _child_env(c: Context, url: str) -> dict[str, str]:
    import os

    from portal.settings import settings_env
    return {**os.environ, **settings_env(c.settings), "CONECTA_REDIS_URL": url}


@main.group()
def counters() -> None:
    """Live per-person counters in Redis."""


@counters.command("rebuild")
@pass_ctx
def counters_rebuild(c: Context) -> None:
    """Restore today's and this month's counters in Redis from the SQL rollup."""
    from datetime import datetime

    from portal import counters as live
    from portal.redisconn import connect
    with redis_url(c.settings) as url, c.db() as db:
        n = live.rebuild(connect(url), db, datetime.now(c.settings.tz))
    click.echo(f"counters rebuilt for {n} people")


@main.command()
@click.option("--people", default=300, show_default=True, type=click.IntRange(1, 100000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--if-empty", is_flag=True, help="only when no accounting is stored yet (what `make run` uses)")
@pass_ctx
def simulate(c: Context, people: int, days: int, seed: int, if_empty: bool) -> None:
    """Play access points and citizens through the real RADIUS path (sites named after a real program)."""
    from sqlalchemy import select

    from portal import simulate as sim
    from portal.db import session_factory
    from portal.model import AcctRecord
    from portal.redisconn import connect
    settings = c.settings
    if if_empty:
        with c.db() as db:
            if db.scalar(select(AcctRecord.id).limit(1)) is not None:
                click.echo("accounting already stored; no demo data added")
                return
    with redis_url(settings) as url:
        bar = click.progressbar(length=1, label="simulating", file=sys.stderr)
        with bar:
            def total(n: int) -> None:
                bar.length = n
            played, rejected = sim.run(settings, c.policies, session_factory(c.engine), connect(url),
                                       people, days, seed, bar.update, total)
    click.echo(f"{played} visits played through RADIUS over {days} days; {rejected} refused by policy")


@main.command()
@click.option("--older-than", "older", required=True, help="retention, e.g. 365d")
@pass_ctx
def purge(c: Context, older: str) -> None:
    """Delete personal data and device identifiers past retention; keep the aggregates."""
    from datetime import timedelta

    from policies.units import UnitError, parse_duration
    from portal.model import utcnow
    from portal.retention import purge as run_purge
    try:
        days = parse_duration(older)
    except UnitError as exc:
        raise click.ClickException(f"--older-than: {exc}") from None
    if days < 30 * 86400:
        raise click.ClickException("--older-than: less than 30d would delete live data; refused")
    with c.db() as db:
        counts = run_purge(db, utcnow() - timedelta(seconds=days))
        db.commit()
    for what, n in counts.items():
        click.echo(f"{n} {what} deleted")


from portal import cli_fleet, cli_report  # noqa: E402  - register the sub-command groups

cli_fleet.register(main)
cli_report.register(main)
