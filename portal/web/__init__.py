"""The web portal: create_app(settings, clock) with one blueprint per module (staff/ is a package)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, render_template, request
from flask.logging import default_handler
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from policies.messages import N_
from portal.core.settings import Settings, load_settings
from portal.web import (
    api,
    capport,
    city,
    estado,
    extensions,
    filters,
    health,
    opennds,
    security,
    splash,
    staff,
    status,
    telemetry,
)

# The top-level templates/ sits beside portal/ in a checkout and in site-packages alike (the wheel
# installs it there), so one path serves both.
ROOT = Path(__file__).resolve().parent.parent.parent
LANGUAGES = ("es", "en")


def select_locale() -> str:
    """?lang= (remembered in a cookie), then the cookie, then Accept-Language; Spanish by default."""
    chosen = request.args.get("lang") or request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="es") or "es"


def local_time(when: datetime | None, tz: ZoneInfo) -> str:
    """A stored (naive UTC) time as the city's clock shows it: '2026-11-26 18:05'."""
    if when is None:
        return "—"
    return when.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def create_app(settings: Settings | None = None, clock: Callable[[], datetime] | None = None) -> Flask:
    """Build the Flask app for `settings` (read from the environment when not given).

    `clock` returns aware UTC; the default is the real time.
    """
    settings = settings or load_settings()
    app = Flask("conecta", template_folder=str(ROOT / "templates"),
                static_folder=str(Path(__file__).resolve().parent / "static"), static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # As many pooled connections as gunicorn threads, so no request waits for or opens one.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "pool_size": 8, "max_overflow": 4},
        MAX_CONTENT_LENGTH=16 * 1024,           # the largest form is a fault report
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        SESSION_COOKIE_NAME="conecta",
        SESSION_COOKIE_SAMESITE="Lax",          # Lax: the NAS redirect is a top-level GET
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.production,
        PERMANENT_SESSION_LIFETIME=timedelta(days=365),   # the remembered device
        WTF_CSRF_TIME_LIMIT=3600,
        SEND_FILE_MAX_AGE_DEFAULT=timedelta(days=1),   # the stylesheet once a day on a 2G link, not per page
        WTF_CSRF_SSL_STRICT=False,              # checked by our own Origin check instead
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "portal" / "translations"),
        BABEL_DEFAULT_LOCALE="es",
        CONECTA=settings,
    )
    # Flask's own handler formats without escaping: the portal logs through the root logger's
    # (portal/core/logs.py), so no request path or header can forge a line.
    app.logger.removeHandler(default_handler)
    extensions.init_app(app, settings, clock)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(get_locale=get_locale, tz_name=settings.timezone)
    app.jinja_env.filters["local"] = lambda when: local_time(when, settings.tz)
    app.jinja_env.filters["word"] = filters.word
    app.jinja_env.globals["column"] = filters.column
    security.init_app(app, settings)
    telemetry.init_app(app)
    city.init_app(app)
    for module in (health, splash, status, capport, staff, api, estado, opennds, city):
        app.register_blueprint(module.bp)
    _error_pages(app)
    return app


def _error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc: CSRFError):  # noqa: ANN202
        return render_template("error.html", message=_("La página caducó. Vuelve a intentarlo.")), 400

    for code, text in ((400, N_("La solicitud no es válida.")), (404, N_("Esta página no existe.")),
                       (405, N_("Esta acción no está permitida.")),
                       (413, N_("Lo que enviaste es demasiado grande.")),
                       (414, N_("La dirección es demasiado larga.")),
                       (429, N_("Demasiados intentos. Espera un minuto y vuelve a intentarlo.")),
                       (500, N_("Algo falló de nuestro lado. Vuelve a intentarlo en un momento."))):
        app.register_error_handler(code, _handler(code, text))


def _handler(code: int, text: str):  # noqa: ANN202
    def handle(_exc: Exception):  # noqa: ANN202
        return render_template("error.html", message=_(text)), code
    return handle
