"""`conecta report usage`: the same query layer as the console and the API, in the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from portal.core import exports, reports


def _options(command: Callable) -> Callable:
    """The options every report shares."""
    for option in reversed([
        click.option("--from", "start", required=True, help="first local day, 2026-11-01"),
        click.option("--to", "end", required=True, help="last local day (inclusive)"),
        click.option("--by", default="", help="comma-separated: site,site_kind,gender,age_band,day,month"),
        click.option("--format", "fmt", default="table", type=click.Choice(["table", "csv", "json", "xlsx"])),
        click.option("--min-cell", default=5, show_default=True, type=click.IntRange(0, 1000),
                     help="cells with fewer distinct people show no figures (0: internal use only)"),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="file (required for xlsx)"),
        click.pass_obj,
    ]):
        command = option(command)
    return command


def _report(c, figures: str, start: str, end: str, by: str, fmt: str, min_cell: int,  # noqa: ANN001
            output: Path | None) -> None:
    columns = reports.parse_by(by)
    first, last = reports.parse_day(start, "--from"), reports.parse_day(end, "--to")
    metrics = reports.FIGURES[figures]
    with c.db() as db:
        rows = reports.usage(db, first, last, columns, min_cell, figures)
    if fmt == "xlsx":
        if output is None:
            raise click.ClickException("--format xlsx needs --output FILE")
        output.write_bytes(exports.to_xlsx(rows, columns, metrics))
        click.echo(f"{len(rows)} rows written to {output}", err=True)
        return
    text = {"table": exports.to_table, "csv": exports.to_csv}.get(fmt)
    body = text(rows, columns, metrics) if text else exports.to_json(rows)
    if output is not None:
        output.write_text(body if body.endswith("\n") else body + "\n", encoding="utf-8")
    else:
        sys.stdout.write(body if body.endswith("\n") else body + "\n")


def register(main: click.Group) -> None:
    """Add `conecta report`."""
    @main.group()
    def report() -> None:
        """Usage statistics (codes are language-neutral; small cells suppressed)."""

    @report.command("usage")
    @_options
    def usage(c, **kw) -> None:  # noqa: ANN001, ANN003
        """Users, sessions, seconds and bytes by the chosen columns."""
        _report(c, "usage", **kw)

    @report.command("slow-lane")
    @_options
    def slow_lane(c, **kw) -> None:  # noqa: ANN001, ANN003
        """People who reached the slow lane, their sessions in it and the bytes used there."""
        _report(c, "slow-lane", **kw)
