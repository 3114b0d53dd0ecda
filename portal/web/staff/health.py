"""Node health in the console: availability by site, NAS, day or month, with the latest outages and
exports (one query layer with `conecta report availability` and the API); the node list as CSV, XLSX
or JSON; and the sites on a map drawn on the server, with links to OpenStreetMap."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pygal
from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from pygal.style import Style

from portal.core import availability, board, exports, reports
from portal.web.extensions import db, now, policies, redis_client, settings
from portal.web.filters import local_today
from portal.web.staff.access import role

bp = Blueprint("health", __name__)


def availability_args() -> tuple[date, date, list[str]]:
    """from, to and by from the query string (default: this month so far, by site)."""
    first, last = reports.period("this-month", local_today())
    start = reports.parse_day(request.args.get("from") or first.isoformat(), "desde")
    end = reports.parse_day(request.args.get("to") or last.isoformat(), "hasta")
    reports.check_range(start, end)
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
    return _download(rows, [*by, *availability.FIGURES], fmt, "availability", f"conecta-disponibilidad-{start}-{end}")


@bp.get("/nodes/export.<fmt>")
@role("admin", "analyst")
def nodes_export(fmt: str) -> Response:
    """The node board (every NAS with its state) as CSV, XLSX or JSON."""
    interim_of = {name: p.interim_interval for name, p in policies().items()}
    nodes = board.node_board(db.session, redis_client(), interim_of, settings().node_down_after, naive_now())
    stamp = now().astimezone(settings().tz).strftime("%Y-%m-%d-%H%M")
    return _download(board.node_rows(nodes, settings().tz), board.NODE_COLUMNS, fmt, "nodes",
                     f"conecta-nodos-{stamp}")


def _download(rows: list[dict], columns: list[str], fmt: str, sheet: str, name: str) -> Response:
    if fmt == "csv":
        body, mimetype = exports.rows_csv(rows, columns), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body = exports.rows_xlsx(rows, columns, sheet)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    elif fmt == "json":
        body, mimetype = exports.to_json(rows), "application/json"
    else:
        abort(404)
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}.{fmt}"})


@bp.get("/map")
@role("admin", "analyst")
def map_page() -> str:
    """The sites on a map drawn on the server, each with a link to OpenStreetMap."""
    return render_template("staff/map.html", points=board.site_points(db.session))


MAP_STATES = (("fault", "falla conocida", "#a4161a"), ("ok", "en servicio", "#1e6b2e"),
              ("unknown", "sin información", "#777777"))


@bp.get("/map.svg")
@role("admin", "analyst")
def map_svg() -> Response:
    """Sites by longitude and latitude, coloured by state; names printed (an image: no script)."""
    points = [p for p in board.site_points(db.session) if p.osm]
    style = Style(colors=tuple(color for _s, _l, color in MAP_STATES), background="white", plot_background="#f4f7f4")
    chart = pygal.XY(js=[], stroke=False, style=style, width=720, height=520, dots_size=7, print_labels=True,
                     title=_("Sitios"), x_title=_("longitud"), y_title=_("latitud"), show_x_guides=True,
                     no_data_text=_("Sin datos"))
    for state, label, _color in MAP_STATES:
        chart.add(label, [{"value": (p.lon, p.lat), "label": p.name} for p in points if p.state == state])
    response = Response(chart.render(is_unicode=True), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response
