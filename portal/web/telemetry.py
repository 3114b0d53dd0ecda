"""The portal's Prometheus counters, taken from each response (the pages themselves stay as they are):
registrations, sign-ins and refusals. /metrics itself lives in health.py."""

from __future__ import annotations

from flask import Flask, Response, request

from portal.core.metrics import m

# (method, path) -> what a response below 400 means; 400 and up count as a refusal of that kind.
COUNTED = {("POST", "/register"): "registration", ("POST", "/login"): "login", ("POST", "/connect"): "device",
           ("GET", "/"): "arrival", ("POST", "/fault"): "fault-report"}


def init_app(app: Flask) -> None:
    """Count every response that matters."""
    app.after_request(_count)


def _count(response: Response) -> Response:
    kind = COUNTED.get((request.method, request.path))
    code = response.status_code
    if code == 429:
        m().refusals.labels("rate-limit").inc()
    elif kind is None:
        return response
    elif code >= 400:
        m().refusals.labels(kind).inc()
        if kind == "login":
            m().logins.labels("refused").inc()
    elif kind == "registration":
        m().registrations.inc()
    elif kind in ("login", "device"):
        m().logins.labels("account" if kind == "login" else "remembered-device").inc()
    return response
