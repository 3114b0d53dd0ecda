"""`conecta nas add|list|show|remove`: access points and gateways allowed to talk RADIUS."""

from __future__ import annotations

import click
from sqlalchemy import select

from portal.cli import output
from portal.core import sites
from portal.core.db import commit_or_explain
from portal.core.model import VENDORS, Nas, Site


def register(main: click.Group) -> None:
    """Add `conecta nas`."""
    @main.group()
    def nas() -> None:
        """Access points and gateways allowed to talk RADIUS."""

    @nas.command("add")
    @click.argument("name")
    @click.option("--site", required=True)
    @click.option("--ip", required=True)
    @click.option("--secret", required=True, help="RADIUS shared secret, at least 16 characters")
    @click.option("--vendor", required=True, type=click.Choice(VENDORS))
    @click.option("--coa-port", default=3799, show_default=True, type=int,
                  help="RFC 5176 port for Disconnect- and CoA-Requests; 0 when the NAS takes none")
    @click.option("--uam-secret", help="CoovaChilli's uamsecret (md check and CHAP hand-off)")
    @click.option("--require-message-authenticator", "require_ma", default="yes", show_default=True,
                  type=click.Choice(["yes", "no"]))
    @click.pass_obj
    def add(c, name, site, ip, secret, vendor, coa_port, uam_secret, require_ma) -> None:  # noqa: ANN001
        """Add a NAS."""
        spec = sites.NasSpec(name, site, ip, secret, vendor, coa_port, uam_secret, require_ma == "yes")
        with c.db() as db:
            row, warnings = sites.add_nas(db, spec, c.settings.production)
            commit_or_explain(db)
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
        output.table(rows, ("name", "site", "ip", "vendor", "coa_port", "require_ma", "last_seen"))

    @nas.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(c, name: str) -> None:  # noqa: ANN001
        """Show one NAS (secrets hidden)."""
        with c.db() as db:
            output.show(output.get(db, Nas, Nas.name, name, "NAS"), hidden=("secret", "uam_secret"))

    output.remove_command(nas, "NAS", sites.remove_nas)

