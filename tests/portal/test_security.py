"""What the portal refuses and how: size limits, CSRF tokens, foreign Origins, rate limits per MAC,
account and address, security headers and cookie flags, and log lines without personal data."""

from __future__ import annotations

import dataclasses
import logging
import re
from urllib.parse import parse_qs, urlsplit

from portal.web import create_app
from tests.support.portal import coova_url, fetch, mikrotik_url, register, users
from tests.support.web import csrf_token, page


def test_request_size_limits_give_4xx_never_500(client, db_factory):
    resp = client.get("/?" + "a=" + "x" * 65536)
    assert 400 <= resp.status_code < 500 and "Traceback" not in page(resp)
    assert client.get("/status?" + "q" * 65536).status_code == 414
    big = {"gender": "female", "text": "x" * 2_000_000}
    for path in ("/register", "/login", "/connect", "/fault", "/account", "/my-data/delete"):
        resp = client.post(path, data=big)
        assert resp.status_code == 413, path
        assert "demasiado grande" in page(resp)
    resp = client.post("/register", data=b"x" * 2_000_000, content_type="application/octet-stream")
    assert 400 <= resp.status_code < 500
    assert users(db_factory) == 0


def test_every_form_has_a_csrf_token_and_refuses_a_post_without_it(client, db_factory):
    forms: dict[str, str] = {}
    html = page(client.get(coova_url()))
    forms.update(re.findall(r'<form method="post" action="([^"]+)">\s*(<input type="hidden" name="csrf_token"[^>]*>)?',
                            html))
    register(client, html)
    for path in ("/", "/status", "/my-data"):
        forms.update(re.findall(r'<form method="post" action="([^"]+)">\s*(<input type="hidden" name="csrf_token"'
                                r'[^>]*>)?', page(client.get(path))))
    assert set(forms) == {"/register", "/login", "/connect", "/fault", "/account", "/my-data/delete"}
    assert all(forms.values()), forms
    for action in forms:
        resp = client.post(action, data={"gender": "female", "age_band": "18-29", "terms": "yes", "privacy": "yes",
                                         "category": "slow", "username": "ana", "pin": "1234"})
        assert resp.status_code == 400, action
        assert "La página caducó" in page(resp)
        resp = client.post(action, data={"csrf_token": "forged-token"})
        assert resp.status_code == 400, action
    assert users(db_factory) == 1                       # nothing deleted, nothing created


FOREIGN = [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/page"},
           {"Origin": "http://localhost.evil.example"}, {"Origin": "http://localhost:8080"}, {"Origin": "http://[::1"}]


def test_the_page_rendered_once_gives_every_visitor_a_token_of_their_own(app, db_factory):
    """The registration page is rendered once per language and reused: each visitor's page must still
    carry their own CSRF token, valid for their session only, and the language must follow the visitor."""
    first, second = app.test_client(), app.test_client()
    page_one = page(first.get(coova_url(mac="AA-BB-CC-00-00-0A")))
    page_two = page(second.get(coova_url(mac="AA-BB-CC-00-00-0B")))
    token_one, token_two = csrf_token(page_one), csrf_token(page_two)
    assert token_one != token_two and "@@" not in page_one + page_two
    assert page_one.count(token_one) == 2          # the registration form and the account form
    form = {"gender": "female", "age_band": "18-29", "terms": "yes", "privacy": "yes"}
    assert second.post("/register", data={**form, "csrf_token": token_one}).status_code == 400
    assert users(db_factory) == 0
    assert first.post("/register", data={**form, "csrf_token": token_one}).status_code in (200, 302)
    assert users(db_factory) == 1
    english = page(app.test_client().get(coova_url(mac="AA-BB-CC-00-00-0C"), headers={"Accept-Language": "en"}))
    assert 'lang="en"' in english and "Register" in english and 'lang="es"' in page_one


def test_a_foreign_origin_is_refused(client, db_factory):
    html = page(client.get(coova_url()))
    codes = [register(client, html, headers=headers).status_code for headers in FOREIGN]
    assert codes == [400] * len(FOREIGN)
    assert users(db_factory) == 0
    assert register(client, html, headers={"Origin": "http://localhost"}).status_code == 302
    assert users(db_factory) == 1


def test_rate_limits_per_mac_on_registration_and_login(client, redis_client, db_factory):
    html = page(client.get(coova_url()))
    for _ in range(5):
        assert register(client, html, terms=False).status_code == 400     # refused form, still counted
    resp = register(client, html)
    assert resp.status_code == 429 and "Demasiados intentos" in page(resp)
    assert users(db_factory) == 0
    assert any(k.startswith(b"LIMIT") for k in redis_client.keys("*")), "limits are kept in Redis"
    # Another device behind the same address is not punished for it.
    html = page(client.get(coova_url(mac="AA-BB-CC-00-00-02")))
    assert register(client, html).status_code == 302
    # Guessing a PIN from one device: 5 tries a minute.
    html = page(client.get(coova_url(mac="AA-BB-CC-00-00-03")))
    with client.session_transaction() as s:
        s.pop("uid", None)
    guess = {"csrf_token": csrf_token(html), "username": "ana", "pin": "0000"}
    for _ in range(5):
        assert client.post("/login", data=guess).status_code == 400
    assert client.post("/login", data=guess).status_code == 429


def test_pin_guessing_is_limited_per_account_whatever_the_mac(app, db_factory):
    """A MikroTik link is not signed: a new MAC per try must not give a new budget of PIN guesses."""
    owner = app.test_client()
    register(owner, page(owner.get(coova_url())))
    html = page(owner.get("/my-data"))
    resp = owner.post("/account", data={"csrf_token": csrf_token(html), "username": "lupita", "pin": "2468"})
    assert resp.status_code == 302
    codes = []
    for i in range(12):
        guesser = app.test_client()
        html = page(guesser.get(mikrotik_url(login="http://127.0.0.1:9/login", mac=f"AA:BB:CC:00:06:{i:02X}")))
        pin = "2468" if i == 11 else f"{i:04d}"
        codes.append(guesser.post("/login", data={"csrf_token": csrf_token(html), "username": "Lupita ",
                                                  "pin": pin}).status_code)
    assert codes == [400] * 10 + [429, 429]
    # Other accounts, and successful sign-ins, are not held back.
    device = app.test_client()
    for i in range(3):
        html = page(device.get(mikrotik_url(login="http://127.0.0.1:9/login", mac=f"AA:BB:CC:00:07:{i:02X}")))
        resp = device.post("/login", data={"csrf_token": csrf_token(html), "username": "otra", "pin": "1"})
        assert resp.status_code == 400


def test_rate_limit_per_address(settings, clock, fleet_ids, redis_client, db_factory):
    app = create_app(dataclasses.replace(settings, portal_ip_limit="6/minute"), clock=clock)
    client = app.test_client()
    codes = []
    for i in range(8):
        html = page(client.get(coova_url(mac=f"AA-BB-CC-00-01-{i:02X}")))
        with client.session_transaction() as s:
            s.pop("uid", None)
        codes.append(register(client, html).status_code)
    assert codes == [302] * 6 + [429, 429]
    assert users(db_factory) == 6
    codes = []
    for i in range(8):   # signing in: the same budget per address
        html = page(client.get(coova_url(mac=f"AA-BB-CC-00-08-{i:02X}")))
        codes.append(client.post("/login", data={"csrf_token": csrf_token(html), "username": f"u{i}",
                                                 "pin": "0000"}).status_code)
    assert codes == [400] * 6 + [429, 429]
    # A different address still gets in.
    html = page(client.get(coova_url(mac="AA-BB-CC-00-02-01"), environ_base={"REMOTE_ADDR": "10.7.0.2"}))
    assert register(client, html, REMOTE_ADDR="10.7.0.2").status_code == 302


def test_security_headers(client):
    client.get(coova_url())
    for path in ("/", "/status", "/my-data", "/terms", "/privacy", "/no-such-page", "/static/conecta.css",
                 "/capport", coova_url(secret="forged")):
        resp = client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "script-src 'self'" in csp, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["Referrer-Policy"] in ("no-referrer", "same-origin"), path


def test_session_cookie_flags_and_static_caching(client):
    resp = client.get(coova_url())
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "no-store" in resp.headers["Cache-Control"]           # pages carry the citizen's data
    css = client.get("/static/conecta.css")
    assert "max-age=" in css.headers["Cache-Control"] and "no-store" not in css.headers["Cache-Control"]


# What the web app logs of the refused requests below: one line each, in order (logger, message).
REFUSALS_LOGGED = [
    ("conecta.portal", "access point redirect refused: CoovaChilli md missing or wrong"),
    ("flask_wtf.csrf", "The CSRF token is invalid."),
    ("flask_wtf.csrf", "The CSRF token is missing."),
    ("conecta", "POST refused: foreign Origin 'http://evil.example' on /register"),
]


def check_log(records: list[logging.LogRecord], personal: list[str]) -> None:
    """The web app's lines are exactly REFUSALS_LOGGED, and no line at all carries personal data."""
    web = [(r.name, r.getMessage()) for r in records if r.name in ("conecta", "conecta.portal", "flask_wtf.csrf")]
    assert web == REFUSALS_LOGGED
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in records).lower()
    assert [value for value in personal if value in text] == []


def log_line(name: str, message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.makeLogRecord({"name": name, "msg": message, "levelno": level,
                                  "levelname": logging.getLevelName(level)})


def test_each_refusal_is_logged_once_without_personal_data(client, coova, caplog):
    caplog.set_level(logging.DEBUG)
    environ = {"REMOTE_ADDR": "10.77.0.9"}
    html = page(client.get(coova.portal_redirect("notyet", coova.origin()), environ_base=environ))
    resp = register(client, html, **environ)
    logon = resp.headers["Location"]
    otc_name = parse_qs(urlsplit(logon).query)["username"][0]
    fetch("GET", logon)
    refused = [
        client.get(coova_url(secret="forged", mac="AA-BB-CC-77-77-77"), environ_base=environ),
        client.post("/login", data={"csrf_token": "x", "username": "maria.lopez", "pin": "4321"},
                    environ_base=environ),
        client.post("/register", data={"gender": "female"}, headers={"Origin": "http://evil.example"},
                    environ_base=environ),
        register(client, html, headers={"Origin": "http://evil.example"}, **environ),   # our token, their page
    ]
    assert [r.status_code for r in refused] == [400] * len(REFUSALS_LOGGED)
    account = page(client.get("/my-data", environ_base=environ))
    resp = client.post("/account", data={"csrf_token": csrf_token(account), "username": "maria.lopez", "pin": "4321"},
                       environ_base=environ)
    assert resp.status_code == 302
    personal = ["aa-bb-cc-10-20-30", "aa:bb:cc:10:20:30", "aabbcc102030", "aa-bb-cc-77-77-77", "aa:bb:cc:77:77:77",
                "10.77.0.9", "maria.lopez", "4321", otc_name.lower()]
    records = list(caplog.records)
    check_log(records, personal)
    # The check catches a refusal not logged or logged twice, a line for no refusal, and personal data.
    redirect = next(r for r in records if r.name == "conecta.portal")
    origin = next(r for r in records if r.name == "conecta")
    faults = {
        "refusal not logged": [r for r in records if r is not origin],
        "refusal logged twice": [*records, redirect],
        "line for no refusal": [*records, log_line("conecta", "POST refused: foreign Origin on /account")],
        "address in a refusal": [log_line(r.name, f"{r.getMessage()} from 10.77.0.9") if r is origin else r
                                 for r in records],
        "MAC in a debug line": [*records, log_line("werkzeug", "GET /?mac=AA-BB-CC-77-77-77", logging.DEBUG)],
    }
    missed = []
    for fault, planted in faults.items():
        try:
            check_log(planted, personal)
        except AssertionError:
            continue
        missed.append(fault)
    assert missed == []
