"""The citizen portal over Flask's test client: arrival links as each access point builds them, the
registration form, the hand-off page, and what lands in Redis and SQL."""

from __future__ import annotations

import http.client
import json
import os
import re
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import func, select

from portal.core.model import User
from tests.support.chilli import chilli_url
from tests.support.mikrotik import octal
from tests.support.nassim import COOVA_NAS, COOVA_UAM_SECRET
from tests.support.web import csrf_token, page

PORTAL = "http://localhost/"            # the test client's own URL
MAC = "AA-BB-CC-00-00-01"
MAC_NORM = "aa:bb:cc:00:00:01"


def coova_url(mac: str = MAC, userurl: str = "http://example.org/noticias", challenge: str | None = None,
              res: str = "notyet", secret: str | None = COOVA_UAM_SECRET, uamip: str = "10.1.0.1",
              uamport: str = "3990", nasid: str = COOVA_NAS, drop: tuple = (), extra: tuple = ()) -> str:
    """A CoovaChilli redirect to the portal, signed with `secret` (None: unsigned); `drop` leaves params out."""
    params = [("res", res), ("uamip", uamip), ("uamport", uamport),
              ("challenge", challenge or os.urandom(16).hex()), ("called", "00-11-22-33-44-55"), ("mac", mac),
              ("ip", "10.1.0.77"), ("nasid", nasid), ("sessionid", "5f3a8c1200000001"), ("userurl", userurl),
              *extra]
    return chilli_url(PORTAL, [p for p in params if p[0] not in drop], secret)


def mikrotik_url(login: str = "http://10.5.50.1/login", mac: str = "AA:BB:CC:00:00:02", dst: str = "http://example.org/",
                 chap_id: bytes = b"\xa7", challenge: bytes = bytes(range(16)), **extra) -> str:
    """A MikroTik hotspot redirect to the portal (login.html's parameters, CHAP values in octal)."""
    params = {"mac": mac, "ip": "10.5.50.7", "link-login-only": login, "link-orig": dst,
              "chap-id": octal(chap_id), "chap-challenge": octal(challenge), **extra}
    return PORTAL + "?" + urlencode(params)


def register(client, html: str, gender: str = "female", age_band: str = "18-29", community: str | None = None,
             terms: bool = True, privacy: bool = True, guardian: bool = False, headers: dict | None = None,
             **environ):
    """Post the registration form of `html` (its CSRF token) with these answers; `environ` as the client's."""
    form = {"csrf_token": csrf_token(html), "gender": gender, "age_band": age_band}
    if community is not None:
        form["community"] = community
    for name, on in (("terms", terms), ("privacy", privacy), ("guardian", guardian)):
        if on:
            form[name] = "yes"
    return client.post("/register", data=form, headers=headers or {}, environ_base=environ)


def arrive_and_register(client, url: str, **kw):
    """Follow an access point's redirect to the portal and register there."""
    resp = client.get(url)
    assert resp.status_code == 200, page(resp)[:500]
    return register(client, page(resp), **kw)


def chilli_logon(client, coova, userurl: str | None = None) -> tuple[int, dict[str, str], str]:
    """Through the CoovaChilli simulator: its redirect to the portal, registration (or one tap for a
    remembered device), then the browser at the access point's /logon; return the access point's answer."""
    html = page(client.get(coova.portal_redirect("notyet", coova.origin() if userurl is None else userurl)))
    if 'action="/register"' in html:
        resp = register(client, html)
    else:
        resp = client.post("/connect", data={"csrf_token": csrf_token(html)})
    assert resp.status_code == 302, page(resp)[:500]
    return fetch("GET", resp.headers["Location"])


def handoff_form(html: str) -> tuple[str, dict[str, str]]:
    """The hand-off page's form: its action and hidden fields."""
    action = re.search(r'<form id="handoff" method="post" action="([^"]*)"', html)
    assert action, html[:800]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return unescape(action.group(1)), {k: unescape(v) for k, v in fields.items()}


def otc(redis_client, username: str) -> dict:
    """The one-time credential stored in Redis under `username`."""
    raw = redis_client.get("otc:" + username)
    assert raw, f"no one-time credential {username}"
    return json.loads(raw)


def fetch(method: str, url: str, body: dict | None = None) -> tuple[int, dict[str, str], str]:
    """One request, redirects not followed (what the browser would do next is the test's business)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    data = urlencode(body) if body is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read().decode()
    conn.close()
    return out


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a URL (first values; blank ones kept)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def back_to_portal(url: str) -> str:
    """Where a simulator sends the browser: it must be the portal (the test client's own URL)."""
    assert url.startswith(PORTAL), url
    return url


def users(db_factory) -> int:
    """How many people are registered."""
    with db_factory() as db:
        return db.scalar(select(func.count()).select_from(User))


def meters(html: str) -> list[str]:
    """The time and data left, as the status page shows them."""
    return re.findall(r'<dd class="meter">([^<]+)</dd>', html)
