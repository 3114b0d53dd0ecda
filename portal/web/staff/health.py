"""Node health in the console: availability by site, NAS, day or month, with the latest outages and
exports (one query layer with `conecta report availability` and the API)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Blueprint, Response, abort, render_template, request

from portal.core import availability, exports, reports
from portal.core.errors import InputError
from portal.web.extensions import db, now, settings
from portal.web.filters import local_today
from portal.web.staff.access import role

bp = Blueprint("health", __name__)


@bp.errorhandler(InputError)
def bad_filter(exc: InputError) -> tuple[str, int]:
    """A bad date or column is a clear 400."""
    return render_template("error.html", message=str(exc)), 400


def availability_args() -> tuple[date, date, list[str]]:
    """from, to and by from the query string (default: this month so far, by site)."""
    first, last = reports.default_period(local_today())
    start = reports.parse_day(request.args.get("from", first.isoformat()), "from")
    end = reports.parse_day(request.args.get("to", last.isoformat()), "to")
    return start, end, availability.parse_by(",".join(request.args.getlist("by")) or "site")


def availability_rows() -> tuple[date, date, list[str], list[dict]]:
    """The filters and the rows they select."""
    start, end, by = availability_args()
    return start, end, by, availability.availability(db.session, start, end, by, settings().tz, naive_now())


def naive_now() -> datetime:
    """The app's clock as the naive UTC the database holds."""
    return now().replace(tzinfo=None)


@bp.get("/availability")
@role("admin", "analyst")
def availability_page() -> str:
    """Availability and downtime by the chosen columns; the outages of the last 30 days."""
    start, end, by, rows = availability_rows()
    recent = availability.outages(db.session, naive_now() - timedelta(days=30))
    return render_template("staff/availability.html", start=start, end=end, by=by, rows=rows, recent=recent,
                           columns=availability.COLUMNS, query=request.query_string.decode())


@bp.get("/availability/export.<fmt>")
@role("admin", "analyst")
def availability_export(fmt: str) -> Response:
    """The same rows as CSV, XLSX or JSON."""
    start, end, by, rows = availability_rows()
    columns = [*by, *availability.FIGURES]
    name = f"conecta-disponibilidad-{start}-{end}"
    if fmt == "csv":
        body, mimetype = exports.rows_csv(rows, columns), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body = exports.rows_xlsx(rows, columns, "availability")
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    elif fmt == "json":
        body, mimetype = exports.to_json(rows), "application/json"
    else:
        abort(404)
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}.{fmt}"})
