"""The web app's shared services, each created once per app: database, CSRF, rate limiter, Redis,
policies, the clock and the Disconnect-Request sender. Pages reach them through these functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis
from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine

from policies import Policy, load_policies
from portal.core.coa import Disconnector
from portal.core.db import make_engine, session_factory
from portal.core.model import Base
from portal.core.radiusdict import dictionary
from portal.core.redisconn import connect, running_embedded_url
from portal.core.settings import Settings


class _Database(SQLAlchemy):
    """Flask-SQLAlchemy with Conecta's own engine factory, so web connections get the same SQLite
    pragmas and pool settings as the daemon's and the CLI's (flask-sqlalchemy 3.1's hook)."""

    def _make_engine(self, bind_key: str | None, options: dict[str, Any], app: Flask) -> Engine:
        options = dict(options)
        return make_engine(options.pop("url"), **options)


# Objects stay readable after commit, as in the daemon's and the CLI's sessions (core.db.session_factory):
# a page that commits and then uses what it wrote costs no second round trip to reload it.
db = _Database(model_class=Base, session_options={"expire_on_commit": False})
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, strategy="fixed-window")


def settings() -> Settings:
    """The app's settings."""
    return current_app.config["CONECTA"]


def redis_url(s: Settings) -> str:
    """The configured Redis, else the embedded one `conecta run` started, else memory (tests of one page)."""
    return s.redis_url or running_embedded_url(s.data_dir) or "memory://"


def init_app(app: Flask, s: Settings, clock: Callable[[], datetime] | None) -> None:
    """Attach the database and CSRF protection; note the clock (aware UTC) the pages use."""
    app.before_request(_upload_limit)   # before CSRFProtect's own hook, which reads the form first
    db.init_app(app)
    csrf.init_app(app)
    app.extensions["conecta_clock"] = clock or (lambda: datetime.now(timezone.utc))


# The console's identity forms may carry more than MAX_CONTENT_LENGTH: the logo, and text fields that the
# page itself refuses in words when too long (past these limits: 413, which that page turns into words).
UPLOADS = {"/staff/identity/logo": 256 * 1024, "/staff/identity": 64 * 1024}


def _upload_limit() -> None:
    """Let the identity forms carry more than any other form (the page itself checks sizes again)."""
    limit = UPLOADS.get(request.path)
    if limit is not None and request.method == "POST":
        request.max_content_length = limit
        request.max_form_memory_size = limit


def now() -> datetime:
    """The app's clock: aware UTC (tests move it together with the RADIUS server's)."""
    return current_app.extensions["conecta_clock"]()


def redis_client() -> redis.Redis:
    """The app's Redis client, created once per process."""
    client = current_app.extensions.get("conecta_redis")
    if client is None:
        client = current_app.extensions["conecta_redis"] = connect(redis_url(settings()))
    return client


def policies() -> dict[str, Policy]:
    """Policies, loaded once per process."""
    loaded = current_app.extensions.get("conecta_policies")
    if loaded is None:
        loaded = current_app.extensions["conecta_policies"] = load_policies(settings().policy_dir)
    return loaded


def disconnector() -> Disconnector:
    """The Disconnect-Request sender of this process: staff requests return at once, the outcome
    is written to the `disconnects` row when it arrives."""
    sender = current_app.extensions.get("conecta_disconnector")
    if sender is None:
        sender = Disconnector(session_factory(db.engine), dictionary(), workers=2)
        current_app.extensions["conecta_disconnector"] = sender
    return sender
