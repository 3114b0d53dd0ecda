"""RFC 8908 Captive Portal API: the phone's OS learns whether it is captive and what is left.

Besides the RFC's keys (clients ignore keys they do not know), a session in the slow lane says so:
"conecta-slow-lane": true and "conecta-full-speed-at", when the normal rates come back (ISO 8601 with
the city's UTC offset).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, url_for
from sqlalchemy import select

from portal.core.model import Session, User
from portal.web.extensions import db
from portal.web.status import standing_of

bp = Blueprint("capport", __name__)


def _seconds_left(standing, session: Session) -> int | None:  # noqa: ANN001
    """Until this session ends: the decision for a new session (day, month, closing time), and the
    longest single session less the time this one has already run."""
    left = standing.decision.session_timeout
    cap = standing.policy.limits.session_time
    if cap is not None:
        in_session = max(0, cap - (session.seconds or 0))
        left = in_session if left is None else min(left, in_session)
    return left


@bp.get("/capport")
def capport() -> Response:
    """application/captive+json with seconds-remaining and bytes-remaining for the client's session."""
    body: dict = {"captive": True, "user-portal-url": url_for("splash.index", _external=True, _scheme="https"),
                  "venue-info-url": url_for("status.index", _external=True, _scheme="https")}
    session = db.session.scalars(select(Session).where(Session.is_open.is_(True),
                                                       Session.framed_ip == request.remote_addr)
                                 .order_by(Session.updated_at.desc()).limit(1)).first()
    user = db.session.get(User, session.user_id) if session and session.user_id else None
    if user is not None:
        standing = standing_of(user, session.site_id)
        if standing is not None and standing.decision.accept:
            body["captive"] = False
            body["can-extend-session"] = True
            seconds = _seconds_left(standing, session)
            if seconds is not None:
                body["seconds-remaining"] = seconds
            if standing.decision.data_left is not None:   # a throttled pool never makes the client captive
                body["bytes-remaining"] = standing.decision.data_left
            if standing.decision.slow_until is not None:
                body["conecta-slow-lane"] = True
                body["conecta-full-speed-at"] = standing.decision.slow_until.isoformat()
    response = Response(json.dumps(body), mimetype="application/captive+json")
    response.headers["Cache-Control"] = "private, no-store"
    return response
