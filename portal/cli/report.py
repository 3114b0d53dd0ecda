"""`conecta report usage|slow-lane|availability|nodes`: the same query layers as the console and the API, in
the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from portal.core import availability, board, exports, reports
from portal.core.model import utcnow


def _options(command: Callable) -> Callable:
    """The options every report shares."""
    for option in reversed([
        click.option("--from", "start", help="first local day, 2026-11-01 (default: --period)"),
        click.option("--to", "end", help="last local day (inclusive; default: --period)"),
        click.option("--period", default=reports.DEFAULT_PRESET, show_default=True,
                     type=click.Choice(list(reports.PRESETS)), help="a named period ending today (local)"),
        click.option("--by", default="", help="comma-separated: " + ",".join(reports.DIMENSIONS)),
        click.option("--format", "fmt", default="table", type=click.Choice(["table", "csv", "json", "xlsx"])),
        click.option("--min-cell", default=5, show_default=True, type=click.IntRange(0, 1000),
                     help="cells with fewer distinct people show no figures (0: internal use only)"),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="file (required for xlsx)"),
        click.pass_obj,
    ]):
        command = option(command)
    return command


def _report(c, figures: str, start: str | None, end: str | None, period: str, by: str, fmt: str,  # noqa: ANN001
            min_cell: int, output: Path | None) -> None:
    columns = reports.parse_by(by)
    first, last = reports.period(period, datetime.now(c.settings.tz).date())
    first = reports.parse_day(start, "--from") if start else first
    last = reports.parse_day(end, "--to") if end else last
    metrics = reports.FIGURES[figures]
    with c.db() as db:
        rows = reports.usage(db, first, last, columns, min_cell, figures)
    if fmt == "xlsx":
        _write_xlsx(output, exports.to_xlsx(rows, columns, metrics), len(rows))
        return
    text = {"table": exports.to_table, "csv": exports.to_csv}.get(fmt)
    _write_text(output, text(rows, columns, metrics) if text else exports.to_json(rows))


def register(main: click.Group) -> None:
    """Add `conecta report`."""
    @main.group()
    def report() -> None:
        """Usage statistics (codes are language-neutral; small cells suppressed)."""

    _add_availability(report)
    _add_nodes(report)

    @report.command("usage")
    @_options
    def usage(c, **kw) -> None:  # noqa: ANN001, ANN003
        """People, sessions, hours and GB by the chosen columns (CSV, XLSX and the table as people read them,
        in Spanish; JSON with the stable codes)."""
        _report(c, "usage", **kw)

    @report.command("slow-lane")
    @_options
    def slow_lane(c, **kw) -> None:  # noqa: ANN001, ANN003
        """People who reached the slow lane, their sessions in it and the bytes used there."""
        _report(c, "slow-lane", **kw)


def _write_xlsx(output: Path | None, data: bytes, count: int) -> None:
    if output is None:
        raise click.ClickException("--format xlsx needs --output FILE")
    output.write_bytes(data)
    click.echo(f"{count} rows written to {output}", err=True)


def _write_text(output: Path | None, body: str) -> None:
    body = body if body.endswith("\n") else body + "\n"
    if output is not None:
        output.write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)


def _add_availability(report: click.Group) -> None:
    @report.command("availability")
    @click.option("--from", "start", required=True, help="first local day, 2026-11-01")
    @click.option("--to", "end", required=True, help="last local day (inclusive)")
    @click.option("--by", default="site", show_default=True, help="comma-separated: site,nas,day|month")
    @click.option("--format", "fmt", default="table", type=click.Choice(["table", "csv", "json", "xlsx"]))
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="file (required for xlsx)")
    @click.pass_obj
    def availability_(c, start: str, end: str, by: str, fmt: str, output: Path | None) -> None:  # noqa: ANN001
        """Availability %, up and down seconds, downtime minutes and outages, from the monitor's history."""
        columns = availability.parse_by(by)
        first, last = reports.parse_day(start, "--from"), reports.parse_day(end, "--to")
        with c.db() as db:
            rows = availability.availability(db, first, last, columns, c.settings.tz, utcnow())
        _emit(rows, [*columns, *availability.FIGURES], fmt, output, "availability")


def _add_nodes(report: click.Group) -> None:
    @report.command("nodes")
    @click.option("--format", "fmt", default="table", type=click.Choice(["table", "csv", "json", "xlsx"]))
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="file (required for xlsx)")
    @click.pass_obj
    def nodes(c, fmt: str, output: Path | None) -> None:  # noqa: ANN001
        """Every NAS with its probed state, last probe and packet, sessions now and open faults."""
        interim_of = {name: p.interim_interval for name, p in c.policies.items()}
        with c.db() as db:
            found = board.node_board(db, None, interim_of, c.settings.node_down_after, utcnow())
        _emit(board.node_rows(found, c.settings.tz), board.NODE_COLUMNS, fmt, output, "nodes")


def _emit(rows: list[dict], header: list[str], fmt: str, output: Path | None, sheet: str) -> None:
    """Rows as a table, CSV, JSON or XLSX, to the terminal or `output`."""
    if fmt == "xlsx":
        _write_xlsx(output, exports.rows_xlsx(rows, header, sheet), len(rows))
    elif fmt == "json":
        _write_text(output, exports.to_json(rows))
    else:
        _write_text(output, {"table": exports.rows_table, "csv": exports.rows_csv}[fmt](rows, header))
