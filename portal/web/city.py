"""The city's identity on every page (`city` in the templates) and its logo, served as the PNG it was
re-encoded to when it was set: a content type of our own, no sniffing, no script, cached by its digest."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, abort, current_app
from sqlalchemy.exc import SQLAlchemyError

from portal.core import identity
from portal.web.cache import expiring
from portal.web.extensions import db, limiter

bp = Blueprint("city", __name__)
log = logging.getLogger("conecta.portal")


@expiring(10.0)   # every page shows it; a change made in the console or the CLI shows within 10 s
def current() -> identity.Identity:
    """The identity as stored; the defaults while the database is away (an error page still renders)."""
    try:
        return identity.load(db.session)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("city identity unreadable, defaults shown: %s", type(exc).__name__)
        return identity.Identity()


def forget() -> None:
    """Drop this process's cached identity and the pages rendered with it (after the console changed it:
    shown at once, not within 10 s). Changes are rare: the whole small cache goes."""
    current_app.extensions.get("conecta_cache", {}).clear()


def init_app(app: Flask) -> None:
    """Give every template `city`, read when a template asks for it."""
    app.context_processor(lambda: {"city": current()})


@bp.get("/logo/<digest>.png")
@limiter.exempt
def logo(digest: str) -> Response:
    """The logo whose sha256 is `digest` (a new logo has a new URL, so it may be cached for a year)."""
    row = identity.logo(db.session)
    if row is None or row.digest != digest:
        abort(404)
    response = Response(row.data, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Content-Disposition"] = 'inline; filename="logo.png"'
    return response
