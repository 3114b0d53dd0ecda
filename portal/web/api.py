"""/api/v1: reports for signed-in staff, and always-suppressed open data for everyone."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, render_template, request

from portal.core import availability, reports
from portal.core.errors import InputError
from portal.web.extensions import csrf, db, settings
from portal.web.filters import figures_arg, local_today, report_args
from portal.web.staff.access import signed_in
from portal.web.staff.health import availability_args, naive_now

bp = Blueprint("api", __name__)
OPEN_DATA_K = 5


@bp.errorhandler(reports.ReportError)
def bad_request(exc: reports.ReportError) -> tuple[Response, int]:
    """Malformed filters: 400 with the reason."""
    return jsonify(error=str(exc)), 400


@bp.get("/api/v1/reports")
@csrf.exempt
def api_reports() -> tuple[Response, int] | Response:
    """Usage rows (or, with figures=slow-lane, the slow lane's) as JSON for a signed-in admin or analyst."""
    g.staff = signed_in()
    if g.staff is None:
        return jsonify(error="sign in first"), 401
    start, end, by, k = report_args()
    return jsonify(reports.usage(db.session, start, end, by, k, figures_arg()))


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
    month = request.args.get("month") or reports.default_period(local_today())[0].strftime("%Y-%m")
    start, end = reports.month_bounds(month)
    by = ["site_kind", "gender", "age_band"]
    return month, reports.usage(db.session, start, end, by, OPEN_DATA_K), by


@bp.get("/api/v1/open-data")
def open_data() -> Response:
    """Aggregated figures by kind of site, gender and age band; cells under 5 people never shown."""
    _month, rows, _by = _open_rows()
    return jsonify(rows)


@bp.get("/open-data")
def open_data_page() -> str:
    """The same open data as a page anyone can read."""
    month, rows, by = _open_rows()
    return render_template("opendata.html", month=month, rows=rows, by=by)
