"""`conecta site|nas|user|staff add/list/show/remove` and `conecta user import`."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from portal import fleet
from portal.model import SITE_KINDS, VENDORS, Nas, Site


def _table(rows: list[tuple], header: tuple[str, ...]) -> None:
    rows = [tuple("" if v is None else str(v) for v in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _show(obj: object, hidden: tuple[str, ...] = ()) -> None:
    for column in obj.__table__.columns:
        value = "(hidden)" if column.name in hidden else getattr(obj, column.name)
        click.echo(f"{column.name}: {'' if value is None else value}")


def _get(db, model, column, name: str, kind: str):  # noqa: ANN001, ANN202
    obj = db.scalar(select(model).where(column == name))
    if obj is None:
        raise fleet.FleetError(f"unknown {kind} {name!r}")
    return obj


def _remove_command(group: click.Group, kind: str) -> None:
    @group.command("remove")
    @click.argument("name")
    @click.pass_obj
    def remove(c, name: str) -> None:  # noqa: ANN001
        """Remove by name."""
        with c.db() as db:
            fleet.remove(db, kind, name)
            fleet.commit_or_explain(db)
        click.echo(f"{kind} {name!r} removed")


def site_group(main: click.Group) -> None:
    """Register `conecta site`."""
    @main.group()
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
            fleet.add_site(db, c.policies, name, kind, policy, planned_gb_month, lat, lon, communities)
            fleet.commit_or_explain(db)
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
    @click.pass_obj
    def set_(c, name, rename, kind, policy, planned_gb_month, lat, lon, communities) -> None:  # noqa: ANN001
        """Change a site; what is not given stays as it is."""
        with c.db() as db:
            row = _get(db, Site, Site.name, name, "site")
            spec = fleet.SiteSpec(rename or row.name, kind or row.kind, policy or row.policy,
                                  row.planned_gb_month if planned_gb_month is None else planned_gb_month,
                                  row.lat if lat is None else lat, row.lon if lon is None else lon,
                                  tuple(communities) or tuple((row.communities or "").splitlines()))
            changed = fleet.update_site(db, c.policies, row, spec)
            fleet.commit_or_explain(db)
        click.echo(f"site {spec.name!r}: {', '.join(changed) or 'nothing'} changed")

    @site.command("list")
    @click.pass_obj
    def list_(c) -> None:  # noqa: ANN001
        """List sites with their NAS count."""
        with c.db() as db:
            rows = db.execute(select(Site.name, Site.kind, Site.policy, Site.planned_gb_month,
                                     func.count(Nas.id)).outerjoin(Nas, Nas.site_id == Site.id)
                              .group_by(Site.id).order_by(Site.name)).all()
        _table(rows, ("name", "kind", "policy", "planned_gb_month", "nas"))

    @site.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(c, name: str) -> None:  # noqa: ANN001
        """Show one site."""
        with c.db() as db:
            _show(_get(db, Site, Site.name, name, "site"))

    _remove_command(site, "site")


def nas_group(main: click.Group) -> None:
    """Register `conecta nas`."""
    @main.group()
    def nas() -> None:
        """Access points and gateways allowed to talk RADIUS."""

    @nas.command("add")
    @click.argument("name")
    @click.option("--site", required=True)
    @click.option("--ip", required=True)
    @click.option("--secret", required=True, help="RADIUS shared secret, at least 16 characters")
    @click.option("--vendor", required=True, type=click.Choice(VENDORS))
    @click.option("--coa-port", default=3799, show_default=True, type=int)
    @click.option("--uam-secret", help="CoovaChilli's uamsecret (md check and CHAP hand-off)")
    @click.option("--require-message-authenticator", "require_ma", default="yes", show_default=True,
                  type=click.Choice(["yes", "no"]))
    @click.pass_obj
    def add(c, name, site, ip, secret, vendor, coa_port, uam_secret, require_ma) -> None:  # noqa: ANN001
        """Add a NAS."""
        spec = fleet.NasSpec(name, site, ip, secret, vendor, coa_port, uam_secret, require_ma == "yes")
        with c.db() as db:
            row, warnings = fleet.add_nas(db, spec, c.settings.production)
            fleet.commit_or_explain(db)
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"NAS {name!r} added for {row.ip} ({vendor}, site {site!r})")

    @nas.command("list")
    @click.pass_obj
    def list_(c) -> None:  # noqa: ANN001
        """List NAS (secrets are never shown)."""
        with c.db() as db:
            rows = db.execute(select(Nas.name, Site.name, Nas.ip, Nas.vendor, Nas.coa_port,
                                     Nas.require_message_authenticator, Nas.last_seen)
                              .join(Site, Site.id == Nas.site_id).order_by(Nas.name)).all()
        _table(rows, ("name", "site", "ip", "vendor", "coa_port", "require_ma", "last_seen"))

    @nas.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(c, name: str) -> None:  # noqa: ANN001
        """Show one NAS (secrets hidden)."""
        with c.db() as db:
            _show(_get(db, Nas, Nas.name, name, "NAS"), hidden=("secret", "uam_secret"))

    _remove_command(nas, "nas")


def register(main: click.Group) -> None:
    """Add the fleet groups to the `conecta` command."""
    site_group(main)
    nas_group(main)
    from portal.cli_people import staff_group, user_group
    user_group(main)
    staff_group(main)
