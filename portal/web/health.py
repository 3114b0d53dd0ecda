"""/healthz (liveness with database and Redis checks) and /metrics (Prometheus text format)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from portal.core.model import CoaRequest, Disconnect, Nas, Session
from portal.web.extensions import db, redis_url, settings

bp = Blueprint("health", __name__)


def _redis_ok() -> bool:
    url = redis_url(settings())
    if url == "memory://":
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database and Redis answer, 503 otherwise."""
    checks = {"database": True, "redis": _redis_ok()}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not healthy
        checks["database"] = False
    ok = all(checks.values())
    return jsonify(status="ok" if ok else "degraded", **checks), 200 if ok else 503


def _outcomes(name: str, help_text: str, rows: list[tuple[dict[str, str], int]]) -> str:
    """A Prometheus counter with one line per label set (the labels are codes we wrote, never input)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for labels, n in rows:
        pairs = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{pairs}}} {n}")
    return "\n".join(lines) + "\n"


@bp.get("/metrics")
def metrics() -> Response:
    """Sessions open (and in the slow lane), NAS known, and RFC 5176 requests by outcome, for Prometheus."""
    open_sessions = db.session.scalar(select(func.count()).select_from(Session).where(Session.is_open.is_(True)))
    slow = db.session.scalar(select(func.count()).select_from(Session).where(
        Session.is_open.is_(True), Session.slow_since.is_not(None)))
    nas = db.session.scalar(select(func.count()).select_from(Nas))
    coa = db.session.execute(select(CoaRequest.action, CoaRequest.result, func.count())
                             .group_by(CoaRequest.action, CoaRequest.result).order_by(CoaRequest.action,
                                                                                    CoaRequest.result)).all()
    cut = db.session.execute(select(Disconnect.result, func.count()).group_by(Disconnect.result)
                             .order_by(Disconnect.result)).all()
    body = (f"# TYPE conecta_sessions_open gauge\nconecta_sessions_open {open_sessions}\n"
            f"# TYPE conecta_sessions_slow_lane gauge\nconecta_sessions_slow_lane {slow}\n"
            f"# TYPE conecta_nas gauge\nconecta_nas {nas}\n"
            + _outcomes("conecta_coa_requests_total", "CoA-Requests recorded (slow lane and back), by outcome",
                        [({"action": a, "result": r}, n) for a, r, n in coa])
            + _outcomes("conecta_disconnect_requests_total", "Disconnect-Requests recorded, by outcome",
                        [({"result": r}, n) for r, n in cut]))
    return Response(body, mimetype="text/plain; version=0.0.4")
