"""Report filters from the query string, shared by the staff report pages and the JSON API."""

from __future__ import annotations

from datetime import date, datetime

from flask import request
from flask_babel import get_locale

from policies.messages import N_
from portal.core import labels, reports
from portal.core.errors import InputError
from portal.web.extensions import settings


def local_today() -> date:
    """Today in the configured time zone."""
    return datetime.now(settings().tz).date()


def language() -> str:
    """The reader's language code ('es' or 'en')."""
    return str(get_locale() or "es")


def said(exc: InputError) -> str:
    """A management error in the reader's language."""
    return exc.say(language()) if isinstance(exc, InputError) else str(exc)


def report_period() -> tuple[date, date, str]:
    """from and to from the query string, else the named `period` (default: the last 30 days), and the
    preset in force ('' for chosen dates); ReportError on anything malformed."""
    preset = request.args.get("period", "")
    if request.args.get("from") or request.args.get("to"):
        first, last = reports.default_period(local_today())
        start = reports.parse_day(request.args.get("from") or first.isoformat(), "desde")
        end = reports.parse_day(request.args.get("to") or last.isoformat(), "hasta")
        reports.check_range(start, end)
        return start, end, ""
    preset = preset or reports.DEFAULT_PRESET
    start, end = reports.period(preset, local_today())
    return start, end, preset


def report_args() -> tuple[date, date, list[str], int]:
    """from, to, by and min_cell from the query string; ReportError on anything malformed."""
    start, end, _preset = report_period()
    by = reports.parse_by(",".join(request.args.getlist("by")[:10]) or "site,gender")
    raw = request.args.get("min_cell", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise reports.ReportError(N_("el mínimo de personas por celda debe ser un número entero de 1 a 50"))
    return start, end, by, int(raw)


def figures_arg() -> str:
    """Which figures a report asks for: `usage` (the default) or `slow-lane`."""
    figures = request.args.get("figures", "usage")
    if figures not in reports.FIGURES:
        raise reports.ReportError(N_("las cifras pueden ser %(known)s"), known=", ".join(reports.FIGURES))
    return figures


def word(code: object, kind: str) -> str:
    """The Jinja filter `word`: a code as people read it, in the reader's language."""
    return labels.word(kind, code, language())


def column(name: str) -> str:
    """The Jinja global `column`: a report column's heading in the reader's language."""
    return labels.column(name, language())
