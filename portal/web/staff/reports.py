"""Staff console reports: tables, server-side SVG charts and CSV/XLSX/JSON exports, one query layer."""

from __future__ import annotations

from datetime import datetime

import pygal
from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _

from policies.messages import N_
from portal.core import exports, figures, reports
from portal.web.extensions import db, settings
from portal.web.filters import figures_arg, language, local_today, report_args, report_period
from portal.web.staff.access import record, role

bp = Blueprint("reports", __name__)

MAX_EXPORT_ROWS = 100_000
TREND_MONTHS = 12


@bp.get("/reports")
@role("admin", "analyst")
def report_page() -> str:
    """Usage by the chosen columns, the share of women, new vs returning, the month-over-month trend, plan
    vs actual pro-rated to date, usage by community and the hour profile."""
    start, end, by, k = report_args()
    preset = report_period()[2]
    today = local_today()
    month = end.strftime("%Y-%m")
    shares = {group: figures.women_share(db.session, start, end, group, k) for group in ("site", "site_kind")}
    return render_template(
        "staff/reports.html", start=start, end=end, by=by, k=k, dimensions=reports.DIMENSIONS, preset=preset,
        presets=reports.PRESETS, rows=reports.usage(db.session, start, end, by, k),
        slow=reports.usage(db.session, start, end, by, k, "slow-lane"), shares=shares,
        community=reports.usage(db.session, start, end, ["community"], k),
        community_shares=figures.women_share(db.session, start, end, "community", k),
        plan=figures.planned_vs_actual(db.session, month, min(today, end)), month=month,
        fresh=figures.new_and_returning(db.session, start, end, k),
        trend=figures.trend(db.session, today, TREND_MONTHS, k), query=request.query_string.decode())


def _svg(chart) -> Response:  # noqa: ANN001 - a pygal chart
    response = Response(chart.render(is_unicode=True), mimetype="image/svg+xml")
    # The chart is an <img>: its own styles only, no scripts at all.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@bp.get("/reports/hours.svg")
@role("admin", "analyst")
def hours_chart() -> Response:
    """Sessions started per local hour of day, as an SVG bar chart (no JavaScript)."""
    start, end, _by, _k = report_args()
    offset = int(datetime.now(settings().tz).utcoffset().total_seconds() // 3600)
    chart = pygal.Bar(js=[], show_legend=False, width=720, height=300, no_data_text=_("Sin datos"),
                      title=_("Sesiones por hora del día (hora de %(tz)s)", tz=settings().timezone))
    chart.x_labels = [f"{h:02d}" for h in range(24)]
    chart.add(_("sesiones"), figures.hour_profile(db.session, start, end, offset))
    return _svg(chart)


@bp.get("/reports/sites.svg")
@role("admin", "analyst")
def sites_chart() -> Response:
    """GB per site against the plan to date, and the month-end projection, for the month of `to`."""
    _start, end, _by, _k = report_args()
    rows = figures.planned_vs_actual(db.session, end.strftime("%Y-%m"), min(local_today(), end))
    chart = pygal.HorizontalBar(js=[], width=720, height=80 + 60 * max(1, len(rows)), no_data_text=_("Sin datos"),
                                title=_("GB del mes: planeado a la fecha, real y proyección"))
    chart.x_labels = [r["site"] for r in rows]
    chart.add(_("planeado a la fecha"), [r["planned_to_date_gb"] or 0 for r in rows])
    chart.add(_("real"), [r["actual_gb"] for r in rows])
    chart.add(_("proyección al cierre"), [r["projected_gb"] or 0 for r in rows])
    return _svg(chart)


@bp.get("/reports/trend.svg")
@role("admin", "analyst")
def trend_chart() -> Response:
    """People and GB per month over the last twelve months (this one so far), as SVG lines."""
    _start, _end, _by, k = report_args()
    rows = figures.trend(db.session, local_today(), TREND_MONTHS, k)
    chart = pygal.Line(js=[], width=720, height=320, title=_("Mes contra mes"), no_data_text=_("Sin datos"))
    chart.x_labels = [r["month"] for r in rows]
    gb = [None if r["bytes_down"] is None else round((r["bytes_down"] + r["bytes_up"]) / 1e9, 2) for r in rows]
    chart.add(_("personas"), [r["users"] for r in rows])
    # GB on the right-hand axis (pygal cannot draw a secondary axis without a single value on it).
    chart.add(_("GB"), gb, secondary=any(v is not None for v in gb))
    return _svg(chart)


@bp.get("/reports/export.<fmt>")
@role("admin", "analyst")
def export(fmt: str) -> Response:
    """The same rows as CSV, XLSX (as people read them) or JSON (codes), formulas neutralised, size-limited."""
    if fmt not in ("csv", "xlsx", "json"):
        abort(404)
    start, end, by, k = report_args()
    chosen = figures_arg()
    rows = reports.usage(db.session, start, end, by, k, chosen)
    if len(rows) > MAX_EXPORT_ROWS:
        raise reports.ReportError(N_("la exportación pasaría de 100 000 filas; elige menos columnas o un periodo "
                                     "más corto"))
    record("export", f"{fmt} {chosen} {start}..{end} by {','.join(by)} k={k}")
    db.session.commit()
    name = f"conecta-{'uso' if chosen == 'usage' else 'velocidad-reducida'}-{start}-{end}.{fmt}"
    metrics = reports.FIGURES[chosen]
    if fmt == "csv":
        body, mime = exports.to_csv(rows, by, metrics, language()), "text/csv; charset=utf-8"
    elif fmt == "json":
        body, mime = exports.to_json(rows), "application/json"
    else:
        body, mime = (exports.to_xlsx(rows, by, metrics, language()),
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})
