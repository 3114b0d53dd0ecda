"""`conecta monitor`: the probe scheduler in a process of its own (one works per deployment)."""

from __future__ import annotations

import click

from portal.cli.context import Context, pass_ctx


def register(main: click.Group) -> None:
    """Add `conecta monitor`."""
    main.add_command(monitor)


@click.command()
@pass_ctx
def monitor(c: Context) -> None:
    """Probe every access point; a second monitor stands by until the first stops."""
    from portal.monitor.main import run  # its libraries load only for this command
    run(c.settings)
