"""The `conecta` command: one module per sub-command group, registered here in one place."""

from __future__ import annotations

import click

from portal.cli import identity, monitor, nas, report, services, simulate, sites, staff, upkeep, users
from portal.cli.context import ConectaGroup, Context
from portal.core import logs


@click.group(cls=ConectaGroup)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Conecta: free municipal Wi-Fi — RADIUS, captive portal and reports."""
    logs.setup(log_level.upper())
    ctx.obj = Context()


for _group in (services, monitor, sites, nas, users, staff, report, upkeep, simulate, identity):
    _group.register(main)
