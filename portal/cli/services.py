"""`conecta init`, `run`, `radius` and `portal`: the schema, and the services on one machine or alone."""

from __future__ import annotations

import os
import secrets
import sys

import click
from sqlalchemy import select

from portal.cli.context import Context, pass_ctx
from portal.cli.launcher import ROOT, gunicorn_command, run_all, serve_one
from portal.core import metrics, sites
from portal.core.db import commit_or_explain
from portal.core.model import Nas, Site
from portal.core.portlock import check_free, hold
from portal.core.redisconn import serving_redis
from portal.core.schema import upgrade
from portal.core.settings import settings_env
from radius.crew import default_workers, serve_workers


def register(main: click.Group) -> None:
    """Add init, run, radius and portal to the `conecta` command."""
    for command in (init, run, radius, portal):
        main.add_command(command)


@click.command()
@click.option("--demo", is_flag=True, help="add a demo site and a NAS for 127.0.0.1 and print its secret")
@pass_ctx
def init(c: Context, demo: bool) -> None:
    """Create or upgrade the schema and validate policies/."""
    click.echo(f"policies: {', '.join(sorted(c.policies))} ({c.settings.policy_dir})")
    upgrade(c.engine)
    click.echo(f"database ready: {c.engine.url.render_as_string(hide_password=True)}")
    if demo:
        _demo(c)


def _demo(c: Context) -> None:
    """The demo site (policy `demo`: open at any hour, so a tester at night can connect) and its NAS."""
    with c.db() as db:
        nas = db.scalar(select(Nas).where(Nas.name == "demo-ap"))
        if nas is None:
            if not db.scalar(select(Site.id).where(Site.name == "Parque Demo")):
                sites.add_site(db, c.policies, "Parque Demo", "park", "demo", planned_gb_month=50)
            spec = sites.NasSpec("demo-ap", "Parque Demo", "127.0.0.1", secrets.token_hex(16), "coova",
                                 uam_secret=secrets.token_hex(16))
            nas, _ = sites.add_nas(db, spec, production=False)
        site = db.get(Site, nas.site_id)
        if site.name == "Parque Demo" and site.policy == "parque":   # made by an earlier version
            site.policy = "demo"
        commit_or_explain(db)
        click.echo(f"demo NAS UAM secret (CoovaChilli HS_UAMSECRET): {nas.uam_secret}")
        click.echo(f"demo site 'Parque Demo' (policy demo: open at any hour), NAS 'demo-ap' for 127.0.0.1, "
                   f"secret: {nas.secret}")


@click.command()
@pass_ctx
def run(c: Context) -> None:
    """Everything on one machine: portal, RADIUS and workers, on embedded defaults."""
    sys.exit(run_all(c.settings, c.engine))


@click.command()
@click.option("--workers", type=click.IntRange(1, 64),
              help="server processes sharing the ports [default: one per core on PostgreSQL, 1 on SQLite]")
@pass_ctx
def radius(c: Context, workers: int | None) -> None:
    """The RADIUS server alone (several may share one Redis and one database)."""
    c.policies  # noqa: B018 - fail early, with the file and key named, on a bad policy
    metrics.enable(c.settings)       # before the workers fork: they write where the exposition reads
    with serving_redis(c.settings) as url:
        serve_workers(c.settings, url, workers or default_workers(c.settings))


@click.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
def portal(c: Context, workers: int) -> None:
    """The portal alone under gunicorn (gthread workers)."""
    lock = hold("tcp", c.settings.portal_port, "portal")   # noqa: F841 - held until this process exits
    check_free("tcp", c.settings.portal_host, c.settings.portal_port, "portal")
    metrics.enable(c.settings)       # gunicorn's workers inherit where to write their metrics
    with serving_redis(c.settings) as url:
        env = {**os.environ, **settings_env(c.settings), "CONECTA_REDIS_URL": url}
        sys.exit(serve_one(gunicorn_command(c.settings, workers), env, ROOT))
