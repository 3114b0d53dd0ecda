"""/api/v1: reports for signed-in staff, and always-suppressed open data for everyone."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, g, jsonify, render_template, request

from portal.core import availability, exports, figures, reports
from portal.core.errors import InputError
from portal.web.extensions import csrf, db, settings
from portal.web.filters import figures_arg, language, local_today, report_args, said
from portal.web.staff.access import signed_in
from portal.web.staff.health import availability_args, naive_now

bp = Blueprint("api", __name__)
OPEN_DATA_K = 5


@bp.errorhandler(InputError)
def bad_request(exc: InputError) -> tuple[Response, int] | tuple[str, int]:
    """Malformed filters: 400 with the reason (JSON for the API, a page for the open-data page)."""
    if request.path.startswith("/api/"):
        return jsonify(error=said(exc)), 400
    return render_template("error.html", message=said(exc)), 400


@bp.get("/api/v1/reports")
@csrf.exempt
def api_reports() -> tuple[Response, int] | Response:
    """Usage rows (or, with figures=slow-lane, the slow lane's) as JSON for a signed-in admin or analyst."""
    g.staff = signed_in()
    if g.staff is None:
        return jsonify(error="sign in first"), 401
    start, end, by, k = report_args()
    return jsonify(reports.usage(db.session, start, end, by, k, figures_arg()))


@bp.get("/api/v1/reports/women-share")
@csrf.exempt
def api_women_share() -> tuple[Response, int] | Response:
    """The share of women per ?group=site|site_kind|month|community, hidden unless women and the rest are
    each at least min_cell people."""
    g.staff = signed_in()
    if g.staff is None:
        return jsonify(error="sign in first"), 401
    start, end, _by, k = report_args()
    return jsonify(figures.women_share(db.session, start, end, request.args.get("group", "site"), k))


@bp.get("/api/v1/availability")
@csrf.exempt
def api_availability() -> tuple[Response, int] | Response:
    """Availability rows (?from=&to=&by=site,nas,day,month) for signed-in staff."""
    g.staff = signed_in()
    if g.staff is None:
        return jsonify(error="sign in first"), 401
    try:
        start, end, by = availability_args()
        return jsonify(availability.availability(db.session, start, end, by, settings().tz, naive_now()))
    except InputError as exc:
        return jsonify(error=str(exc)), 400


def _open_rows() -> tuple[str, list[dict], list[str]]:
    month = request.args.get("month") or reports.last_complete_month(local_today())
    start, end = reports.month_bounds(month)
    by = ["site_kind", "gender", "age_band"]
    return month, reports.usage(db.session, start, end, by, OPEN_DATA_K), by


def _months() -> list[str]:
    """The months that can be asked for: the last 24, newest first."""
    cursor, months = local_today().replace(day=1), []
    for _ in range(24):
        months.append(cursor.strftime("%Y-%m"))
        cursor = (cursor - timedelta(days=1)).replace(day=1)
    return months


@bp.get("/api/v1/open-data")
def open_data() -> Response:
    """Aggregated figures by kind of site, gender and age band (codes); cells under 5 people never shown."""
    _month, rows, _by = _open_rows()
    return jsonify(rows)


@bp.get("/open-data.csv")
def open_data_csv() -> Response:
    """The same open data as CSV for a spreadsheet (words, Spanish headings, UTF-8 BOM)."""
    month, rows, by = _open_rows()
    return Response(exports.to_csv(rows, by, reports.METRICS, language()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="conecta-datos-abiertos-{month}.csv"'})


@bp.get("/open-data")
def open_data_page() -> str:
    """The same open data as a page anyone can read, with a month picker."""
    month, rows, by = _open_rows()
    return render_template("opendata.html", month=month, rows=rows, by=by, months=_months())
