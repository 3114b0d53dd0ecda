"""Bad input on the console's report filters and forms gets a clear error in the reader's language on a
staff page (never a 500, never the citizens' error page); access points are managed with confirmation
steps; people are found by part of a name or MAC."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from portal.core import sites
from portal.core.model import AuditEntry, Device, Nas, Session, User
from tests.support.web import csrf_token, page, signed_in

STAFF_PAGE = "Consola Conecta"     # the console's header: a staff page, not the citizens' one


@pytest.fixture()
def admin(app, db_factory, policies):
    with db_factory() as db:
        sites.add_site(db, policies, "Parque Central", "park", "parque")
        sites.add_nas(db, sites.NasSpec("ap-1", "Parque Central", "10.9.0.1", "s" * 20, "coova"), False)
        db.add(User(username="maria.lopez", gender="female"))
        db.add(User(username="juan_perez"))
        db.commit()
    return signed_in(app, db_factory, "admin@city.mx", "admin")


BAD_FILTERS = [
    ("from=2026-13-01", "no es una fecha"), ("from=0001-01-01&to=0001-01-02", "fuera del rango"),
    ("from=2026-11-30&to=2026-11-01", "es anterior a la inicial"), ("from=2020-01-01&to=2026-01-01", "tres años"),
    ("by=bogus", "no se puede agrupar"), ("min_cell=99999999999999999999", "de 1 a 50"),
    ("period=forever", "periodo desconocido"), ("from=<script>alert(1)</script>", "&lt;script&gt;"),
    ("from=2026-11-01&figures=everything", "las cifras pueden ser")]


def test_bad_report_filters_get_a_spanish_error_on_a_staff_page(admin):
    for query, message in BAD_FILTERS:
        for path in ("/staff/reports", "/staff/reports/hours.svg", "/staff/reports/export.csv"):
            if "figures" in query and path != "/staff/reports/export.csv":
                continue
            response = admin.get(f"{path}?{query}")
            body = page(response)
            assert response.status_code == 400 and STAFF_PAGE in body and message in body, (path, body[-400:])
            assert "<script>alert" not in body


def test_errors_speak_english_to_an_english_reader_and_json_to_the_api(admin):
    body = page(admin.get("/staff/reports?from=2026-13-01&lang=en"))
    assert "is not a date like 2026-11-01" in body
    api = admin.get("/api/v1/reports?by=bogus&lang=es")
    assert api.status_code == 400 and "no se puede agrupar" in api.get_json()["error"]
    assert admin.get("/open-data?month=2026-99").status_code == 400
    assert admin.get("/staff/availability?from=2026-11-30&to=2026-11-01").status_code == 400
    html = page(admin.get("/staff/faults"))
    bad = admin.post("/staff/faults/1", data={"csrf_token": csrf_token(html), "status": "<b>x</b>"})
    assert bad.status_code == 404 and STAFF_PAGE in page(bad)                # no fault report 1
    gone = admin.get("/staff/nas/999/remove")
    assert gone.status_code == 404 and "Eso no existe" in page(gone) and STAFF_PAGE in page(gone)


def test_an_access_point_is_edited_rotated_and_removed_with_confirmation(admin, db_factory):
    html = page(admin.get("/staff/nas/1"))
    token = csrf_token(html)
    huge = admin.post("/staff/nas/1", data={"csrf_token": token, "coa_port": "9" * 40})
    assert huge.status_code == 400 and "no es un número de puerto" in page(huge) and STAFF_PAGE in page(huge)
    saved = admin.post("/staff/nas/1", data={"csrf_token": token, "coa_port": "3799", "uam_secret": "u" * 24,
                                             "require_message_authenticator": "no"})
    assert saved.status_code == 302 and "saved=ap-1" in saved.headers["Location"]
    with db_factory() as db:
        nas = db.get(Nas, 1)
        assert nas.uam_secret == "u" * 24 and nas.require_message_authenticator is False
        audit = db.scalar(select(AuditEntry.target).where(AuditEntry.action == "nas-edit"))
        secret = nas.secret
    assert "uam_secret" in audit and "u" * 24 not in audit        # the secret never reaches the audit log
    # Rotating asks first: a POST without the confirmation changes nothing.
    asked = admin.post("/staff/nas/1/rotate", data={"csrf_token": token})
    assert asked.status_code == 200 and "deja de poder autenticar" in page(asked)
    with db_factory() as db:
        assert db.get(Nas, 1).secret == secret
    done = admin.post("/staff/nas/1/rotate", data={"csrf_token": token, "confirm": "yes"})
    with db_factory() as db:
        assert db.get(Nas, 1).secret != secret and db.get(Nas, 1).secret in page(done)
    # Removing shows what depends on it and refuses while a session is open.
    with db_factory.begin() as db:
        now = datetime(2026, 11, 26, 12, 0)
        db.add(Session(nas_id=1, site_id=1, acct_session_id="s1", username="maria.lopez", started_at=now,
                       updated_at=now, is_open=True))
    confirm = page(admin.get("/staff/nas/1/remove"))
    assert "Sesiones abiertas ahora: 1" in confirm
    refused = admin.post("/staff/nas/1/remove", data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 400 and "sesiones abiertas" in page(refused)
    with db_factory.begin() as db:
        db.get(Session, 1).is_open = False
    removed = admin.post("/staff/nas/1/remove", data={"csrf_token": token, "confirm": "yes"})
    assert removed.status_code == 302 and "removed=ap-1" in removed.headers["Location"]
    with db_factory() as db:
        assert db.get(Nas, 1) is None and db.get(Session, 1) is not None     # the history stays


def test_people_are_found_by_part_of_a_username_or_a_mac(admin, db_factory):
    with db_factory.begin() as db:
        uid = db.scalar(select(User.id).where(User.username == "juan_perez"))
        db.add(Device(user_id=uid, mac="a4:5e:60:12:34:56"))

    def names(term: str) -> list[str]:
        html = page(admin.get("/staff/people", query_string={"q": term}))
        return [n for n in ("maria.lopez", "juan_perez") if f"<h2>{n}</h2>" in html]
    assert names("ARIA") == ["maria.lopez"]
    assert names("A4-5E-60") == ["juan_perez"] and names("5e6012") == ["juan_perez"]
    assert names("%%") == [] and names("a_i") == [] and names("n_p") == ["juan_perez"]   # wildcards are literal
    assert "al menos 2 caracteres" in page(admin.get("/staff/people?q=a"))
