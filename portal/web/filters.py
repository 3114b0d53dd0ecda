"""Report filters from the query string, shared by the staff report pages and the JSON API."""

from __future__ import annotations

from datetime import date, datetime

from flask import request

from portal.core import reports
from portal.web.extensions import settings


def local_today() -> date:
    """Today in the configured time zone."""
    return datetime.now(settings().tz).date()


def report_args() -> tuple[date, date, list[str], int]:
    """from, to, by and min_cell from the query string; ReportError on anything malformed."""
    first, last = reports.default_period(local_today())
    start = reports.parse_day(request.args.get("from", first.isoformat()), "from")
    end = reports.parse_day(request.args.get("to", last.isoformat()), "to")
    by = reports.parse_by(",".join(request.args.getlist("by")) or "site,gender")
    raw = request.args.get("min_cell", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise reports.ReportError("min_cell must be a whole number from 1 to 50")
    return start, end, by, int(raw)


def figures_arg() -> str:
    """Which figures a report asks for: `usage` (the default) or `slow-lane`."""
    figures = request.args.get("figures", "usage")
    if figures not in reports.FIGURES:
        raise reports.ReportError(f"figures must be one of {', '.join(reports.FIGURES)}")
    return figures
