"""The web portal: create_app(settings) with one blueprint per page group."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from portal.model import Base
from portal.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent.parent
db = SQLAlchemy(model_class=Base)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app for `settings` (read from the environment when not given)."""
    settings = settings or load_settings()
    app = Flask("conecta", template_folder=str(ROOT / "templates"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.production,
        CONECTA=settings,
    )
    db.init_app(app)
    from portal.web import health
    app.register_blueprint(health.bp)
    return app
