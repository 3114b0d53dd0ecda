"""Staff console reports: tables, server-side SVG charts and CSV/XLSX/JSON exports, one query layer."""

from __future__ import annotations

from datetime import datetime

import pygal
from flask import Blueprint, Response, abort, render_template, request

from portal.core import exports, reports
from portal.web.extensions import db, settings
from portal.web.filters import figures_arg, report_args
from portal.web.staff.access import record, role

bp = Blueprint("reports", __name__)

MAX_EXPORT_ROWS = 100_000


@bp.errorhandler(reports.ReportError)
def bad_report(exc: reports.ReportError) -> tuple[str, int]:
    """A bad filter is a clear 400, not a crash."""
    return render_template("error.html", message=str(exc)), 400


@bp.get("/reports")
@role("admin", "analyst")
def report_page() -> str:
    """Usage by the chosen columns, plan vs actual, new vs returning, women's share and the hour profile."""
    start, end, by, k = report_args()
    with_gender = reports.usage(db.session, start, end, ["site", "gender"], k)
    month = start.strftime("%Y-%m")
    return render_template(
        "staff/reports.html", start=start, end=end, by=by, k=k, dimensions=reports.DIMENSIONS,
        rows=reports.usage(db.session, start, end, by, k), plan=reports.planned_vs_actual(db.session, month),
        slow=reports.usage(db.session, start, end, by, k, "slow-lane"),
        month=month, fresh=reports.new_and_returning(db.session, start, end, k),
        women=reports.women_share(with_gender), query=request.query_string.decode())


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
    chart = pygal.Bar(js=[], show_legend=False, width=720, height=300, title="Sesiones por hora del día")
    chart.x_labels = [f"{h:02d}" for h in range(24)]
    chart.add("sesiones", reports.hour_profile(db.session, start, end, offset))
    return _svg(chart)


@bp.get("/reports/sites.svg")
@role("admin", "analyst")
def sites_chart() -> Response:
    """GB per site against plan for the month of `from`."""
    start, _end, _by, _k = report_args()
    rows = reports.planned_vs_actual(db.session, start.strftime("%Y-%m"))
    chart = pygal.HorizontalBar(js=[], width=720, height=60 + 40 * max(1, len(rows)), title="GB del mes")
    chart.x_labels = [r["site"] for r in rows]
    chart.add("planeado", [r["planned_gb"] or 0 for r in rows])
    chart.add("real", [r["actual_gb"] for r in rows])
    return _svg(chart)


@bp.get("/reports/export.<fmt>")
@role("admin", "analyst")
def export(fmt: str) -> Response:
    """The same rows as CSV, XLSX or JSON, formulas neutralised, size-limited."""
    if fmt not in ("csv", "xlsx", "json"):
        abort(404)
    start, end, by, k = report_args()
    figures = figures_arg()
    rows = reports.usage(db.session, start, end, by, k, figures)
    if len(rows) > MAX_EXPORT_ROWS:
        raise reports.ReportError("the export would exceed 100,000 rows; choose fewer columns or a shorter range")
    record("export", f"{fmt} {figures} {start}..{end} by {','.join(by)} k={k}")
    db.session.commit()
    name = f"conecta-{'uso' if figures == 'usage' else 'velocidad-reducida'}-{start}-{end}.{fmt}"
    metrics = reports.FIGURES[figures]
    if fmt == "csv":
        body, mime = exports.to_csv(rows, by, metrics), "text/csv; charset=utf-8"
    elif fmt == "json":
        body, mime = exports.to_json(rows), "application/json"
    else:
        body, mime = (exports.to_xlsx(rows, by, metrics),
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})
