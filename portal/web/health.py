"""/healthz (liveness with database and Redis checks) and /metrics (Prometheus, multiprocess)."""

from __future__ import annotations

import hmac

import redis
from flask import Blueprint, Response, jsonify, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from portal.core import metrics as metrics_core
from portal.core.model import Nas, Session
from portal.core.redisconn import connect
from portal.web.extensions import db, redis_url, settings

bp = Blueprint("health", __name__)


def _redis_ok() -> bool:
    url = redis_url(settings())
    if url == "memory://":
        return False
    try:
        return bool(connect(url).ping())
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
def metrics() -> Response | tuple[str, int]:
    """Every process's metrics (prometheus_client, multiprocess) and the database's gauges, for a peer on
    this machine (not through a proxy) or with `Authorization: Bearer CONECTA_METRICS_TOKEN`."""
    if not _may_scrape():
        return "forbidden\n", 403
    body, content_type = metrics_core.exposition(_database_gauges())
    return Response(body, content_type=content_type)


def _may_scrape() -> bool:
    token = settings().metrics_token
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    local = request.remote_addr in ("127.0.0.1", "::1")
    return local and "X-Forwarded-For" not in request.headers and "Forwarded" not in request.headers


def _database_gauges() -> CollectorRegistry:
    """Sessions open (and in the slow lane) and NAS registered, read from SQL at scrape time. (CoA- and
    Disconnect-Requests are counted by outcome where they are sent: portal/core/metrics.py.)"""
    open_sessions = db.session.scalar(select(func.count()).select_from(Session).where(Session.is_open.is_(True)))
    slow = db.session.scalar(select(func.count()).select_from(Session).where(
        Session.is_open.is_(True), Session.slow_since.is_not(None)))
    nas = db.session.scalar(select(func.count()).select_from(Nas))
    found = CollectorRegistry()
    found.register(_Fixed([GaugeMetricFamily("conecta_sessions_open", "Accounting sessions open", value=open_sessions),
                           GaugeMetricFamily("conecta_sessions_slow_lane", "Open sessions in the slow lane",
                                             value=slow),
                           GaugeMetricFamily("conecta_nas", "NAS registered", value=nas)]))
    return found


class _Fixed(Collector):
    """Metric families computed before the collection."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        """The families."""
        return iter(self.families)
