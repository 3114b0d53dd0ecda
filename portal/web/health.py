"""/healthz (liveness with database and Redis checks) and /metrics (Prometheus text format)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from portal.core.model import Nas, Session
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


@bp.get("/metrics")
def metrics() -> Response:
    """Sessions open and NAS known, for Prometheus."""
    open_sessions = db.session.scalar(select(func.count()).select_from(Session).where(Session.is_open.is_(True)))
    nas = db.session.scalar(select(func.count()).select_from(Nas))
    body = (f"# TYPE conecta_sessions_open gauge\nconecta_sessions_open {open_sessions}\n"
            f"# TYPE conecta_nas gauge\nconecta_nas {nas}\n")
    return Response(body, mimetype="text/plain; version=0.0.4")
