"""Issue 11, item 7: hand-offs only to hosts registered for the access point, and no redirect to the page
a citizen asked for unless its host is on CONECTA_REDIRECT_ALLOWLIST (elsewhere it is a link)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from portal.core import sites
from portal.web import create_app
from tests.support.portal import PORTAL, handoff_form, mikrotik_url, register
from tests.support.web import csrf_token, page

ELSEWHERE_ADDR = {"REMOTE_ADDR": "192.0.2.9"}     # a browser address that is no registered NAS
ONWARD = "http://localhost/status?back=1"
EVIL = "http://evil.example/phish"
FRIENDLY = "No pudimos reconocer el punto de acceso"


def generic_url(login: str, userurl: str = "http://example.org/") -> str:
    """A generic NAS's redirect (unsigned: anyone can write one)."""
    return PORTAL + "?" + urlencode({"nas": "ap-generic", "mac": "aa:bb:cc:00:00:07", "login_url": login,
                                     "userurl": userurl})


def test_a_hand_off_goes_only_to_the_nas_or_its_registered_login_hosts(client, db_factory):
    """An unsigned redirect naming a private or loopback host that is not the NAS's is refused (the form
    would carry the one-time password there); once the host is registered for that NAS, it is taken."""
    for login in ("http://10.9.9.9/login", "http://127.0.0.1:8080/login", "http://192.168.88.1/login"):
        resp = client.get(generic_url(login), environ_base=ELSEWHERE_ADDR)
        assert resp.status_code == 400 and FRIENDLY in page(resp), login
    resp = client.get(mikrotik_url(login="http://10.9.9.9/login"))
    assert resp.status_code == 400, "an unsigned MikroTik link named a host not registered for it"
    with db_factory() as db:
        assert sites.update_nas(db, "ap-generic", sites.NasChange(login_hosts="10.9.9.9, Hotspot.Lan")) == \
            ["login_hosts"]
        db.commit()
    fresh = create_app(client.application.config["CONECTA"]).test_client()   # no cached NAS look-up
    for login in ("http://10.9.9.9/login", "http://hotspot.lan/login", "http://10.9.0.5/login"):
        resp = fresh.get(generic_url(login), environ_base=ELSEWHERE_ADDR)
        assert resp.status_code == 200, login
        action, fields = handoff_form(page(register(fresh, page(resp), **ELSEWHERE_ADDR)))
        assert action == login and fields["dst"] == ONWARD
    assert fresh.get(generic_url("http://10.9.9.8/login"), environ_base=ELSEWHERE_ADDR).status_code == 400


def test_a_remembered_citizen_is_never_redirected_to_the_link_of_a_forged_redirect(client):
    """An unsigned MikroTik link with res=success and link-orig=evil: the status page shows it as a
    link; a one-tap login hands the router the status page as dst, never the link."""
    first = mikrotik_url(login="http://127.0.0.1:9/login")
    resp = register(client, page(client.get(first)))
    assert handoff_form(page(resp))[1]["dst"] == ONWARD
    resp = client.get(mikrotik_url(login="http://127.0.0.1:9/login", dst=EVIL, res="success"))
    assert resp.status_code == 302 and resp.headers["Location"] == "/status"
    status = client.get("/status")
    assert status.status_code == 200 and f'href="{EVIL}"' in page(status)
    html = page(client.get(mikrotik_url(login="http://127.0.0.1:9/login", dst=EVIL)))
    resp = client.post("/connect", data={"csrf_token": csrf_token(html)})
    assert handoff_form(page(resp))[1]["dst"] == ONWARD
    assert client.get("/status?back=1").status_code == 200          # a link there, not a redirect


def test_only_allowlisted_destinations_are_redirected_to(app, settings, redis_client):
    allowing = create_app(dataclasses.replace(settings, redirect_allowlist="gob.mx")).test_client()
    resp = register(allowing, page(allowing.get(mikrotik_url(login="http://127.0.0.1:9/login",
                                                              dst="http://www.gob.mx/tramites"))))
    assert handoff_form(page(resp))[1]["dst"] == "http://www.gob.mx/tramites"
    allowing.get(mikrotik_url(login="http://127.0.0.1:9/login", dst="http://www.gob.mx/tramites", res="success"))
    back = allowing.get("/status")
    assert back.status_code == 302 and back.headers["Location"] == "http://www.gob.mx/tramites"
    allowing.get(mikrotik_url(login="http://127.0.0.1:9/login", dst="http://gob.mx.evil.example/", res="success"))
    assert allowing.get("/status").status_code == 200
