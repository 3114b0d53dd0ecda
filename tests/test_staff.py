"""Staff console: sign-in, roles on every route, revocation, back-off, audit, forms and exports."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import select, update

from portal.core import sites, staffauth
from portal.core.model import AuditEntry, FaultReport, Nas, Site, Staff
from tests.support.web import csrf_token

PASSWORD = "correct horse battery staple"
ADMIN_ONLY = ["/staff/sessions", "/staff/sites", "/staff/sites/1", "/staff/nas", "/staff/nas/1", "/staff/people",
              "/staff/audit", "/staff/nas/1/rotate", "/staff/nas/1/remove", "/staff/identity"]
ANY_STAFF = ["/staff/", "/staff/policies", "/staff/faults", "/staff/reports", "/staff/reports/hours.svg",
             "/staff/reports/trend.svg",
             "/staff/reports/sites.svg", "/staff/reports/export.csv", "/staff/reports/export.xlsx",
             "/staff/reports/export.json", "/staff/availability", "/staff/availability/export.csv",
             "/staff/alerts", "/staff/map", "/staff/map.svg", "/staff/nodes/export.csv"]


@pytest.fixture(autouse=True)
def staff_accounts(db_factory, policies) -> None:
    """Every test here starts with a site (10 GB a month planned) and an admin and an analyst."""
    with db_factory() as db:
        sites.add_site(db, policies, "Parque Central", "park", "parque", planned_gb_month=10)
        staffauth.add_staff(db, "admin@city.mx", "admin", PASSWORD)
        staffauth.add_staff(db, "analista@city.mx", "analyst", PASSWORD)
        db.commit()


def sign_in(client, email: str, password: str = PASSWORD):
    page = client.get("/staff/login").get_data(as_text=True)
    return client.post("/staff/login", data={"csrf_token": csrf_token(page), "email": email, "password": password})


def test_roles_on_every_route(app, db_factory):
    with db_factory() as db:       # /staff/nas/1
        sites.add_nas(db, sites.NasSpec("ap-1", "Parque Central", "10.9.0.1", "s" * 20, "generic"), False)
        db.commit()
    anonymous = app.test_client()
    for path in ADMIN_ONLY + ANY_STAFF:
        response = anonymous.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/staff/login"), path
    analyst = app.test_client()
    assert sign_in(analyst, "analista@city.mx").status_code == 302
    for path in ANY_STAFF:
        assert analyst.get(path).status_code == 200, path
    for path in ADMIN_ONLY:
        assert analyst.get(path).status_code == 403, path
    with db_factory() as db:
        refused = db.scalars(select(AuditEntry.target).where(AuditEntry.outcome == "forbidden")).all()
    assert sorted(refused) == sorted(ADMIN_ONLY)
    admin = app.test_client()
    sign_in(admin, "admin@city.mx")
    for path in ADMIN_ONLY + ANY_STAFF:
        assert admin.get(path).status_code == 200, path
    # Every GET page of the console is in one of the lists above; every POST refuses an analyst.
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/staff/") and r.endpoint != "staff.access.login"]
    pages = {re.sub(r"<[^>]+>", "1", r.rule) for r in rules if "GET" in r.methods}
    assert pages <= set(ADMIN_ONLY + ANY_STAFF) | {"/staff/logout", "/staff/reports/export.1",   # export.csv…
                                                   "/staff/availability/export.1", "/staff/nodes/export.1"}
    html = analyst.get("/staff/faults").get_data(as_text=True)
    # Every staff member signs out and chooses the sites whose alerts they receive.
    for rule in (r for r in rules if "POST" in r.methods and r.rule not in ("/staff/logout",
                                                                           "/staff/alerts/subscriptions")):
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        assert analyst.post(path, data={"csrf_token": csrf_token(html)}).status_code == 403, path


def test_logout_and_disabling_revoke_the_session_on_the_server(app, client, db_factory):
    sign_in(client, "admin@city.mx")
    cookie = client.get_cookie("conecta_staff").value
    page = client.get("/staff/").get_data(as_text=True)
    client.post("/staff/logout", data={"csrf_token": csrf_token(page)})
    replay = app.test_client()
    replay.set_cookie("conecta_staff", cookie)
    assert replay.get("/staff/").status_code == 302                   # the old cookie is dead
    sign_in(client, "admin@city.mx")
    with db_factory.begin() as db:
        db.execute(update(Staff).where(Staff.email == "admin@city.mx").values(disabled=True))
    assert client.get("/staff/").status_code == 302


def test_back_off_after_failures_with_one_generic_error(client):
    first = sign_in(client, "admin@city.mx", "wrong")
    unknown = sign_in(client, "nobody@city.mx", "wrong")
    assert first.status_code == unknown.status_code == 401
    assert "incorrectos" in first.get_data(as_text=True) and "incorrectos" in unknown.get_data(as_text=True)
    for _ in range(4):
        sign_in(client, "admin@city.mx", "wrong")
    locked = sign_in(client, "admin@city.mx")                          # even the right password waits
    assert locked.status_code == 429 and "Espera" in locked.get_data(as_text=True)


def test_forms_need_csrf_and_gets_change_nothing(client, db_factory):
    sign_in(client, "admin@city.mx")
    assert client.post("/staff/sites", data={"name": "X", "kind": "park", "policy": "parque"}).status_code == 400
    assert client.get("/staff/logout").status_code == 405
    page = client.get("/staff/sites").get_data(as_text=True)
    bad = client.post("/staff/sites", data={"csrf_token": csrf_token(page), "name": "Y", "kind": "castle",
                                            "policy": "parque"})
    assert bad.status_code == 400 and "castle" in bad.get_data(as_text=True)
    ok = client.post("/staff/sites", data={"csrf_token": csrf_token(page), "name": "=HYPERLINK(\"http://evil\")",
                                           "kind": "plaza", "policy": "parque", "planned_gb_month": "5"})
    assert ok.status_code == 200
    with db_factory() as db:
        assert db.scalar(select(AuditEntry.target).where(AuditEntry.action == "site-add")) == '=HYPERLINK("http://evil")'


def test_markup_is_escaped_and_filters_are_not_sql(client, db_factory):
    with db_factory.begin() as db:
        db.add(FaultReport(site_id=1, category="other", text="<script>alert(1)</script>"))
    sign_in(client, "analista@city.mx")
    html = client.get("/staff/faults").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    for query in ("by=site;DROP TABLE users", "from=2026-01-01'--", "min_cell=0 OR 1=1",
                  "from=2019-01-01&to=2026-11-01"):
        assert client.get(f"/staff/reports?{query}").status_code == 400, query
    assert client.get("/staff/reports/export.csv?by=gender&min_cell=1").status_code == 200
    assert client.get("/api/v1/reports?by=site%27").status_code == 400


def test_new_nas_secret_shown_once(client, db_factory):
    sign_in(client, "admin@city.mx")
    page = client.get("/staff/nas").get_data(as_text=True)
    created = client.post("/staff/nas", data={"csrf_token": csrf_token(page), "name": "ap-9", "site": "Parque Central",
                                              "ip": "10.9.0.1", "vendor": "mikrotik"}).get_data(as_text=True)
    secret = re.search(r"<code>([0-9a-f]{32})</code>", created).group(1)
    assert secret not in client.get("/staff/nas").get_data(as_text=True)
    assert secret not in client.get("/staff/audit").get_data(as_text=True)


def test_an_opennds_gateway_from_the_console(client, db_factory):
    sign_in(client, "admin@city.mx")
    page = client.get("/staff/nas").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "name": "ap-nds", "site": "Parque Central", "ip": "10.9.0.7",
            "vendor": "opennds"}
    assert "fas-level" in client.post("/staff/nas", data=form).get_data(as_text=True)   # no level: refused
    created = client.post("/staff/nas", data={**form, "fas_level": "2"}).get_data(as_text=True)
    faskey = re.search(r"faskey de ap-nds.*?<code>([0-9a-f]{16})</code>", created).group(1)
    with db_factory() as db:
        nas = db.scalar(select(Nas).where(Nas.name == "ap-nds"))
    assert (nas.fas_level, nas.faskey) == (2, faskey)
    edit = client.get(f"/staff/nas/{nas.id}").get_data(as_text=True)
    change = {"csrf_token": csrf_token(edit), "fas_level": "3", "faskey": "OtraClaveDeFas2026"}
    assert client.post(f"/staff/nas/{nas.id}", data=change).status_code == 302
    with db_factory() as db:
        assert db.scalar(select(Nas.faskey).where(Nas.name == "ap-nds")) == "OtraClaveDeFas2026"
    audit = client.get("/staff/audit").get_data(as_text=True)
    assert "fas_level=3" in audit and faskey not in audit and "OtraClaveDeFas2026" not in audit


def test_nas_page_shows_what_each_nas_calls_itself_and_counts_as_input(client, db_factory):
    sign_in(client, "admin@city.mx")
    page = client.get("/staff/nas").get_data(as_text=True)
    for name, ip, vendor, identifier in (("ap-chilli", "10.9.0.2", "coova", "nas01"),
                                         ("ap-rb", "10.9.0.3", "mikrotik", "")):
        assert client.post("/staff/nas", data={"csrf_token": csrf_token(page), "name": name, "site": "Parque Central",
                                               "ip": ip, "vendor": vendor, "nas_identifier": identifier,
                                               "octets_direction": ""}).status_code == 200
    refused = client.post("/staff/nas", data={"csrf_token": csrf_token(page), "name": "ap-3", "site": "Parque Central",
                                              "ip": "10.9.0.4", "vendor": "coova", "nas_identifier": "ap-rb"})
    assert refused.status_code == 400 and "ya nombra al NAS &#39;ap-rb&#39;" in refused.get_data(as_text=True)
    html = client.get("/staff/nas").get_data(as_text=True)
    rows = [re.findall(r"<td>([^<]*)</td>", row)[:6] for row in re.findall(r"<tr><td>ap-.*?</tr>", html, re.S)]
    assert [(r[0], r[3], r[4], r[5]) for r in rows] == [
        ("ap-chilli", "CoovaChilli", "nas01", "Acct-Input-Octets = lo que descarga el cliente"),
        ("ap-rb", "MikroTik", "", "Acct-Input-Octets = lo que sube el cliente (RFC 2866)")]


def test_nas_page_changes_what_nas_set_changes(client, db_factory):
    """The access point's page edits its NAS-Identifier, octet direction, CoA port (0: none) and probe, all
    checked before any is saved, and audits what changed."""
    sign_in(client, "admin@city.mx")
    page = client.get("/staff/nas").get_data(as_text=True)
    client.post("/staff/nas", data={"csrf_token": csrf_token(page), "name": "ap-chilli", "site": "Parque Central",
                                    "ip": "10.9.0.2", "vendor": "coova", "nas_identifier": "nas01"})
    with db_factory() as db:
        nas_id = db.scalar(select(Nas.id).where(Nas.name == "ap-chilli"))
    form = client.get(f"/staff/nas/{nas_id}").get_data(as_text=True)
    assert 'value="nas01"' in form and 'value="3799"' in form and 'value="icmp"' in form
    assert '<option value="input-is-download" selected>' in form
    change = {"csrf_token": csrf_token(form), "nas_identifier": "", "octets_direction": "input-is-upload",
              "coa_port": "0", "probe": "tcp:3990"}
    refused = client.post(f"/staff/nas/{nas_id}", data={**change, "probe": "http:http://10.9.9.9/"})
    assert refused.status_code == 400 and "las sondas solo llegan al NAS" in refused.get_data(as_text=True)
    for bad in ("70000", "x"):
        assert client.post(f"/staff/nas/{nas_id}", data={**change, "coa_port": bad}).status_code == 400
    with db_factory() as db:
        nas = db.get(Nas, nas_id)
        assert (nas.nas_identifier, nas.octets_direction, nas.coa_port, nas.probe) == \
            ("nas01", "input-is-download", 3799, "icmp")                  # nothing of a refused change is kept
    assert client.post(f"/staff/nas/{nas_id}", data=change).status_code == 302
    with db_factory() as db:
        nas = db.get(Nas, nas_id)
        assert (nas.nas_identifier, nas.octets_direction, nas.coa_port, nas.probe) == \
            (None, "input-is-upload", 0, "tcp:3990")
        audited = db.scalar(select(AuditEntry.target).where(AuditEntry.action == "nas-edit"))
    assert audited == "ap-chilli: nas_identifier=, octets_direction=input-is-upload, coa_port=0, probe=tcp:3990"
    listing = client.get("/staff/nas").get_data(as_text=True)
    assert "ninguno (no acepta CoA)" in listing and "tcp:3990" in listing


def test_node_board_and_staff_disconnect(client, db_factory, policies, dictionary, radius_server, nas_id, clock):
    """A live NAS shows its traffic; a silent one is not called down; staff cut a live session with RFC 5176."""
    from sqlalchemy import update as sql_update

    from portal.core.model import Disconnect
    from portal.core.model import Nas as NasRow
    from tests.support.builders import add_user, settle
    from tests.support.coanas import FakeCoaNas
    from tests.support.radiusclient import Nas
    answer = threading.Event()
    coa = FakeCoaNas(dictionary, hold=answer)
    with db_factory.begin() as db:
        db.execute(sql_update(NasRow).where(NasRow.id == nas_id).values(coa_port=coa.port))
        sites.add_nas(db, sites.NasSpec("ap-silent", "Parque Central", "10.0.0.99", "s" * 20, "generic"), False)
    radius_server.registry.load()
    try:
        add_user(db_factory, policies, "ana", "anapass123")
        nas = Nas(radius_server, dictionary)
        nas.acct("Start", "live-1", "ana", reply=nas.auth("ana", "anapass123"))
        settle(radius_server)
        radius_server.registry.flush_seen(radius_server.redis, to_db=True)
        sign_in(client, "admin@city.mx")
        board = client.get("/staff/").get_data(as_text=True)
        # Its last packet and live session are shown; RADIUS silence is no verdict: without a probe
        # result a NAS is waiting for its first probe, never "caído".
        assert re.search(r'ap-coova-127\.0\.0\.1</td><td[^>]*>icmp</td><td[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d</td>'
                         r'<td[^>]*>1</td>', board)
        assert re.search(r'esperando el primer sondeo</td><td[^>]*>Parque Central</td><td[^>]*>ap-silent</td>', board)
        assert "caído" not in board.split("<table")[1]
        page = client.get("/staff/sessions").get_data(as_text=True)
        action = re.search(r'action="(/staff/sessions/\d+/disconnect)"', page).group(1)
        # The NAS has not answered yet, and the console does not wait for it.
        assert client.post(action, data={"csrf_token": csrf_token(page)}).status_code == 302
        waiting = client.get("/staff/sessions?sent=1").get_data(as_text=True)
        assert "Enviada; esperando respuesta" in waiting and "Desconexión pedida a las" in waiting
        answer.set()
        deadline = time.monotonic() + 10
        while True:
            with db_factory() as db:
                result = db.scalar(select(Disconnect.result).where(Disconnect.reason == "staff"))
            if result != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert result == "ack"
        assert "Confirmada por el punto de acceso" in client.get("/staff/sessions").get_data(as_text=True)
        assert coa.received[0]["Acct-Session-Id"] == ["live-1"]
        with db_factory() as db:
            audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "disconnect"))
        assert audit.outcome == "sent" and "ap-coova-127.0.0.1" in audit.target
    finally:
        coa.close()


def test_sites_are_edited_and_removed_only_when_nothing_needs_them(client, db_factory, policies):
    sign_in(client, "admin@city.mx")
    with db_factory.begin() as db:
        sites.add_site(db, policies, "Ejido Vacío", "ejido", "ejido")
        busy = sites.add_site(db, policies, "Plaza Con Fallas", "plaza", "parque").id
        db.add(FaultReport(site_id=busy, category="no-signal", text="sin señal"))
    site_id = 1
    page = client.get(f"/staff/sites/{site_id}").get_data(as_text=True)
    assert 'value="Parque Central"' in page and 'value="10.0"' in page
    form = {"csrf_token": csrf_token(page), "name": "Parque Central Norte", "kind": "plaza", "policy": "centro-digital",
            "planned_gb_month": "25", "lat": "18.14", "lon": "-94.46", "communities": "Centro\n\nPuerto México\n"}
    assert client.post(f"/staff/sites/{site_id}", data=form).status_code == 302
    with db_factory() as db:
        site = db.get(Site, site_id)
        assert (site.name, site.kind, site.policy, site.planned_gb_month, site.lat, site.lon, site.communities) == (
            "Parque Central Norte", "plaza", "centro-digital", 25.0, 18.14, -94.46, "Centro\nPuerto México")
        assert db.scalar(select(AuditEntry.target).where(AuditEntry.action == "site-edit")) == (
            "Parque Central Norte: name, kind, policy, planned_gb_month, lat, lon, communities")
    for bad, message in (({"policy": "nope"}, "no existe la política"), ({"name": "Ejido Vacío"}, "ya existe"),
                         ({"lat": "95"}, "latitud"), ({"lon": ""}, "ninguna de las dos"),
                         ({"planned_gb_month": "x"}, "número")):
        resp = client.post(f"/staff/sites/{site_id}", data={**form, **bad})
        assert resp.status_code == 400 and message in resp.get_data(as_text=True), bad
    with db_factory() as db:
        assert db.get(Site, site_id).policy == "centro-digital"            # nothing partial written
        empty = db.scalar(select(Site.id).where(Site.name == "Ejido Vacío"))
    refused = client.post(f"/staff/sites/{busy}/remove", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 400 and "consérvalo" in refused.get_data(as_text=True)
    assert client.post(f"/staff/sites/{empty}/remove", data={"csrf_token": csrf_token(page)}).status_code == 302
    assert client.post("/staff/sites/999/remove", data={"csrf_token": csrf_token(page)}).status_code == 404
    with db_factory() as db:
        assert sorted(db.scalars(select(Site.name))) == ["Parque Central Norte", "Plaza Con Fallas"]


def test_fault_reports_by_site_and_status(client, db_factory, policies):
    with db_factory.begin() as db:
        other = sites.add_site(db, policies, "Ejido Norte", "ejido", "ejido").id
        db.add_all([FaultReport(site_id=1, category="slow", text="lento en el parque"),
                    FaultReport(site_id=other, category="no-signal", text="sin señal en el ejido"),
                    FaultReport(site_id=other, category="other", text="ya quedó", status="resolved")])
    sign_in(client, "analista@city.mx")

    def texts(query: str) -> list[str]:
        html = client.get(f"/staff/faults?{query}").get_data(as_text=True)
        return sorted(t for t in ("lento en el parque", "sin señal en el ejido", "ya quedó") if t in html)

    assert texts("") == ["lento en el parque", "sin señal en el ejido", "ya quedó"]
    assert texts(f"site={other}") == ["sin señal en el ejido", "ya quedó"]
    assert texts(f"site={other}&status=new") == ["sin señal en el ejido"]
    assert texts("site=1%20OR%201=1") == ["lento en el parque", "sin señal en el ejido", "ya quedó"]


def test_the_slow_lane_on_the_sessions_page_and_in_the_reports(client, db_factory, policies, dictionary, radius_server,
                                                               nas_id):
    """Which sessions are in the slow lane and what their access points answered; the report's figures in
    the page, its exports and the API, with small cells hidden."""
    from portal.core.model import Nas as NasRow
    from tests.support.builders import settle
    from tests.support.coanas import FakeCoaNas
    from tests.support.slowlane import outcomes, spend_the_day
    coa = FakeCoaNas(dictionary, coa="nak", error_cause=503)
    with db_factory.begin() as db:
        db.execute(update(NasRow).where(NasRow.id == nas_id).values(coa_port=coa.port))
    try:
        nas, _ = spend_the_day(radius_server, dictionary, db_factory, policies)
        outcomes(db_factory)
        nas.acct("Start", "s2", "ana", reply=nas.auth("ana", "anapass123", mac="AA-BB-CC-00-00-02"),
                 mac="AA-BB-CC-00-00-02")       # the next login: in the slow lane from the start
        nas.acct("Interim-Update", "s2", "ana", seconds=300, bytes_out=25_000_000, mac="AA-BB-CC-00-00-02")
        settle(radius_server)
    finally:
        coa.close()
    sign_in(client, "admin@city.mx")
    html = client.get("/staff/sessions").get_data(as_text=True)
    assert "2 de 2 a velocidad reducida" not in html and "1 de 2 a velocidad reducida" in html
    changes = html[html.index('id="speed-changes"'):]
    assert "A velocidad reducida (saldo agotado)" in changes
    assert "Rechazada por el punto de acceso (causa 503); se pidió la desconexión en su lugar" in changes
    day = radius_server.clock().astimezone(radius_server.settings.tz).date().isoformat()
    query = f"from={day}&to={day}&by=site&by=gender&min_cell=1"
    report = client.get(f"/staff/reports?{query}").get_data(as_text=True)
    table = report[report.index('id="slow-lane"'):]
    assert "<td>Parque Central</td><td>Mujer</td><td>1</td><td>1</td><td>0.03</td>" in table
    csv = client.get(f"/staff/reports/export.csv?{query}&figures=slow-lane").get_data(as_text=True)
    assert csv.splitlines()[:2] == ["\ufeffSitio,Género,Personas,Sesiones,GB a velocidad reducida,"
                                    "Bytes a velocidad reducida,Oculta (menos de k personas),Fila",
                                    "Parque Central,Mujer,1,1,0.025,25000000,no,Celda"]
    api = client.get(f"/api/v1/reports?{query.replace('min_cell=1', 'min_cell=5')}&figures=slow-lane").get_json()
    assert api[0]["suppressed"] is True and api[0]["users"] is None and api[0]["bytes"] is None
    assert client.get(f"/api/v1/reports?{query}&figures=everything").status_code == 400
    policies_page = client.get("/staff/policies").get_data(as_text=True)
    assert ("velocidad reducida a 256 / 128 kbit/s (los datos del día y los datos del mes)" in policies_page
            and "2 horas al día, 1 GB al día" in policies_page and "daily_time" not in policies_page)
