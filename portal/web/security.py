"""Security by default: headers, Origin check, request size limits and rate limits."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import redis
from flask import Flask, Response, abort, current_app, request, session
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from redis.connection import parse_url

from portal.core import refusals
from portal.core.redisconn import SENTINEL_SCHEME, parse_sentinel_url
from portal.core.settings import Settings
from portal.web.extensions import limiter, now, redis_client, redis_url, settings

log = logging.getLogger("conecta.portal")

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
    app.config["RATELIMIT_ON_BREACH_CALLBACK"] = breached
    # Its own line for each refused request names the key (a username, a MAC, an address): ours instead.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    limiter.init_app(app)
    app.before_request(_check_request)
    app.after_request(_headers)
    app.after_request(count_refusal)


def breached(limit: RequestLimit) -> None:
    """Log a rate-limit breach once per limit, key and window: the limit and what it counts, never
    the key itself (a username, a MAC or an address) nor anything the request carried."""
    per = "account" if "/account:" in limit.key else "device" if "/mac:" in limit.key else "address"
    try:
        if refusals.first_breach(redis_client(), limit.key, int(limit.limit.get_expiry())):
            log.warning("rate limit %s per %s reached on %s %s; refused until the window ends", limit.limit, per,
                        request.method, request.path)
    except redis.RedisError as exc:
        log.warning("rate limit reached on %s (not recorded: %s)", request.path, type(exc).__name__)


def count_refusal(response: Response) -> Response:
    """Count refused citizen sign-ins (a wrong PIN, a rate limit) per local day, for the console."""
    reason = "limited" if response.status_code == 429 else "wrong" if response.status_code == 400 else None
    if reason and request.method == "POST" and (request.path, reason) in refusals.COUNTED:
        try:
            refusals.count(redis_client(), now().astimezone(settings().tz).date(), request.path, reason)
        except redis.RedisError as exc:
            log.warning("refusal not counted: %s", type(exc).__name__)
    return response


def _limiter_storage(url: str) -> tuple[str, dict]:
    """The limits library's storage URI and options: its Sentinel URI names no database (the path is
    the master's name alone), so Conecta's `redis+sentinel://…/NAME/DB` passes the DB as an option. The
    options are complete every time: the limiter is one object per process and keeps the options of an
    earlier app (a Sentinel one's db would point a later plain URL at another database)."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        plain = parse_url(url)
        return url, {"db": plain.get("db", 0), "password": plain.get("password")}
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
            current_app.logger.warning("POST refused: foreign Origin %r on %s", origin[:200], request.path)
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
