"""The citizen's own pages: what is left, log out, report a fault, my data, my account."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from portal.core import alerts, people, quota
from portal.core.arrival import allowed_destination
from portal.core.model import FAULT_CATEGORIES, FaultReport
from portal.web.estado import since_text
from portal.web.extensions import db, limiter, settings
from portal.web.security import ip_limit, mac_key
from portal.web.splash import current_arrival, current_person
from portal.web.standing import hours_of, standing_of

bp = Blueprint("status", __name__)


@bp.get("/status")
def index() -> str | Response:
    """Time and data left today and this month, the policy in words, and what to do next."""
    user = current_person()
    arrival = current_arrival()
    standing = standing_of(user, arrival.site_id if arrival else None) if user else None
    left = quota.left(standing.policy, standing.usage) if standing else None
    today = quota.today(left) if left else None
    known = alerts.site_down_since(db.session, arrival.site_id) if arrival else None
    # Just back from the access point: CoovaChilli's res=success, or the `onward` of a hand-off.
    back = bool(session.pop("online", False)) or request.args.get("back") == "1"
    online = back and arrival is not None
    # The page they asked for before the portal: a link, never a redirect (no open redirect), unless
    # its host is on CONECTA_REDIRECT_ALLOWLIST.
    onward = arrival.userurl if online and arrival.userurl else None
    if onward and allowed_destination(onward, settings().redirect_hosts):
        return redirect(onward)
    return render_template("status.html", person=user, arrival=arrival, standing=standing, left=left,
                           today=today, hours=hours_of(standing.policy) if standing else None,
                           categories=FAULT_CATEGORIES, sent=request.args.get("sent"),
                           known_since=since_text(known) if known else None, online=online,
                           onward=onward, onward_host=urlsplit(onward).hostname if onward else None)


@bp.post("/fault")
@limiter.limit(ip_limit)
@limiter.limit("5/minute", key_func=mac_key)
def fault() -> Response | tuple[str, int]:
    """Report a fault at the site the citizen is at (no personal data is stored with it)."""
    arrival = current_arrival()
    category, text = request.form.get("category", ""), request.form.get("text", "").strip()
    if arrival is None or category not in FAULT_CATEGORIES or len(text) > 1000:
        return render_template("error.html", message=_("No pudimos guardar tu reporte. Revisa los datos.")), 400
    db.session.add(FaultReport(site_id=arrival.site_id, nas_id=arrival.nas_id, category=category, text=text))
    db.session.commit()
    known = alerts.site_down_since(db.session, arrival.site_id) is not None   # "ya lo sabemos"
    return redirect(url_for("status.index", sent="known" if known else "1"))


@bp.get("/my-data")
def my_data() -> str:
    """Everything Conecta stores about this person."""
    user = current_person()
    return render_template("mydata.html", data=people.personal_data(db.session, user) if user else None)


@bp.post("/my-data/delete")
def delete_my_data() -> str:
    """Delete the person and their devices; only anonymous totals remain."""
    user = current_person()
    if user is not None:
        people.forget(db.session, user)
        db.session.commit()
    session.clear()
    return render_template("deleted.html")


@bp.post("/account")
@limiter.limit(ip_limit)
@limiter.limit("5/minute", key_func=mac_key)
def account() -> Response | tuple[str, int]:
    """Choose a username and PIN to use the same quota on another device."""
    user = current_person()
    if user is None:
        return redirect(url_for("status.index"))
    try:
        people.set_account(db.session, user, request.form.get("username", "").strip(), request.form.get("pin", ""))
    except people.AccountError as exc:
        db.session.rollback()
        message = {"username": _("El usuario debe tener de 1 a 64 letras o números."),
                   "pin": _("El PIN debe tener al menos 4 caracteres."),
                   "taken": _("Ese usuario ya existe; elige otro.")}[str(exc)]
        return render_template("error.html", message=message), 400
    db.session.commit()
    return redirect(url_for("status.my_data"))


@bp.get("/lang/<code>")
def language(code: str) -> Response:
    """Switch language and go back to a page of this site (no JavaScript needed)."""
    next_url = request.args.get("next", "/")
    # A plain path of this site only: no "//host", no backslash, no tab or newline (browsers drop
    # those, turning "/\t/evil.example" into "//evil.example"), no scheme: no open redirect.
    if not re.fullmatch(r"/(?![/\\])[A-Za-z0-9/_.~-]*", next_url):
        next_url = "/"
    response = redirect(next_url)
    if code in ("es", "en"):
        response.set_cookie("lang", code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response
