"""The citizen portal (issue 3) over Flask's test client, against the real database, Redis and, where a
hand-off is checked, the real RADIUS server reached through the NAS simulators (no mocks of our code)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import logging
import os
import re
import threading
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from portal.core import sites
from portal.core.model import Device, FaultReport, Session, User
from portal.core.people import PRIVACY_NOTICE_VERSION
from portal.web import create_app
from tests.support.builders import SECRET, settle
from tests.support.nassim import (
    COOVA_NAS,
    COOVA_UAM_SECRET,
    CoovaSim,
    MikrotikSim,
    chilli_url,
    octal,
    register_sim_nas,
)

PORTAL = "http://localhost/"
MAC = "AA-BB-CC-00-00-01"
MAC_NORM = "aa:bb:cc:00:00:01"
FRIENDLY = "No pudimos reconocer el punto de acceso"
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.9"}     # a client address that is no registered NAS


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture()
def fleet_ids(db_factory, policies) -> dict[str, int]:
    ids = register_sim_nas(db_factory, policies)
    with db_factory() as db:
        for name, ip, vendor in (("ap-opennds", "10.9.0.3", "opennds"), ("ap-pfsense", "10.9.0.4", "pfsense"),
                                 ("ap-generic", "10.9.0.5", "generic")):
            nas, _ = sites.add_nas(db, sites.NasSpec(name, "Parque Central", ip, SECRET, vendor), production=False)
            ids[vendor] = nas.id
        db.commit()
    return ids


@pytest.fixture()
def nas_id(fleet_ids) -> int:
    """The radius_server fixture registers this module's access points instead of its default one."""
    return fleet_ids["coova"]


@pytest.fixture()
def app(settings, clock, fleet_ids, redis_client):
    app = create_app(settings, clock=clock)
    yield app
    with app.app_context():
        from portal.web.extensions import db
        db.engine.dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def coova(radius_server, dictionary):
    sim = CoovaSim(radius_server.ports, dictionary, PORTAL, COOVA_NAS, radius_source="127.0.0.2",
                   applied=lambda: settle(radius_server))
    yield sim
    sim.close()


@pytest.fixture()
def mikrotik(radius_server, dictionary):
    sim = MikrotikSim(radius_server.ports, dictionary, PORTAL, "MikroTik", applied=lambda: settle(radius_server))
    yield sim
    sim.close()


# -- helpers --------------------------------------------------------------------------------------
def coova_url(mac: str = MAC, userurl: str = "http://example.org/noticias", challenge: str | None = None,
              res: str = "notyet", secret: str | None = COOVA_UAM_SECRET, uamip: str = "10.1.0.1",
              uamport: str = "3990", nasid: str = COOVA_NAS, drop: tuple = (), extra: tuple = ()) -> str:
    params = [("res", res), ("uamip", uamip), ("uamport", uamport),
              ("challenge", challenge or os.urandom(16).hex()), ("called", "00-11-22-33-44-55"), ("mac", mac),
              ("ip", "10.1.0.77"), ("nasid", nasid), ("sessionid", "5f3a8c1200000001"), ("userurl", userurl),
              *extra]
    return chilli_url(PORTAL, [p for p in params if p[0] not in drop], secret)


def mikrotik_url(login: str = "http://10.5.50.1/login", mac: str = "AA:BB:CC:00:00:02", dst: str = "http://example.org/",
                 chap_id: bytes = b"\xa7", challenge: bytes = bytes(range(16)), **extra) -> str:
    params = {"mac": mac, "ip": "10.5.50.7", "link-login-only": login, "link-orig": dst,
              "chap-id": octal(chap_id), "chap-challenge": octal(challenge), **extra}
    return PORTAL + "?" + urlencode(params)


def token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def page(resp) -> str:
    return resp.get_data(as_text=True)


def register(client, html: str, gender: str = "female", age_band: str = "18-29", community: str | None = None,
             terms: bool = True, privacy: bool = True, guardian: bool = False, headers: dict | None = None,
             **environ):
    form = {"csrf_token": token(html), "gender": gender, "age_band": age_band}
    if community is not None:
        form["community"] = community
    for name, on in (("terms", terms), ("privacy", privacy), ("guardian", guardian)):
        if on:
            form[name] = "yes"
    return client.post("/register", data=form, headers=headers or {}, environ_base=environ)


def arrive_and_register(client, url: str, **kw):
    resp = client.get(url)
    assert resp.status_code == 200, page(resp)[:500]
    return register(client, page(resp), **kw)


def handoff_form(html: str) -> tuple[str, dict[str, str]]:
    """The hand-off page's form: its action and hidden fields."""
    action = re.search(r'<form id="handoff" method="post" action="([^"]*)"', html)
    assert action, html[:800]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return unescape(action.group(1)), {k: unescape(v) for k, v in fields.items()}


def otc(redis_client, username: str) -> dict:
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


def back_to_portal(url: str) -> str:
    """Where a simulator sends the browser: it must be the portal (the test client's own URL)."""
    assert url.startswith(PORTAL), url
    return url


def users(db_factory) -> int:
    with db_factory() as db:
        return db.scalar(select(func.count()).select_from(User))


def meters(html: str) -> list[str]:
    return re.findall(r'<dd class="meter">([^<]+)</dd>', html)




# -- arriving from each kind of access point ------------------------------------------------------
def test_coova_arrival_registration_and_chap_handoff(client, redis_client, fleet_ids, db_factory):
    challenge = os.urandom(16)
    resp = client.get(coova_url(challenge=challenge.hex()))
    assert resp.status_code == 200
    assert 'action="/register"' in page(resp)
    resp = register(client, page(resp))
    assert resp.status_code == 302
    target = urlsplit(resp.headers["Location"])
    assert (target.scheme, target.netloc, target.path) == ("http", "10.1.0.1:3990", "/logon")
    q = {k: v[0] for k, v in parse_qs(target.query).items()}
    record = otc(redis_client, q["username"])
    with db_factory() as db:
        uid = db.scalar(select(User.id))
    assert record["u"] == uid and record["n"] == fleet_ids["coova"] and record["m"] == MAC_NORM
    # R = MD5(0x00 ‖ password ‖ C'), C' = MD5(challenge ‖ uamsecret): what Chilli will check.
    c_prime = hashlib.md5(challenge + COOVA_UAM_SECRET.encode()).digest()
    assert q["response"] == hashlib.md5(b"\x00" + record["p"].encode() + c_prime).hexdigest()
    assert q["userurl"] == "http://example.org/noticias"


def test_coova_handoff_accepted_by_radius_and_replay_refused(client, coova, redis_client, db_factory):
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    logon = resp.headers["Location"]
    assert logon.startswith(coova.base + "/logon?")
    status, headers, _ = fetch("GET", logon)            # the browser follows to the access point
    assert status == 302 and "res=success" in headers["Location"]
    assert [a.accepted for a in coova.auth_log] == [True]
    with db_factory() as db:                             # the Accept names the person who registered
        assert coova.auth_log[0].attributes["Class"] == [f"conecta:{db.scalar(select(User.id))}".encode()]
    back = client.get(back_to_portal(headers["Location"]))   # Chilli sends the browser back: on to userurl
    assert back.status_code == 302 and back.headers["Location"] == coova.origin()
    # The same /logon again (as if Chilli lost the session, or someone replays the URL): refused.
    coova.forget()
    status, headers, _ = fetch("GET", logon)
    assert "res=failed" in headers["Location"] and coova.auth_log[-1].accepted is False
    coova.challenges["AA-BB-CC-00-00-99"] = coova.challenges[coova.mac]
    coova.mac = "AA-BB-CC-00-00-99"                     # ... and from another device
    status, headers, _ = fetch("GET", logon)
    assert coova.auth_log[-1].accepted is False and len(coova.accepted()) == 1


def test_mikrotik_arrival_chap_handoff_accepted_by_radius(client, mikrotik, redis_client):
    resp = client.get(mikrotik.login_redirect(mikrotik.origin()))
    assert resp.status_code == 200
    resp = register(client, page(resp))
    assert resp.status_code == 200
    html = page(resp)
    assert '<button type="submit">' in html            # works without JavaScript
    action, fields = handoff_form(html)
    assert action == mikrotik.base + "/login"
    assert set(fields) == {"username", "password", "dst", "popup"} and fields["dst"] == mikrotik.origin()
    chap_id, challenge = mikrotik.chap[mikrotik.mac]
    expected = hashlib.md5(chap_id + otc(redis_client, fields["username"])["p"].encode() + challenge).hexdigest()
    assert fields["password"] == expected
    status, headers, _ = fetch("POST", action, fields)
    assert status == 302 and headers["Location"] == mikrotik.origin()
    assert [a.accepted for a in mikrotik.auth_log] == [True]


@pytest.mark.parametrize("kind", ["opennds", "pfsense", "pfsense-by-source", "generic"])
def test_other_access_points_parse_and_hand_off(client, redis_client, fleet_ids, kind):
    environ = dict(ELSEWHERE)
    if kind == "opennds":
        url = PORTAL + "?" + urlencode({"clientip": "10.2.0.5", "clientmac": "aa:bb:cc:00:00:05", "gatewayname":
                                        "ap-opennds", "tok": "a1b2c3d4e5", "redir": "http://example.org/",
                                        "gatewayaddress": "10.9.0.3:2050", "authdir": "opennds_auth"})
    elif kind.startswith("pfsense"):
        params = {"zone": "parque", "redirurl": "http://example.org/", "mac": "aa:bb:cc:00:00:06"}
        if kind == "pfsense":
            params["nas"] = "ap-pfsense"
        else:
            environ["REMOTE_ADDR"] = "10.9.0.4"   # clients reach the portal through the NAS's own address
        url = PORTAL + "?" + urlencode(params)
    else:
        url = PORTAL + "?" + urlencode({"nas": "ap-generic", "mac": "aa:bb:cc:00:00:07", "ip": "10.3.0.9",
                                        "login_url": "http://10.9.0.5/login", "userurl": "http://example.org/"})
    resp = client.get(url, environ_base=environ)
    assert resp.status_code == 200, page(resp)[:300]
    resp = register(client, page(resp), **environ)
    if kind == "opennds":
        assert resp.status_code == 302
        target = urlsplit(resp.headers["Location"])
        assert target.netloc == "10.9.0.3:2050" and target.path == "/opennds_auth/"
        assert parse_qs(target.query) == {"tok": ["a1b2c3d4e5"], "redir": ["http://example.org/"]}
        return
    action, fields = handoff_form(page(resp))
    if kind.startswith("pfsense"):
        assert action == "http://10.9.0.4:8002/index.php?zone=parque"
        record = otc(redis_client, fields["auth_user"])
        assert fields["auth_pass"] == record["p"] and fields["zone"] == "parque"
        assert record["n"] == fleet_ids["pfsense"]
    else:
        assert action == "http://10.9.0.5/login"
        record = otc(redis_client, fields["username"])
        assert fields["password"] == record["p"] and fields["dst"] == "http://example.org/"
        assert record["n"] == fleet_ids["generic"] and record["m"] == "aa:bb:cc:00:00:07"


BAD_ARRIVALS = {
    "coova md missing": coova_url(secret=None),
    "coova md forged": coova_url(secret="not-the-uam-secret"),
    "coova md empty": coova_url(secret=None) + "&md=",
    "coova parameter changed after md": coova_url().replace("mac=AA-BB-CC-00-00-01", "mac=AA-BB-CC-00-00-66"),
    "coova challenge malformed": coova_url(challenge="zz" * 16),
    "coova uamport not a number": coova_url(uamport="39x0"),
    "coova uamip public (credentials would leave)": coova_url(uamip="93.184.215.14"),
    "coova uamip with a path": coova_url(uamip="10.1.0.1/x?"),
    "coova no mac": coova_url(drop=("mac",)),
    "coova mac malformed": coova_url(mac="not-a-mac"),
    "coova params for a mikrotik-style arrival": PORTAL + "?" + urlencode(
        {"nasid": COOVA_NAS, "link-login-only": "http://10.1.0.1/login", "mac": MAC}),
    "unknown nasid and uamip": coova_url(nasid="nadie", uamip="10.200.0.1"),
    "mikrotik login to a public host": mikrotik_url(login="http://93.184.215.14/login"),
    "mikrotik login javascript:": mikrotik_url(login="javascript:alert(1)"),
    "mikrotik chap-id not octal": mikrotik_url() .replace("chap-id=%5C247", "chap-id=xyz"),
    "mikrotik no mac": PORTAL + "?" + urlencode({"link-login-only": "http://10.5.50.1/login", "chap-id": "\\001",
                                                 "chap-challenge": "\\001" * 16}),
    "opennds tok malformed": PORTAL + "?" + urlencode({"gatewayname": "ap-opennds", "tok": "../../x",
                                                       "gatewayaddress": "10.9.0.3:2050"}),
    "unknown nas": PORTAL + "?nas=nadie&mac=aa:bb:cc:00:00:01",
    "only res": PORTAL + "?res=notyet",
    "not utf-8": PORTAL + "?nasid=%ff%fe&uamip=10.1.0.1&challenge=" + "ab" * 16,
    "huge nasid": PORTAL + "?nasid=" + "x" * 3000,
}


def test_missing_or_forged_parameters_give_the_friendly_page(client):
    wrong = {}
    for name, url in BAD_ARRIVALS.items():
        resp = client.get(url, environ_base=ELSEWHERE)
        html = page(resp)
        if not (resp.status_code == 400 and FRIENDLY in html and "Traceback" not in html
                and resp.mimetype == "text/html" and 'action="/register"' not in html):
            wrong[name] = resp.status_code
    assert wrong == {}
    # ... and the good link still works (the cases above fail for their own reason).
    assert client.get(coova_url(), environ_base=ELSEWHERE).status_code == 200


def test_a_mikrotik_arrival_needs_the_octal_or_hex_chap_values(client, fleet_ids):
    # MikroTik's $(chap-id) octal form; hex (some login.html variants) works too.
    for chap_id in ("\\247", "a7"):
        url = PORTAL + "?" + urlencode({"mac": "AA:BB:CC:00:00:02", "link-login-only": "http://127.0.0.1:8/login",
                                        "chap-id": chap_id, "chap-challenge": octal(bytes(16))})
        assert client.get(url).status_code == 200


BAD_URLS = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", ' javascript:alert(1)', '"><script>alert(1)</script>',
            "http://example.org/\"><script>alert(1)</script>", "data:text/html,<script>alert(1)</script>",
            "//evil.example/", "http://example.org/" + "a" * 600, "http://exa mple.org/", "vbscript:msgbox(1)",
            "http://example.org/\r\nSet-Cookie: x=1"]


def test_userurl_is_only_http_and_never_reflected(app, redis_client):
    wrong = []
    for i, bad in enumerate(BAD_URLS):
        client, mac = app.test_client(), f"AA-BB-CC-00-03-{i:02X}"
        resp = client.get(coova_url(userurl=bad, mac=mac))
        html = page(resp)
        reflected = "<script>alert" in html or "javascript:" in html.lower() or "data:text" in html
        resp = register(client, html)
        q = parse_qs(urlsplit(resp.headers.get("Location", "")).query, keep_blank_values=True)
        # Back from Chilli with res=success: to /status, never to the bad URL.
        back = client.get(coova_url(res="success", userurl=bad, mac=mac))
        if reflected or q.get("userurl") != [""] or back.headers.get("Location") != "/status":
            wrong.append(bad)
    assert wrong == []
    good = app.test_client()
    resp = register(good, page(good.get(coova_url(userurl="http://example.org/a?b=1&c=2"))))
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["userurl"] == ["http://example.org/a?b=1&c=2"]


def test_link_orig_is_only_http_and_never_reflected(app):
    wrong = []
    for i, bad in enumerate(BAD_URLS):
        client = app.test_client()
        resp = client.get(mikrotik_url(login="http://127.0.0.1:9/login", dst=bad, mac=f"AA:BB:CC:00:04:{i:02X}"))
        html = page(register(client, page(resp)))
        if "<script>alert" in html or "javascript:" in html.lower() or handoff_form(html)[1]["dst"] != "":
            wrong.append(bad)
    assert wrong == []


# -- limits, CSRF, Origin, headers ----------------------------------------------------------------
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
    for _ in range(5):
        resp = client.post("/login", data={"csrf_token": token(html), "username": "ana", "pin": "0000"})
        assert resp.status_code == 400
    assert client.post("/login", data={"csrf_token": token(html), "username": "ana", "pin": "0000"}).status_code == 429


def test_pin_guessing_is_limited_per_account_whatever_the_mac(app, db_factory):
    """A MikroTik link is not signed: a new MAC per try must not give a new budget of PIN guesses."""
    owner = app.test_client()
    register(owner, page(owner.get(coova_url())))
    html = page(owner.get("/my-data"))
    resp = owner.post("/account", data={"csrf_token": token(html), "username": "lupita", "pin": "2468"})
    assert resp.status_code == 302
    codes = []
    for i in range(12):
        guesser = app.test_client()
        html = page(guesser.get(mikrotik_url(login="http://127.0.0.1:9/login", mac=f"AA:BB:CC:00:06:{i:02X}")))
        pin = "2468" if i == 11 else f"{i:04d}"
        codes.append(guesser.post("/login", data={"csrf_token": token(html), "username": "Lupita ",
                                                  "pin": pin}).status_code)
    assert codes == [400] * 10 + [429, 429]
    # Other accounts, and successful sign-ins, are not held back.
    device = app.test_client()
    for i in range(3):
        html = page(device.get(mikrotik_url(login="http://127.0.0.1:9/login", mac=f"AA:BB:CC:00:07:{i:02X}")))
        resp = device.post("/login", data={"csrf_token": token(html), "username": "otra", "pin": "1"})
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
        codes.append(client.post("/login", data={"csrf_token": token(html), "username": f"u{i}",
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


# -- RFC 8908 ----------------------------------------------------------------------------------
def test_capport_captive_before_login_and_what_is_left_during_a_session(client, mikrotik, clock):
    resp = client.get("/capport")
    assert resp.mimetype == "application/captive+json"
    body = resp.get_json(force=True)
    assert body["captive"] is True and body["user-portal-url"].startswith("https://")
    assert "seconds-remaining" not in body
    html = page(client.get(mikrotik.login_redirect(mikrotik.origin())))
    action, fields = handoff_form(page(register(client, html)))
    assert fetch("POST", action, fields)[0] == 302
    assert mikrotik.account("Start") == 5
    assert mikrotik.account("Interim-Update", seconds=600, bytes_in=50_000_000, bytes_out=150_000_000) == 5
    body = client.get("/capport").get_json(force=True)
    assert body["captive"] is False
    # parque: 1 h sessions, of which 10 min are gone (2 h a day; 5 h to closing time at 23:00)
    assert body["seconds-remaining"] == 3600 - 600
    assert body["bytes-remaining"] == 1_000_000_000 - 200_000_000
    other = client.get("/capport", environ_base={"REMOTE_ADDR": "10.1.0.99"}).get_json(force=True)
    assert other["captive"] is True
    assert mikrotik.account("Stop", seconds=700, bytes_in=50_000_000, bytes_out=150_000_000) == 5
    assert client.get("/capport").get_json(force=True)["captive"] is True


# -- status, registration, coming back, accounts, my data -------------------------------------
def test_status_shows_time_and_data_left_after_accounting(client, coova):
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    fetch("GET", resp.headers["Location"])
    html = page(client.get("/status"))
    assert "Parques y plazas" in html
    assert meters(html) == ["2 h 0 min", "1.0 GB"]
    coova.account("Start")
    coova.account("Interim-Update", seconds=1500, bytes_in=40_000_000, bytes_out=210_000_000)
    # today: 2 h − 25 min and 1 GB − 250 MB; this month: 40 h − 25 min and 20 GB − 250 MB
    html = page(client.get("/status"))
    assert meters(html) == ["1 h 35 min", "750 MB"]
    assert "39 h 35 min" in html and "19.8 GB" in html
    assert f'href="{coova.base}/logoff"' in html
    coova.account("Interim-Update", seconds=7300, bytes_in=40_000_000, bytes_out=210_000_000)
    refusal = 'role="alert">'
    html = page(client.get("/status"))
    assert f"{refusal}Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00.</p>" in html
    html = page(client.get("/status", headers={"Accept-Language": "en"}))   # the refusal in their language
    assert f"{refusal}You used today&#39;s 2 hours. Come back from 00:00.</p>" in html


def test_reading_while_accounting_is_applied_never_counts_it_twice(client, coova, radius_server):
    """The person's first accounting of the day while /status is being read (a phone refreshing it):
    the RADIUS server applies accounting to SQL and to the Redis counters in separate steps, and a read
    in between must not seed the counters with a delta that is then added again."""
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    fetch("GET", resp.headers["Location"])
    coova.applied = None
    reading = threading.Event()
    reading.set()

    def refresh() -> None:
        while reading.is_set():
            client.get("/status")
    reader = threading.Thread(target=refresh)
    reader.start()
    try:
        coova.account("Start")
        coova.account("Interim-Update", seconds=1500, bytes_in=40_000_000, bytes_out=210_000_000)
        settle(radius_server)
    finally:
        reading.clear()
        reader.join()
    assert meters(page(client.get("/status"))) == ["1 h 35 min", "750 MB"]


def test_registration_stores_consent_and_asks_for_nothing_else(client, db_factory, clock):
    html = page(client.get(coova_url()))
    form = html.split('action="/register"', 1)[1].split("</form>", 1)[0]
    names = set(re.findall(r'name="([^"]+)"', form))
    assert names == {"csrf_token", "gender", "age_band", "community", "terms", "privacy", "guardian"}
    assert not re.search(r'type="(email|tel)"', html)
    assert register(client, html, gender="nonbinary", age_band="30-44", community="San José").status_code == 302
    with db_factory() as db:
        user = db.scalar(select(User))
        assert (user.gender, user.age_band, user.community) == ("nonbinary", "30-44", "San José")
        assert user.consent_version == PRIVACY_NOTICE_VERSION
        assert user.consent_at == clock().replace(tzinfo=None)
        assert user.password is None and user.pin_hash is None and user.source == "portal"
        assert user.guardian_consent is False
        assert db.scalars(select(Device.mac)).all() == [MAC_NORM]


REFUSALS = [({"age_band": "0-17"}, "madre, padre o tutor"), ({"terms": False}, "acepta las condiciones"),
            ({"privacy": False}, "acepta las condiciones"), ({"gender": "x"}, "Elige una opción de género"),
            ({"age_band": "12-15"}, "Elige tu grupo de edad"), ({"community": "Otro lugar"}, "Elige tu colonia")]


def test_registration_refusals(app, db_factory):
    wrong = []
    for i, (form, message) in enumerate(REFUSALS):
        client = app.test_client()
        resp = register(client, page(client.get(coova_url(mac=f"AA-BB-CC-00-05-{i:02X}"))), **form)
        if resp.status_code != 400 or message not in page(resp):
            wrong.append(form)
    assert wrong == []
    assert users(db_factory) == 0


def test_a_minor_registers_with_the_guardians_consent(client, db_factory):
    html = page(client.get(coova_url()))
    assert register(client, html, age_band="0-17", guardian=True).status_code == 302
    with db_factory() as db:
        user = db.scalar(select(User))
        assert user.age_band == "0-17" and user.guardian_consent is True


def test_registration_without_an_access_point_stores_nothing(client, db_factory):
    assert 'action="/register"' not in page(client.get("/"))
    html = page(client.get(coova_url()))               # a valid token for this browser ...
    with client.session_transaction() as s:
        s.pop("arrival")                              # ... but no access point behind it
    resp = register(client, html)
    assert resp.status_code == 400 and "Abre esta página desde la red Wi-Fi" in page(resp)
    assert users(db_factory) == 0


def test_come_back_with_one_tap_and_mac_authentication(client, coova, redis_client, db_factory):
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    first = parse_qs(urlsplit(resp.headers["Location"]).query)["username"][0]
    uid = otc(redis_client, first)["u"]
    # Next day, a new challenge: the page offers one button and no form.
    coova.challenges[coova.mac] = os.urandom(16)
    html = page(client.get(coova.portal_redirect("notyet", coova.origin())))
    assert "Conectarme" in html and 'action="/register"' not in html
    resp = client.post("/connect", data={"csrf_token": token(html)})
    assert resp.status_code == 302
    again = parse_qs(urlsplit(resp.headers["Location"]).query)["username"][0]
    assert again != first and otc(redis_client, again)["u"] == uid
    assert users(db_factory) == 1
    status, headers, _ = fetch("GET", resp.headers["Location"])
    assert "res=success" in headers["Location"]
    # The remembered device also gets in by MAC authentication where the access point does it.
    coova.forget()
    result = coova.access_request(coova.mac, coova.mac, pap="macpasswd")
    assert result.accepted and result.attributes["Class"] == [f"conecta:{uid}".encode()]


def test_an_account_lets_a_second_device_use_the_same_quota(app, coova, mikrotik, redis_client, db_factory):
    phone = app.test_client()
    resp = arrive_and_register(phone, coova.portal_redirect("notyet", coova.origin()))
    assert fetch("GET", resp.headers["Location"])[0] == 302
    html = page(phone.get("/my-data"))
    assert phone.post("/account", data={"csrf_token": token(html), "username": "lupita",
                                        "pin": "2468"}).status_code == 302
    assert "lupita" in page(phone.get("/my-data"))
    tablet = app.test_client()
    html = page(tablet.get(mikrotik.login_redirect(mikrotik.origin())))
    assert "Entrar con mi cuenta" in html
    resp = tablet.post("/login", data={"csrf_token": token(html), "username": "lupita", "pin": "9999"})
    assert resp.status_code == 400 and "Usuario o PIN incorrectos" in page(resp)
    resp = tablet.post("/login", data={"csrf_token": token(html), "username": "lupita", "pin": "2468"})
    action, fields = handoff_form(page(resp))
    assert fetch("POST", action, fields)[0] == 302
    (a,), (b,) = coova.accepted(), mikrotik.accepted()
    assert a.attributes["Class"] == b.attributes["Class"]          # one person
    coova.account("Start")
    mikrotik.account("Start")
    coova.account("Interim-Update", seconds=600, bytes_in=10_000_000, bytes_out=90_000_000)
    mikrotik.account("Interim-Update", seconds=1200, bytes_in=100_000_000, bytes_out=200_000_000)
    for device in (phone, tablet):   # 30 min and 400 MB of one person's 2 h and 1 GB
        assert meters(page(device.get("/status"))) == ["1 h 30 min", "600 MB"]
    with db_factory() as db:
        assert db.scalar(select(func.count()).select_from(Device)) == 2


def test_my_data_shows_and_deletes(client, coova, db_factory):
    resp = arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()), community="San José",
                               age_band="45-59")
    fetch("GET", resp.headers["Location"])
    coova.account("Start")
    html = page(client.get("/my-data"))
    for shown in ("Mujer", "45 a 59 años", "San José", "aa:bb:cc:10:20:30", PRIVACY_NOTICE_VERSION):
        assert shown in html, shown
    resp = client.post("/my-data/delete", data={"csrf_token": token(html)})
    assert resp.status_code == 200 and "Borramos tus datos" in page(resp)
    with db_factory() as db:
        assert db.scalar(select(func.count()).select_from(User)) == 0
        assert db.scalar(select(func.count()).select_from(Device)) == 0
        session = db.scalar(select(Session))
        assert session.mac is None and session.framed_ip is None and session.username == "-"
    assert "No guardamos datos tuyos" in page(client.get("/my-data"))


def test_a_fault_report_keeps_no_personal_data(client, db_factory, fleet_ids):
    html = page(client.get(coova_url()))
    register(client, html)
    html = page(client.get("/status"))
    resp = client.post("/fault", data={"csrf_token": token(html), "category": "slow", "text": "Muy lento hoy"})
    assert resp.status_code == 302
    assert "Recibimos tu reporte" in page(client.get(resp.headers["Location"]))
    with db_factory() as db:
        report = db.scalar(select(FaultReport))
        assert (report.category, report.text, report.nas_id) == ("slow", "Muy lento hoy", fleet_ids["coova"])
    assert client.post("/fault", data={"csrf_token": token(html), "category": "fire"}).status_code == 400


def test_mikrotik_logout_link_and_a_refused_login(client, mikrotik):
    html = page(client.get(mikrotik.login_redirect(mikrotik.origin())))
    action, fields = handoff_form(page(register(client, html)))
    fields["password"] = "0" * 32                                  # a wrong CHAP answer
    status, headers, _ = fetch("POST", action, fields)
    assert mikrotik.auth_log[-1].accepted is False
    resp = client.get(back_to_portal(headers["Location"]))               # the router forwards its error
    assert resp.status_code == 200 and "No se pudo conectar" in page(resp)
    assert "incorrectos" not in page(resp)                         # the router's text is not echoed
    assert f'href="{mikrotik.base}/logout"' in page(client.get("/status"))


# -- language -----------------------------------------------------------------------------------
def test_spanish_by_default_english_by_accept_language_and_by_the_switch(client):
    html = page(client.get("/"))
    assert '<html lang="es">' in html and "Bienvenida, bienvenido" in html
    assert 'hreflang="en"' in html
    html = page(client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert '<html lang="en">' in html and "Welcome to free Internet" in html
    resp = client.get("/lang/en?next=/terms")
    assert resp.status_code == 302 and resp.headers["Location"] == "/terms"
    assert '<html lang="en">' in page(client.get("/terms"))
    # Every citizen-facing word has its English: no Spanish left on the English pages (data aside).
    client.get(coova_url())
    for path in ("/", "/terms", "/privacy", "/status", "/my-data", "/no-such-page"):
        html = page(client.get(path, headers={"Accept-Language": "en"}))
        main = re.sub(r"<option[^>]*>[^<]*</option>", "", html.split("<main", 1)[1].split("</main>", 1)[0])
        text = re.sub(r"<[^>]+>", " ", main)
        assert not re.search(r"[áéíóúñ¿¡]| años | de | tu | para ", text, re.IGNORECASE), (path, text)
    assert "18 to 29 years" in page(client.get("/", headers={"Accept-Language": "en"}))
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
                 "/\t/evil.example", "/\n/evil.example", " //evil.example"):
        assert client.get("/lang/es?" + urlencode({"next": evil})).headers["Location"] == "/"


# -- logs ---------------------------------------------------------------------------------------
def test_no_personal_data_in_log_lines(client, coova, caplog, redis_client):
    caplog.set_level(logging.DEBUG)
    environ = {"REMOTE_ADDR": "10.77.0.9"}
    resp = client.get(coova.portal_redirect("notyet", coova.origin()), environ_base=environ)
    resp = register(client, page(resp), **environ)
    logon = resp.headers["Location"]
    otc_name = parse_qs(urlsplit(logon).query)["username"][0]
    fetch("GET", logon)
    client.get(coova_url(secret="forged", mac="AA-BB-CC-77-77-77"), environ_base=environ)
    client.post("/login", data={"csrf_token": "x", "username": "maria.lopez",
                                "pin": "4321"}, environ_base=environ)
    client.post("/register", data={"gender": "female"}, headers={"Origin": "http://evil.example"},
                environ_base=environ)
    html = page(client.get("/my-data", environ_base=environ))
    client.post("/account", data={"csrf_token": token(html), "username": "maria.lopez", "pin": "4321"},
                environ_base=environ)
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records).lower()
    assert caplog.records, "the refusals above are logged"
    for secret in ("aa-bb-cc-10-20-30", "aa:bb:cc:10:20:30", "aabbcc102030", "aa-bb-cc-77-77-77", "aa:bb:cc:77:77:77",
                   "10.77.0.9", "maria.lopez", "4321", otc_name):
        assert secret not in text, secret
