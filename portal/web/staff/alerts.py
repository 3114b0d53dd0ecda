"""Alerts in the console: every alert sent or failed, each staff member's sites, and the maintenance
windows of a site (admins)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from sqlalchemy import delete, select

from portal.core import maintenance
from portal.core.db import commit_or_explain
from portal.core.errors import InputError
from portal.core.model import Alert, AlertSubscription, MaintenanceWindow, Site
from portal.web.extensions import db, now, settings
from portal.web.filters import said
from portal.web.staff.access import record, role

bp = Blueprint("alerts", __name__)


@bp.get("/alerts")
@role("admin", "analyst")
def alert_page() -> str:
    """The latest alerts with their outcome, and the sites whose e-mail alerts I receive."""
    rows = db.session.scalars(select(Alert).order_by(Alert.id.desc()).limit(200)).all()
    sites = db.session.execute(select(Site.id, Site.name).order_by(Site.name)).all()
    mine = set(db.session.scalars(select(AlertSubscription.site_id).where(AlertSubscription.staff_id == g.staff.id)))
    s = settings()
    return render_template("staff/alerts.html", rows=rows, sites=sites, mine=mine, email=bool(s.smtp_host),
                           webhook=bool(s.alert_webhook_url), saved=request.args.get("saved"))


@bp.post("/alerts/subscriptions")
@role("admin", "analyst")
def subscriptions() -> Response:
    """Replace my list of sites with those ticked."""
    known = set(db.session.scalars(select(Site.id)))
    chosen = {int(v) for v in request.form.getlist("site") if v.isdigit() and int(v) in known}
    db.session.execute(delete(AlertSubscription).where(AlertSubscription.staff_id == g.staff.id))
    db.session.add_all([AlertSubscription(staff_id=g.staff.id, site_id=site_id) for site_id in sorted(chosen)])
    record("alert-subscriptions", f"{len(chosen)} sites")
    db.session.commit()
    return redirect(url_for("staff.alerts.alert_page", saved="1"))


@bp.post("/sites/<int:site_id>/maintenance")
@role("admin")
def add_maintenance(site_id: int) -> tuple[str, int] | Response:
    """Add a maintenance window: a local start and a duration."""
    site = db.session.get(Site, site_id) or abort(404)
    text = f"{request.form.get('start', '').strip()}/{request.form.get('duration', '').strip()}"
    try:
        window = maintenance.add_window(db.session, site, text, settings().tz, g.staff.email,
                                        request.form.get("note", "").strip())
        record("maintenance-add", f"{site.name}: {maintenance.describe(window, settings().tz)}"[:200])
        commit_or_explain(db.session)
    except InputError as exc:
        db.session.rollback()
        return render_template("staff/error.html", message=said(exc)), 400
    return redirect(url_for("staff.manage.site_edit", site_id=site_id))


@bp.post("/maintenance/<int:window_id>/remove")
@role("admin")
def remove_maintenance(window_id: int) -> Response:
    """Remove a maintenance window."""
    window = db.session.get(MaintenanceWindow, window_id) or abort(404)
    site_id = window.site_id
    record("maintenance-remove", maintenance.describe(window, settings().tz)[:200])
    db.session.delete(window)
    db.session.commit()
    return redirect(url_for("staff.manage.site_edit", site_id=site_id))


def windows_of(site_id: int) -> list[MaintenanceWindow]:
    """A site's current and future windows (for the site page)."""
    return maintenance.site_windows(db.session, site_id, now().replace(tzinfo=None))
