"""A citizen's visits: the RFC 8908 API, time and data left, registration and its consent, coming back
with one tap, an account for a second device, their data shown and deleted, fault reports, language."""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import func, select

from portal.core.model import Device, FaultReport, Session, User
from portal.core.people import PRIVACY_NOTICE_VERSION
from tests.support.builders import settle
from tests.support.portal import (
    MAC_NORM,
    arrive_and_register,
    back_to_portal,
    coova_url,
    fetch,
    handoff_form,
    meters,
    otc,
    register,
    users,
)
from tests.support.web import csrf_token, page


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
    assert "bytes-remaining" not in body and "conecta-slow-lane" not in body     # a spent GB only slows down
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
    resp = client.post("/connect", data={"csrf_token": csrf_token(html)})
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
    assert phone.post("/account", data={"csrf_token": csrf_token(html), "username": "lupita",
                                        "pin": "2468"}).status_code == 302
    assert "lupita" in page(phone.get("/my-data"))
    tablet = app.test_client()
    html = page(tablet.get(mikrotik.login_redirect(mikrotik.origin())))
    assert "Entrar con mi cuenta" in html
    resp = tablet.post("/login", data={"csrf_token": csrf_token(html), "username": "lupita", "pin": "9999"})
    assert resp.status_code == 400 and "Usuario o PIN incorrectos" in page(resp)
    resp = tablet.post("/login", data={"csrf_token": csrf_token(html), "username": "lupita", "pin": "2468"})
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
    resp = client.post("/my-data/delete", data={"csrf_token": csrf_token(html)})
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
    resp = client.post("/fault", data={"csrf_token": csrf_token(html), "category": "slow", "text": "Muy lento hoy"})
    assert resp.status_code == 302
    assert "Recibimos tu reporte" in page(client.get(resp.headers["Location"]))
    with db_factory() as db:
        report = db.scalar(select(FaultReport))
        assert (report.category, report.text, report.nas_id) == ("slow", "Muy lento hoy", fleet_ids["coova"])
    assert client.post("/fault", data={"csrf_token": csrf_token(html), "category": "fire"}).status_code == 400


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

