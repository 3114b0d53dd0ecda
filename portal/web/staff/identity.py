"""Staff console: the city's identity (names, SSID, contact, privacy notice fields, logo), admins only."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.core import identity
from portal.core.db import commit_or_explain
from portal.core.errors import InputError
from portal.core.identity import IdentityError
from portal.web import city
from portal.web.extensions import db, now, settings
from portal.web.staff.access import record, role

bp = Blueprint("identity", __name__)


def _said(exc: InputError) -> str:
    """The error in the staff member's language (field names and units translated too)."""
    if not isinstance(exc, IdentityError):
        return str(exc)
    params = {k: _(v) if k in ("field", "unit") else v for k, v in exc.params.items()}
    return _(exc.msgid, **params)


def _page(error: str | None = None, saved: str | None = None, form: dict | None = None) -> tuple[str, int]:
    ident = identity.load(db.session)
    values = form if form is not None else {f.key: getattr(ident, f.key) for f in identity.FIELDS}
    return render_template("staff/identity.html", ident=ident, fields=identity.FIELDS, values=values,
                           error=error, saved=saved, max_kb=identity.LOGO_MAX_BYTES // 1024,
                           side=identity.LOGO_MAX_SIDE), 400 if error else 200


@bp.route("/identity", methods=["GET", "POST"])
@role("admin")
def identity_page() -> tuple[str, int]:
    """Show and change the identity; a change in what the privacy notice says publishes a new version."""
    if request.method == "GET":
        too_big = _("Lo que enviaste es demasiado grande: el logotipo puede pesar hasta %(kb)d KB y cada dato "
                    "unos cientos de caracteres.", kb=identity.LOGO_MAX_BYTES // 1024)
        return _page(too_big if request.args.get("too_big") else None, saved=request.args.get("saved"))
    form = {f.key: request.form.get(f.key, "")[:2000] for f in identity.FIELDS}
    try:
        changed = identity.update(db.session, form, now().astimezone(settings().tz))
        record("identity-set", ", ".join(changed) or "no change")
        commit_or_explain(db.session)
        city.forget()
    except InputError as exc:
        db.session.rollback()
        return _page(_said(exc), form=form)
    return redirect(url_for("staff.identity.identity_page", saved="1"))


@bp.errorhandler(413)
def too_large(_exc: Exception) -> Response:
    """A body past the limit (extensions.UPLOADS) is refused before the page runs: back to the page,
    which says so in the staff member's language (and checks the role as always)."""
    return redirect(url_for("staff.identity.identity_page", too_big=1), 303)


@bp.post("/identity/logo")
@role("admin")
def logo() -> Response | tuple[str, int]:
    """Set the logo from an upload (checked and re-encoded), or remove it."""
    try:
        if request.form.get("remove") == "yes":
            identity.remove_logo(db.session)
            record("logo-remove", "logo")
        else:
            upload = request.files.get("logo")
            data = upload.read(identity.LOGO_MAX_BYTES + 1) if upload else b""
            row = identity.set_logo(db.session, data, now())
            record("logo-set", f"{row.width}x{row.height}")
        commit_or_explain(db.session)
        city.forget()
    except InputError as exc:
        db.session.rollback()
        return _page(_said(exc))
    return redirect(url_for("staff.identity.identity_page", saved="1"))
