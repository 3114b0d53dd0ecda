"""Arriving at the portal from each kind of access point, and the hand-off back to it: CoovaChilli and
MikroTik through their simulators and the real RADIUS server; openNDS, pfSense and a generic NAS by
their redirects. Forged, malformed or dangerous parameters give the friendly page, never a reflection."""

from __future__ import annotations

import hashlib
import http.client
import os
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from portal.core.model import User
from tests.support.mikrotik import octal
from tests.support.nassim import COOVA_NAS, COOVA_UAM_SECRET
from tests.support.ndsfas import FASKEY, level0_url, level1_url, level2_url
from tests.support.portal import (
    MAC,
    MAC_NORM,
    PORTAL,
    arrive_and_register,
    back_to_portal,
    coova_url,
    fetch,
    handoff_form,
    mikrotik_url,
    otc,
    register,
)
from tests.support.web import page

FRIENDLY = "No pudimos reconocer el punto de acceso"
ELSEWHERE = {"REMOTE_ADDR": "192.0.2.9"}     # a client address that is no registered NAS
ONWARD = "http://localhost/status?back=1"   # where access points send the browser after a login


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
    back = client.get(back_to_portal(headers["Location"]))   # Chilli sends the browser back: to the status page
    assert back.status_code == 302 and back.headers["Location"] == "/status"
    assert f'<a href="{coova.origin()}" id="onward">' in page(client.get("/status"))   # userurl: a link
    # The same /logon again (as if Chilli lost the session, or someone replays the URL): refused.
    coova.forget()
    coova.version = "1.8"                                # 1.8 answers with res=failed ...
    status, headers, _ = fetch("GET", logon)
    assert "res=failed&reason=reject" in headers["Location"] and coova.auth_log[-1].accepted is False
    coova.challenges["AA-BB-CC-00-00-99"] = coova.challenges[coova.mac]
    coova.mac = "AA-BB-CC-00-00-99"                     # ... and from another device
    coova.version = "1.9"                                # 1.9 closes the connection without an answer
    with pytest.raises(http.client.RemoteDisconnected):
        fetch("GET", logon)
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
    # Back to the status page after the login (the page asked for is a link there): no redirect through the NAS.
    assert set(fields) == {"username", "password", "dst", "popup"} and fields["dst"] == ONWARD
    chap_id, challenge = mikrotik.chap[mikrotik.mac]
    expected = hashlib.md5(chap_id + otc(redis_client, fields["username"])["p"].encode() + challenge).hexdigest()
    assert fields["password"] == expected
    status, headers, _ = fetch("POST", action, fields)
    assert status == 302 and headers["Location"] == ONWARD
    assert [a.accepted for a in mikrotik.auth_log] == [True]


@pytest.mark.parametrize("kind", ["opennds", "pfsense", "pfsense-by-source", "generic"])
def test_other_access_points_parse_and_hand_off(client, redis_client, fleet_ids, kind):
    environ = dict(ELSEWHERE)
    if kind == "opennds":
        tok = "a1b2c3d4"
        url = level2_url(tok)
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
        assert target.netloc == "10.77.0.1:2050" and target.path == "/opennds_auth/"
        rhid = hashlib.sha256((hashlib.sha256(tok.encode()).hexdigest() + FASKEY).encode()).hexdigest()
        assert parse_qs(target.query) == {"tok": [rhid], "redir": [ONWARD]}
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
        assert fields["password"] == record["p"] and fields["dst"] == ONWARD
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
    "opennds flat query (9.10 never sends it)": PORTAL + "?" + urlencode(
        {"gatewayname": "ap-opennds", "tok": "a1b2c3d4", "gatewayaddress": "10.9.0.3:2050", "clientmac": MAC}),
    "opennds level 0 naming a level-2 gateway": level0_url("a1b2c3d4"),
    "opennds level 1 naming a level-2 gateway": level1_url("a1b2c3d4"),
    "opennds level 2 under another key": level2_url("a1b2c3d4", faskey="NotTheRightKey99"),
    "opennds level 2 iv not 16 characters": level2_url("a1b2c3d4", send_iv="0123456789abcdef0"),
    "opennds level 2 with another iv": level2_url("a1b2c3d4", send_iv="0123456789abcdef"),
    "opennds level 2 padding wrong": level2_url("a1b2c3d4", cut=16),
    "opennds level 2 from an unknown gateway": level2_url("a1b2c3d4", name="ap-nadie"),
    "opennds fas not base64": PORTAL + "?fas=%25%25%25",
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
        if "<script>alert" in html or "javascript:" in html.lower() or handoff_form(html)[1]["dst"] != ONWARD:
            wrong.append(bad)
    assert wrong == []
