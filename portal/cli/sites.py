"""`conecta site add|set|list|show|remove`: places with hotspots."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from portal.cli import output
from portal.core import maintenance, sites
from portal.core.db import commit_or_explain
from portal.core.model import SITE_KINDS, Nas, Site, utcnow


@click.group()
def site() -> None:
    """Places with hotspots: parks, plazas, ejidos, digital centers."""


@site.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(SITE_KINDS))
@click.option("--policy", required=True)
@click.option("--planned-gb-month", type=float)
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--community", "communities", multiple=True, help="offered at registration; repeat for more")
@click.pass_obj
def add(c, name, kind, policy, planned_gb_month, lat, lon, communities) -> None:  # noqa: ANN001
    """Add a site."""
    with c.db() as db:
        sites.add_site(db, c.policies, name, kind, policy, planned_gb_month, lat, lon, communities)
        commit_or_explain(db)
    click.echo(f"site {name!r} added ({kind}, policy {policy})")


@site.command("set")
@click.argument("name")
@click.option("--rename")
@click.option("--kind", type=click.Choice(SITE_KINDS))
@click.option("--policy")
@click.option("--planned-gb-month", type=float)
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--community", "communities", multiple=True, help="replaces the list; repeat for more")
@click.option("--maintenance", help="a planned outage, no alerts: '2026-12-03 22:00/2h' (local start/duration)")
@click.option("--clear-maintenance", is_flag=True, help="remove the site's current and future windows")
@click.pass_obj
def set_(c, name, rename, kind, policy, planned_gb_month, lat, lon, communities, maintenance,  # noqa: ANN001
         clear_maintenance) -> None:
    """Change a site; what is not given stays as it is."""
    if maintenance or clear_maintenance:
        _maintenance(c, name, maintenance, clear_maintenance)
        if not any((rename, kind, policy, planned_gb_month, lat, lon, communities)):
            return
    with c.db() as db:
        row = output.get(db, Site, Site.name, name, "site")
        spec = sites.SiteSpec(rename or row.name, kind or row.kind, policy or row.policy,
                              row.planned_gb_month if planned_gb_month is None else planned_gb_month,
                              row.lat if lat is None else lat, row.lon if lon is None else lon,
                              tuple(communities) or tuple((row.communities or "").splitlines()))
        changed = sites.update_site(db, c.policies, row, spec)
        commit_or_explain(db)
    click.echo(f"site {spec.name!r}: {', '.join(changed) or 'nothing'} changed")


@site.command("list")
@click.pass_obj
def list_(c) -> None:  # noqa: ANN001
    """List sites with their NAS count."""
    with c.db() as db:
        rows = db.execute(select(Site.name, Site.kind, Site.policy, Site.planned_gb_month,
                                 func.count(Nas.id)).outerjoin(Nas, Nas.site_id == Site.id)
                          .group_by(Site.id).order_by(Site.name)).all()
    output.table(rows, ("name", "kind", "policy", "planned_gb_month", "nas"))


@site.command("show")
@click.argument("name")
@click.pass_obj
def show(c, name: str) -> None:  # noqa: ANN001
    """Show one site."""
    with c.db() as db:
        row = output.get(db, Site, Site.name, name, "site")
        output.show(row)
        for w in maintenance.site_windows(db, row.id, utcnow()):
            click.echo(f"maintenance: {maintenance.describe(w, c.settings.tz)}")


output.remove_command(site, "site", sites.remove_site)


def register(main: click.Group) -> None:
    """Add `conecta site`."""
    main.add_command(site)

def _maintenance(c, name: str, window: str | None, clear: bool) -> None:  # noqa: ANN001 - the Context
    """Clear a site's windows and/or add one, and say what was done."""
    with c.db() as db:
        site = output.get(db, Site, Site.name, name, "site")
        if clear:
            click.echo(f"site {name!r}: {maintenance.clear_windows(db, site, utcnow())} maintenance window(s) removed")
        if window:
            added = maintenance.add_window(db, site, window, c.settings.tz, "cli")
            click.echo(f"site {name!r}: maintenance {maintenance.describe(added, c.settings.tz)} (no alerts)")
        commit_or_explain(db)
