"""A citizen in headless Chromium, through the CoovaChilli and MikroTik simulators, against the real
portal (HTTP) and the real RADIUS server (UDP): register, get online, see what is left (issue 3)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from portal.core.model import User
from tests.support.citizen import meters, register_in

PlaywrightError = pytest.importorskip("playwright.sync_api").Error


def capport(page, portal) -> dict:
    """The RFC 8908 state as the phone's OS reads it."""
    resp = page.request.get(portal.url + "capport")
    assert resp.headers["content-type"] == "application/captive+json"
    return json.loads(resp.text())


def count_users(db_factory) -> int:
    with db_factory() as db:
        return db.scalar(select(func.count()).select_from(User))


def test_coova_citizen_registers_gets_online_and_sees_what_is_left(context_factory, portal, coova, db_factory):
    page = context_factory().new_page()
    page.goto(coova.origin("/noticias"))
    assert page.url.startswith(portal.url + "?res=notyet&uamip=127.0.0.1")
    assert "&userurl=&md=" in page.url                # chilli 1.9: the first redirect has no userurl
    assert page.locator("h1").inner_text() == "Bienvenida, bienvenido a Internet gratis"
    assert capport(page, portal)["captive"] is True
    register_in(page)
    page.wait_for_url(portal.url + "status")         # chilli's res=success (no challenge): the status page
    assert page.get_by_role("status").inner_text() == "Ya estás en línea."
    page.goto(coova.origin("/noticias"))
    assert page.locator("#sim").inner_text().startswith("En línea")
    assert [a.accepted for a in coova.auth_log] == [True]
    with db_factory() as db:
        user = db.scalar(select(User))
        assert (user.gender, user.age_band, user.community) == ("female", "18-29", "San José")
    assert coova.auth_log[0].attributes["Class"] == [f"conecta:{user.id}".encode()]

    assert coova.account("Start") == 5                 # Accounting-Response
    assert coova.account("Interim-Update", seconds=1500, bytes_in=40_000_000, bytes_out=210_000_000) == 5
    # parque: 2 h and 1 GB a day, 40 h and 20 GB a month; 25 min and 250 MB used
    page.goto(portal.url + "status")
    assert meters(page) == ["1 h 35 min", "750 MB"]
    assert "39 h 35 min" in page.content() and "19.8 GB" in page.content()
    state = capport(page, portal)
    assert state["captive"] is False
    assert state["seconds-remaining"] == 3600 - 1500  # 1 h sessions
    assert "bytes-remaining" not in state and "conecta-slow-lane" not in state   # a spent GB only slows down
    # Log out through the access point's own logoff URL: Chilli sends Stop; the OS sees captive again.
    page.get_by_role("link", name="Desconectarme").click()
    page.wait_for_url(re.compile(re.escape(portal.url) + r"\?res=logoff"))
    assert coova.acct_log[-1] == ("Stop", 5)
    assert capport(page, portal)["captive"] is True


def test_mikrotik_citizen_with_javascript(context_factory, portal, mikrotik):
    page = context_factory().new_page()
    page.goto(mikrotik.origin("/mapa"))
    assert page.url.startswith(portal.url + "?mac=")
    register_in(page, gender="Prefiero no decir", age="60 años o más", community=None)
    page.wait_for_url(portal.url + "status?back=1")     # handoff.js posted the form; the router sent it back
    assert page.get_by_role("link", name=re.compile("127.0.0.1")).get_attribute("href") == mikrotik.origin("/mapa")
    assert [a.accepted for a in mikrotik.auth_log] == [True]
    assert mikrotik.posts[0]["password"] != ""          # the CHAP answer, not the credential itself
    assert mikrotik.account("Start") == 5
    assert mikrotik.account("Interim-Update", seconds=3000, bytes_in=100_000_000, bytes_out=400_000_000) == 5
    page.goto(portal.url + "status")
    assert meters(page) == ["1 h 10 min", "500 MB"]
    assert page.get_by_role("link", name="Desconectarme").get_attribute("href") == mikrotik.base + "/logout"


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_without_javascript_at_320_px(context_factory, portal, mikrotik, coova):
    page = context_factory(javascript=False, width=320, height=640).new_page()
    page.goto(mikrotik.origin())
    assert no_horizontal_scroll(page)
    register_in(page)
    page.wait_for_url(portal.url + "register")
    assert page.locator("h1").inner_text() == "Un momento…"
    assert page.get_by_text("Toca «Continuar» si la página no avanza sola.").is_visible()
    assert no_horizontal_scroll(page)
    assert mikrotik.auth_log == []                      # nothing happens by itself without JavaScript
    page.get_by_role("button", name="Continuar").click()
    page.wait_for_url(portal.url + "status?back=1")     # back to the portal: the page asked for is a link
    assert [a.accepted for a in mikrotik.auth_log] == [True]
    for path in ("status", "my-data", "terms", "privacy", "no-such-page"):
        page.goto(portal.url + path)
        assert no_horizontal_scroll(page), path
    # The remembered phone comes back through the Coova access point: one tap, still no JavaScript.
    page.goto(coova.origin())
    assert no_horizontal_scroll(page)
    page.get_by_role("button", name="Conectarme").click()
    page.wait_for_url(portal.url + "status")
    assert no_horizontal_scroll(page)
    assert [a.accepted for a in coova.auth_log] == [True]


def test_replayed_credential_is_refused(context_factory, portal, coova):
    page = context_factory().new_page()
    page.goto(coova.origin())
    register_in(page)
    page.wait_for_url(portal.url + "status")
    logon = coova.base + coova.logons[-1]
    coova.forget()                                      # the access point forgot the session ...
    coova.version = "1.8"                               # (1.8 answers an Access-Reject with res=failed)
    page.goto(logon)                                    # ... and the same /logon comes again
    assert coova.auth_log[-1].accepted is False
    assert "No se pudo conectar" in page.locator("main").inner_text()
    coova.challenges["AA-BB-CC-99-99-99"] = coova.challenges[coova.mac]
    coova.mac = "AA-BB-CC-99-99-99"                     # ... and from another device
    coova.version = "1.9"                               # 1.9 closes the connection without an answer
    with pytest.raises(PlaywrightError, match="ERR_EMPTY_RESPONSE"):
        page.goto(logon)
    assert coova.auth_log[-1].accepted is False
    assert len(coova.accepted()) == 1


def test_forged_md_gets_the_friendly_page(context_factory, portal, coova):
    page = context_factory().new_page()
    resp = page.goto(coova.portal_redirect("notyet", coova.origin(), secret="not-the-uam-secret"))
    assert resp.status == 400
    text = page.locator("main").inner_text()
    assert "No pudimos reconocer el punto de acceso" in text and "Traceback" not in page.content()
    assert page.locator("form").count() == 0


def test_post_without_csrf_token_or_from_another_origin_is_refused(context_factory, portal, coova, db_factory):
    page = context_factory().new_page()
    page.goto(coova.origin())
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    register_in(page)
    assert "La página caducó" in page.locator("main").inner_text()
    assert count_users(db_factory) == 0 and coova.logons == []
    # A page of another origin (here the access point's) posting a valid token and the cookie: refused.
    page.goto(coova.origin())
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    page.goto(coova.base + "/favicon.ico")
    page.evaluate("""([action, token]) => {
        const f = document.createElement('form'); f.method = 'post'; f.action = action;
        for (const [k, v] of Object.entries({csrf_token: token, gender: 'female', age_band: '18-29',
                                             terms: 'yes', privacy: 'yes'})) {
            const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
        }
        document.body.appendChild(f); f.submit();
    }""", [portal.url + "register", token])
    page.wait_for_url(portal.url + "register")
    assert "La solicitud no es válida" in page.locator("main").inner_text()
    assert count_users(db_factory) == 0


def test_javascript_userurl_is_never_followed(context_factory, portal, coova):
    page = context_factory().new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(coova.portal_redirect("notyet", "javascript:alert(1)"))
    assert "javascript:" not in page.content()
    register_in(page)
    page.wait_for_url(portal.url + "status")
    assert coova.accepted() and re.search(r"[?&]userurl=(&|$)", coova.logons[-1])
    assert dialogs == [] and "javascript:" not in page.content()
    page.goto(coova.portal_redirect("notyet", '"><script>alert(2)</script>'))
    assert dialogs == [] and "<script>alert" not in page.content()


def test_language_switch_and_accept_language(context_factory, portal, coova):
    page = context_factory().new_page()
    page.goto(coova.origin())
    assert page.locator("html").get_attribute("lang") == "es"
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Welcome to free Internet"
    assert page.get_by_role("button", name="Register and connect").is_visible()
    assert page.url == portal.url                       # back to the page, the arrival kept
    english = context_factory(locale="en-US").new_page()
    english.goto(coova.origin())
    assert english.locator("html").get_attribute("lang") == "en"
    assert english.locator("h1").inner_text() == "Welcome to free Internet"
    english.get_by_role("link", name="Español").click()
    assert english.locator("h1").inner_text() == "Bienvenida, bienvenido a Internet gratis"


def test_splash_first_load_weight(context_factory, portal, coova, record_property):
    """First load, empty cache, through the access point's redirect: ≤ 4 requests and ≤ 30 KB."""
    page = context_factory().new_page()
    requests = []
    page.on("request", lambda request: requests.append(request))
    page.goto(coova.origin())
    page.wait_for_load_state("load")
    assert page.locator("form[action='/register']").count() == 1
    sizes = [r.sizes() for r in requests]
    total = sum(s["responseHeadersSize"] + s["responseBodySize"] + s["requestHeadersSize"] for s in sizes)
    record_property("splash_requests", len(requests))
    record_property("splash_bytes", total)
    print(f"\nsplash first load: {len(requests)} requests, {total} bytes "
          f"({', '.join(r.url.split('?')[0] for r in requests)})")
    assert len(requests) <= 4, [r.url for r in requests]
    assert total <= 30_000
    assert all(r.url.startswith(("http://127.0.0.1:", "data:")) for r in requests)   # no CDN, no fonts
