"""The staff console: sign-in, roles, the network now, node board, live sessions and fault reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal import console, staffauth
from portal.model import FAULT_STATUSES, FaultReport, Nas, Session, Site, utcnow
from portal.web import db
from portal.web.splash import redis_client
from portal.web.status import policies

bp = Blueprint("staff", __name__, url_prefix="/staff")
COOKIE = "conecta_staff"


@bp.before_request
def load_staff() -> None:
    """Find the signed-in staff member for this request (server-side session)."""
    g.staff = staffauth.current(db.session, request.cookies.get(COOKIE))
    db.session.commit()


def role(*roles: str) -> Callable:
    """Require a signed-in staff member with one of `roles`; refusals are audited."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):  # noqa: ANN202
            if g.staff is None:
                return redirect(url_for("staff.login"))
            if g.staff.role not in roles:
                staffauth.audit(db.session, g.staff.email, request.endpoint or "?", request.path, "forbidden",
                                request.remote_addr or "")
                db.session.commit()
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def record(action: str, target: str) -> None:
    """Audit a successful staff action (committed with the action)."""
    staffauth.audit(db.session, g.staff.email, action, target, "ok", request.remote_addr or "")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """Sign in with e-mail and password; one generic error whatever went wrong."""
    if request.method == "GET":
        return render_template("staff/login.html")
    token, wait = staffauth.sign_in(db.session, redis_client(), request.form.get("email", ""),
                                    request.form.get("password", ""), request.remote_addr or "")
    db.session.commit()
    if token is None:
        message = _("Correo o contraseña incorrectos.")
        if wait:
            message = _("Demasiados intentos. Espera %(s)d segundos.", s=wait)
        return render_template("staff/login.html", error=message), 401 if not wait else 429
    response = redirect(url_for("staff.dashboard"))
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=current_app.config["CONECTA"].production)
    return response


@bp.post("/logout")
def logout() -> Response:
    """Sign out: the session is deleted on the server, so the old cookie stops working."""
    if g.staff is not None:
        record("sign-out", "")
    staffauth.sign_out(db.session, request.cookies.get(COOKIE))
    db.session.commit()
    response = redirect(url_for("staff.login"))
    response.delete_cookie(COOKIE, path="/")
    return response


def _nodes() -> list[console.Node]:
    settings = current_app.config["CONECTA"]
    interim_of = {name: p.interim_interval for name, p in policies().items()}
    return console.node_board(db.session, redis_client(), interim_of, settings.node_down_after, utcnow())


@bp.get("/")
@role("admin", "analyst")
def dashboard() -> str:
    """People online now, today's sessions and data, and the node board."""
    today = datetime.now(current_app.config["CONECTA"].tz).date()
    nodes = _nodes()
    return render_template("staff/dashboard.html", stats=console.overview(db.session, today), nodes=nodes,
                           down=sum(not n.up for n in nodes))


@bp.get("/sessions")
@role("admin")
def sessions() -> str:
    """Live sessions, newest first, with a disconnect button."""
    rows = db.session.execute(select(Session, Nas.name).join(Nas, Nas.id == Session.nas_id)
                              .where(Session.is_open.is_(True)).order_by(Session.updated_at.desc()).limit(500)).all()
    return render_template("staff/sessions.html", rows=rows)


@bp.post("/sessions/<int:session_id>/disconnect")
@role("admin")
def disconnect(session_id: int) -> Response:
    """Send a Disconnect-Request (RFC 5176) for one live session and record the outcome."""
    from pyrad.dictionary import Dictionary

    from portal.model import Disconnect
    from radius import DICTIONARY
    from radius.coa import send_disconnect
    s = db.session.get(Session, session_id)
    nas = db.session.get(Nas, s.nas_id) if s else None
    if s is None or nas is None:
        abort(404)
    attrs = {"User-Name": s.username, "Acct-Session-Id": s.acct_session_id,
             "Calling-Station-Id": s.mac.replace(":", "-").upper() if s.mac else None}
    result, attempts = send_disconnect(nas.ip, nas.coa_port, nas.secret.encode(), Dictionary(str(DICTIONARY)),
                                       attrs, backoff=(1.0, 2.0))
    db.session.add(Disconnect(session_id=s.id, nas_id=nas.id, reason="staff", attempts=attempts, result=result,
                              finished_at=utcnow()))
    record("disconnect", f"session {s.id} on {nas.name}: {result}")
    db.session.commit()
    return redirect(url_for("staff.sessions"))


@bp.get("/faults")
@role("admin", "analyst")
def faults() -> str:
    """Fault reports, filtered by site and status, newest first."""
    status = request.args.get("status", "")
    site = request.args.get("site", "")
    query = select(FaultReport, Site.name).join(Site, Site.id == FaultReport.site_id)
    if status in FAULT_STATUSES:
        query = query.where(FaultReport.status == status)
    if site.isdigit():
        query = query.where(FaultReport.site_id == int(site))
    rows = db.session.execute(query.order_by(FaultReport.created_at.desc()).limit(500)).all()
    sites = db.session.execute(select(Site.id, Site.name).order_by(Site.name)).all()
    return render_template("staff/faults.html", rows=rows, statuses=FAULT_STATUSES, status=status, sites=sites,
                           site=int(site) if site.isdigit() else None)


@bp.post("/faults/<int:fault_id>")
@role("admin")
def update_fault(fault_id: int) -> Response:
    """Change a report's status and notes."""
    fault = db.session.get(FaultReport, fault_id) or abort(404)
    status = request.form.get("status", "")
    notes = request.form.get("notes", "")
    if status not in FAULT_STATUSES or len(notes) > 2000:
        abort(400)
    fault.status, fault.notes, fault.updated_at = status, notes, utcnow()
    record("fault", f"{fault_id} -> {status}")
    db.session.commit()
    return redirect(url_for("staff.faults"))


@bp.get("/audit")
@role("admin")
def audit() -> str:
    """The audit log, newest first."""
    from portal.model import AuditEntry
    rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(500)).all()
    return render_template("staff/audit.html", rows=rows)
