"""Staff sign-in and out, the signed-in member of each request, roles and the audit of actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.core import staffauth
from portal.core.model import Staff
from portal.web.extensions import db, redis_client, settings

bp = Blueprint("access", __name__)
COOKIE = "conecta_staff"


def signed_in() -> Staff | None:
    """The staff member behind this request's cookie, if their session is live on the server."""
    staff = staffauth.current(db.session, request.cookies.get(COOKIE))
    db.session.commit()   # the session's last-seen time
    return staff


def load_staff() -> None:
    """Find the signed-in staff member for this request (server-side session)."""
    g.staff = signed_in()


def role(*roles: str) -> Callable:
    """Require a signed-in staff member with one of `roles`; refusals are audited."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):  # noqa: ANN202
            if g.staff is None:
                return redirect(url_for("staff.access.login"))
            if g.staff.role not in roles:
                staffauth.audit(db.session, g.staff.email, request.endpoint or "?", request.path, "forbidden",
                                request.remote_addr or "")
                db.session.commit()
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def record(action: str, target: str, outcome: str = "ok") -> None:
    """Audit a staff action (committed with the action)."""
    staffauth.audit(db.session, g.staff.email, action, target, outcome, request.remote_addr or "")


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
    response = redirect(url_for("staff.board.dashboard"))
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=settings().production)
    return response


@bp.post("/logout")
def logout() -> Response:
    """Sign out: the session is deleted on the server, so the old cookie stops working."""
    if g.staff is not None:
        record("sign-out", "")
    staffauth.sign_out(db.session, request.cookies.get(COOKIE))
    db.session.commit()
    response = redirect(url_for("staff.access.login"))
    response.delete_cookie(COOKIE, path="/")
    return response
