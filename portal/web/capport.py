"""RFC 8908 Captive Portal API: the phone's OS learns whether it is captive and what is left.

Two ways to find the client's session: `/capport` by the address the request comes from (a routed
access point: the client's own Framed-IP), and `/capport/<token>` for clients behind the access
point's NAT, where every client comes from the AP's address. The token is what CoovaChilli 1.9
writes per client into DHCP option 114 from `captiveportalapi_uri=https://PORTAL/capport/%{s}-%{M}`:
its Acct-Session-Id and the client's MAC.

Besides the RFC's keys (clients ignore keys they do not know), a session in the slow lane says so:
"conecta-slow-lane": true and "conecta-full-speed-at", when the normal rates come back (ISO 8601 with
the city's UTC offset).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, url_for
from sqlalchemy import select

from portal.core.macs import normalize_mac
from portal.core.model import Session, User
from portal.web.extensions import db, limiter
from portal.web.security import ip_limit
from portal.web.standing import standing_of

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


def _answer(session: Session | None) -> Response:
    """application/captive+json with seconds-remaining and bytes-remaining for an open session."""
    body: dict = {"captive": True, "user-portal-url": url_for("splash.index", _external=True, _scheme="https"),
                  "venue-info-url": url_for("status.index", _external=True, _scheme="https")}
    user = db.session.get(User, session.user_id) if session and session.is_open and session.user_id else None
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


@bp.get("/capport")
def capport() -> Response:
    """The session whose Framed-IP is the address this request comes from (routed access points)."""
    return _answer(db.session.scalars(select(Session).where(Session.is_open.is_(True),
                                                            Session.framed_ip == request.remote_addr)
                                      .order_by(Session.updated_at.desc()).limit(1)).first())


def session_by_token(token: str) -> Session | None:
    """The session a `<Acct-Session-Id>-<MAC>` token names. The DHCP lease keeps its token after a
    logout, while the next login gets a new id: then that device's open session on the same NAS."""
    sid, _, mac_text = token.rpartition("-")
    mac = normalize_mac(mac_text)
    if not sid or len(sid) > 64 or mac is None:
        return None
    named = db.session.scalars(select(Session).where(Session.acct_session_id == sid, Session.mac == mac)
                               .order_by(Session.generation.desc()).limit(1)).first()
    if named is None or named.is_open or named.user_id is None:
        return named
    return db.session.scalars(select(Session).where(Session.is_open.is_(True), Session.user_id == named.user_id,
                                                    Session.nas_id == named.nas_id, Session.mac == mac)
                              .order_by(Session.updated_at.desc()).limit(1)).first()


@bp.get("/capport/<token>")
@limiter.limit(ip_limit)
def capport_client(token: str) -> Response:
    """The session named by the per-client API URI a CoovaChilli hands out (clients behind its NAT)."""
    return _answer(session_by_token(token))
