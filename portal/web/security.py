"""Security by default: headers, Origin check, request size limits and rate limits."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request, session
from flask_limiter.util import get_remote_address

from portal.core.redisconn import SENTINEL_SCHEME, parse_sentinel_url
from portal.core.settings import Settings
from portal.web.extensions import limiter, redis_url

MAX_QUERY = 4096
CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
       "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'")

def ip_limit() -> str:
    """The per-address limit from settings (generous: a NAS may NAT a whole park)."""
    return current_app.config["CONECTA"].portal_ip_limit


def mac_key() -> str:
    """Rate-limit key: the client MAC the access point reported (else the address)."""
    arrival = session.get("arrival") or {}
    return f"mac:{arrival.get('mac') or get_remote_address()}"


def account_key() -> str:
    """Rate-limit key for PIN guessing: the account asked for, whichever device or address asks."""
    return "account:" + request.form.get("username", "").strip().lower()[:64]


def failed(response: Response) -> bool:
    """Count only refused logins against an account (a person may sign in on several devices)."""
    return response.status_code == 400


def init_app(app: Flask, settings: Settings) -> None:
    """Attach the limiter (on Redis) and the request/response checks."""
    uri, options = _limiter_storage(redis_url(settings))
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_HEADERS_ENABLED"] = False   # they cost two Redis commands per request
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 1, "socket_timeout": 1, **options}
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True   # Redis down: serve citizens, don't 500
    limiter.init_app(app)
    app.before_request(_check_request)
    app.after_request(_headers)


def _limiter_storage(url: str) -> tuple[str, dict]:
    """The limits library's storage URI and options: its Sentinel URI names no database (the path is
    the master's name alone), so Conecta's `redis+sentinel://…/NAME/DB` passes the DB as an option."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return url, {}
    spec = parse_sentinel_url(url)
    hosts = ",".join(f"{host}:{port}" for host, port in spec.sentinels)
    return f"{SENTINEL_SCHEME}://{hosts}/{spec.service}", {"db": spec.db, "password": spec.password}


def _check_request() -> None:
    if len(request.query_string) > MAX_QUERY:
        abort(414)
    if request.method == "POST":
        # Our pages send Referrer-Policy: same-origin, so browsers put our own origin on our POSTs;
        # "null" comes from sandboxed frames, data: URLs or pages that hide their origin: refused too.
        # No Origin and no Referer (old browsers): the CSRF token alone decides.
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        try:
            foreign = bool(origin) and (origin == "null" or urlsplit(origin).netloc != request.host)
        except ValueError:  # not even a URL
            foreign = True
        if foreign:
            current_app.logger.warning("POST refused: foreign Origin on %s", request.path)
            abort(400)


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin: our URLs (they carry the access point's parameters) never reach another site,
    # and our own POSTs carry our Origin for the check above (no-referrer would make it "null").
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Permissions-Policy"] = "geolocation=(), camera=(), microphone=()"
    if request.path != "/capport":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
