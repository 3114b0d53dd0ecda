"""The staff console under /staff: one blueprint whose parts are blueprints of their own, registered
here: access (sign-in, roles, audit), board (the network now, sessions, faults, audit log), manage
(sites, NAS, people, policies), reports, health (availability, alerts, the node list) and identity
(the city's names, privacy notice and logo)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadRequest, NotFound

from portal.core.errors import InputError
from portal.web.filters import said
from portal.web.staff import access, alerts, board, health, identity, manage, reports

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(access.load_staff)
for _part in (access, board, manage, reports, health, alerts, identity):
    bp.register_blueprint(_part.bp)


@bp.errorhandler(InputError)
def bad_input(exc: InputError) -> tuple[str, int]:
    """A bad filter or form value anywhere in the console: the reason in the reader's language, on a
    staff page (never the citizens' error page, never a 500)."""
    return render_template("staff/error.html", message=said(exc)), 400


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> tuple[str, int]:
    """A malformed request to the console (a forged or expired form): a staff page that says so."""
    if isinstance(exc, CSRFError):
        return render_template("staff/error.html", message=_("La página caducó. Vuelve a intentarlo.")), 400
    return render_template("staff/error.html", message=_("La solicitud no es válida.")), 400


@bp.errorhandler(NotFound)
def not_found(_exc: NotFound) -> tuple[str, int]:
    """A site, access point or session that does not exist (any more), on a staff page."""
    return render_template("staff/error.html", message=_("Eso no existe (o ya se quitó).")), 404
