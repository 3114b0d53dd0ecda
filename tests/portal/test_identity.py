"""The city's identity (console, CLI, stored in the database) on the citizen pages, a new privacy
notice accepted again by returning citizens, and the portal saying the real reason it cannot connect."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from portal.cli import main
from portal.core import identity
from portal.core.model import CityLogo, PrivacyNotice, User
from portal.web import city
from tests.support.identity import TZ_NAME, only_user, png, set_identity, use
from tests.support.portal import arrive_and_register, coova_url, register, users
from tests.support.web import csrf_token, page, signed_in

TZ = ZoneInfo(TZ_NAME)
SPANISH_ERROR = re.compile(r'<p class="error" role="alert">([^<]+)</p>')


def local(clock) -> datetime:
    return clock.now.astimezone(TZ)


# -- identity on the citizen pages ---------------------------------------------------------------
def test_the_citys_identity_replaces_the_built_in_words(app, client, db_factory, clock):
    html = page(client.get("/"))
    assert "«Conecta»" in html and "Internet gratis de" not in html
    set_identity(app, db_factory, clock, municipality="Tlalnepantla de Baz", program="Tlalne Conectada",
                 ssid="TlalneWiFi", contact="wifi@tlalnepantla.gob.mx · 55 5555 0000",
                 privacy_responsible="Ayuntamiento de Tlalnepantla de Baz",
                 privacy_address="Plaza Dr. Gustavo Baz s/n, Centro", privacy_arco_contact="arco@tlalnepantla.gob.mx",
                 privacy_retention="12 meses después de tu última visita")
    html = page(client.get("/"))
    assert "Internet gratis de Tlalnepantla de Baz" in html and "«TlalneWiFi»" in html
    assert "<title>Tlalne Conectada: Internet gratis</title>" in html
    assert "Contacto: wifi@tlalnepantla.gob.mx · 55 5555 0000" in html
    assert "municipio" not in page(client.get(coova_url())).lower()
    privacy = page(client.get("/privacy"))
    for shown in ("Ayuntamiento de Tlalnepantla de Baz es responsable", "Domicilio: Plaza Dr. Gustavo Baz s/n",
                  "arco@tlalnepantla.gob.mx", "12 meses después de tu última visita", "derechos ARCO",
                  f"Versión {local(clock):%Y-%m-%d}."):
        assert shown in privacy, shown
    assert "lo ofrece Tlalnepantla de Baz" in page(client.get("/terms"))


def test_the_logo_is_checked_reencoded_and_served_safely(app, client, db_factory, clock):
    with db_factory() as db:
        row = identity.set_logo(db, png(800, 400, "JPEG"), clock.now)
        db.commit()
        digest, size = row.digest, (row.width, row.height)
    with app.app_context():
        city.forget()
    assert size == (256, 128)                              # a header logo, not the upload
    html = page(client.get("/"))
    assert f'<img src="/logo/{digest}.png" alt="" class="logo">' in html
    resp = client.get(f"/logo/{digest}.png")
    assert resp.status_code == 200 and resp.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert resp.headers["Content-Type"] == "image/png" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"] and "immutable" in resp.headers["Cache-Control"]
    assert client.get("/logo/" + "0" * 64 + ".png").status_code == 404


def test_identity_refuses_bad_values_in_spanish_and_keeps_nothing(db_factory, clock):
    bad = [("municipality", "<script>alert(1)</script>", "sin marcas HTML"),
           ("contact", "línea\nfalsa", "caracteres de control"), ("privacy_address", "x" * 301, "como máximo 300"),
           ("ssid", "ñ" * 17, "como máximo 32 bytes"), ("program", "  ", "no puede quedar vacío"),
           ("color", "azul", "no es un dato de la identidad")]
    for key, value, said in bad:
        with db_factory() as db, pytest.raises(identity.IdentityError, match=said):
            identity.update(db, {"municipality": "Toluca", key: value}, local(clock))
    for data, said in ((b"GIF89a not really", "debe ser una imagen"), (b"<svg onload=alert(1)/>", "debe ser una"),
                       (png(5000, 4000), "como máximo 4096"), (b"\x89PNG" + b"\0" * 300_000, "pesa más de 200 KB"),
                       (b"", "está vacío")):
        with db_factory() as db, pytest.raises(identity.IdentityError, match=said):
            identity.set_logo(db, data, clock.now)
    with db_factory() as db:
        assert identity.load(db) == identity.Identity()
        assert db.scalar(select(func.count()).select_from(CityLogo)) == 0


# -- the console's page ------------------------------------------------------------------------
def test_the_console_page_sets_the_identity_and_says_what_is_wrong(app, db_factory):
    admin = signed_in(app, db_factory)
    html = page(admin.get("/staff/identity"))
    assert 'href="/staff/identity"' in html and "El aviso de privacidad está incompleto" in html
    fields = {f.key: "" for f in identity.FIELDS} | {"program": "Conecta", "ssid": "Conecta"}
    resp = admin.post("/staff/identity", data={**fields, "csrf_token": csrf_token(html),
                                               "municipality": "Toluca <b>", "contact": "x"})
    assert resp.status_code == 400 and "Consola" in page(resp)
    assert unescape(SPANISH_ERROR.search(page(resp)).group(1)) == \
        "Municipio: escribe texto sin marcas HTML (sin «<» ni «>»)."
    assert 'value="Toluca &lt;b&gt;"' in page(resp)         # what was typed stays in the form
    huge = admin.post("/staff/identity", data={**fields, "csrf_token": csrf_token(html), "contact": "9" * 20_000})
    assert huge.status_code == 400 and "como máximo 200 caracteres" in page(huge)
    too_big = admin.post("/staff/identity", data={**fields, "csrf_token": csrf_token(html), "contact": "9" * 70_000})
    assert too_big.status_code == 303
    assert "demasiado grande" in page(admin.get(too_big.headers["Location"]))
    ok = admin.post("/staff/identity", data={**fields, "csrf_token": csrf_token(html), "municipality": "Toluca",
                                             "privacy_retention": "Un año"})
    assert ok.status_code == 302 and "Guardado." in page(admin.get(ok.headers["Location"]))
    with db_factory() as db:
        ident = identity.load(db)
        assert (ident.municipality, ident.privacy_retention) == ("Toluca", "Un año")
        assert db.scalar(select(func.count()).select_from(PrivacyNotice)) == 1
    # the logo: an image is stored, anything else or too large is refused in words on the console page
    resp = admin.post("/staff/identity/logo", data={"csrf_token": csrf_token(html),
                                                    "logo": (io.BytesIO(b"%PDF-1.4"), "logo.png")},
                      content_type="multipart/form-data")
    assert resp.status_code == 400 and "debe ser una imagen PNG, JPEG, GIF o WebP" in page(resp)
    big = admin.post("/staff/identity/logo", data={"csrf_token": csrf_token(html),
                                                   "logo": (io.BytesIO(b"\0" * 300_000), "a.png")},
                     content_type="multipart/form-data")
    assert big.status_code == 303 and "demasiado grande" in page(admin.get(big.headers["Location"]))
    good = admin.post("/staff/identity/logo", data={"csrf_token": csrf_token(html),
                                                    "logo": (io.BytesIO(png()), "logo.png")},
                      content_type="multipart/form-data")
    assert good.status_code == 302 and '<img src="/logo/' in page(admin.get("/staff/identity"))
    analyst = signed_in(app, db_factory, "ana@city.mx", "analyst")
    assert analyst.get("/staff/identity").status_code == 403
    assert 'href="/staff/identity"' not in page(analyst.get("/staff/"))


def test_conecta_settings_set_and_show(settings, db_factory, tmp_path):
    env = {"CONECTA_DATABASE_URL": settings.database_url, "CONECTA_REDIS_URL": settings.redis_url or "",
           "CONECTA_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert run("settings", "set", "municipality", "Zapopan").output.startswith("municipality: guardado")
    assert "nueva versión del aviso" in run("settings", "set", "privacy_responsible", "Ayuntamiento de Zapopan").output
    assert run("settings", "set", "municipality", "Zapopan").output == "municipality: sin cambios\n"
    logo = tmp_path / "logo.webp"
    logo.write_bytes(png(300, 300, "WEBP"))
    assert run("settings", "set", "logo", str(logo)).output == "logo: guardado (256 × 256 px, PNG)\n"
    shown = run("settings", "show").output
    assert "municipality: Zapopan" in shown and "ssid: Conecta" in shown and "logo: sí" in shown
    assert "falta: privacy_address, privacy_arco_contact, privacy_retention" in shown
    (tmp_path / "fake.png").write_text("<svg/>")
    (tmp_path / "huge.png").write_bytes(b"\0" * 300_000)
    for args, said in ((("color", "azul"), "no es un dato"), (("contact", "a\x1b[31mb"), "caracteres de control"),
                       (("municipality", "x" * 5000), "como máximo 120"), (("logo", str(tmp_path / "fake.png")),
                                                                         "debe ser una imagen"),
                       (("logo", str(tmp_path / "huge.png")), "pesa más de 200 KB"),
                       (("logo", str(tmp_path / "missing.png")), "No se pudo leer")):
        result = runner.invoke(main, ["settings", "set", *args], env=env)
        assert result.exit_code == 1 and said in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert run("settings", "set", "logo", "").output == "logo: quitado\n"


# -- a new notice version ------------------------------------------------------------------------
def test_a_new_notice_makes_a_returning_citizen_consent_again(app, client, db_factory, clock, coova):
    arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    assert only_user(db_factory).consent_version == identity.FIRST_NOTICE_VERSION
    version = set_identity(app, db_factory, clock, privacy_arco_contact="arco@zapopan.gob.mx")
    html = page(client.get(coova.portal_redirect("notyet", coova.origin())))
    assert "Actualizamos el aviso de privacidad" in html and f"versión {version}" in html
    refused = client.post("/connect", data={"csrf_token": csrf_token(html)})
    assert refused.status_code == 400
    assert re.search(r'<p class="error field-error" id="privacy-error">[^<]+</p>\s*<label><input type="checkbox" '
                     r'name="privacy" value="yes" required aria-invalid="true" aria-describedby="privacy-error">',
                     page(refused))
    assert only_user(db_factory).consent_version == identity.FIRST_NOTICE_VERSION
    resp = client.post("/connect", data={"csrf_token": csrf_token(html), "privacy": "yes"})
    assert resp.status_code == 302
    user = only_user(db_factory)
    assert user.consent_version == version
    with db_factory() as db:
        assert identity.notice(db, version)["privacy_arco_contact"] == "arco@zapopan.gob.mx"
    assert "Actualizamos" not in page(client.get(coova.portal_redirect("notyet", coova.origin())))
    newcomer = client.application.test_client()
    arrive_and_register(newcomer, coova_url(mac="AA-BB-CC-00-09-01"))
    with db_factory() as db:
        assert db.scalar(select(User.consent_version).where(User.id != user.id)) == version


# -- the real reason, before the tap ------------------------------------------------------------
def test_closed_hours_are_said_before_registering_and_nothing_is_stored(client, db_factory, clock):
    clock.now = datetime(2026, 11, 26, 5, 30, tzinfo=timezone.utc)       # 23:30 in Mexico City
    html = page(client.get(coova_url()))
    assert "Horario de este lugar: de 06:00 a 23:00 (hora de America/Mexico_City)." in html
    assert "Ahora está cerrado: vuelve a partir de las 06:00." in html and 'action="/register"' not in html
    clock.now = datetime(2026, 11, 26, 4, 59, tzinfo=timezone.utc)       # 22:59: open, a form from then
    html = page(client.get(coova_url()))
    assert 'action="/register"' in html
    clock.now = datetime(2026, 11, 26, 5, 1, tzinfo=timezone.utc)        # sent at 23:01
    resp = register(client, html)
    assert resp.status_code == 400 and users(db_factory) == 0
    assert SPANISH_ERROR.search(page(resp)).group(1) == \
        "El servicio en este lugar abre de 06:00 a 23:00. Vuelve a partir de las 06:00."


def test_a_returning_person_sees_what_is_left_and_why_they_cannot_connect(client, db_factory, clock, redis_client):
    html = page(client.get(coova_url()))
    assert "Horario de este lugar: de 06:00 a 23:00" in html
    assert register(client, html).status_code == 302
    uid = only_user(db_factory).id
    use(redis_client, uid, local(clock), day_seconds=1800, day_bytes=250_000_000, month_seconds=1800,
        month_bytes=250_000_000)
    html = page(client.get(coova_url()))
    assert "Hoy te queda: 1 h 30 min de tiempo y 750 MB de datos." in html
    cases = [(dict(day_seconds=7200, month_seconds=7200), "Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00."),
             (dict(open_sessions=2), "Ya tienes 2 dispositivos conectados, el máximo. Desconecta uno para entrar "
                                     "con este."),
             (dict(month_seconds=40 * 3600), "Usaste tus 40 horas de este mes. Vuelve a partir del 1 de diciembre.")]
    for usage, reason in cases:
        redis_client.flushdb()
        use(redis_client, uid, local(clock), **usage)
        html = page(client.get(coova_url()))
        assert f'<p class="error" id="refusal">{reason}</p>' in html and "Hoy te queda" not in html
        resp = client.post("/connect", data={"csrf_token": csrf_token(html)})
        assert resp.status_code == 400, reason       # no hand-off RADIUS would refuse
        assert re.search(rf'<p class="error field-error" id="connect-error">{reason}</p>\s*<button type="submit" '
                         r'aria-invalid="true" aria-describedby="connect-error">Conectarme</button>', page(resp))
        assert redis_client.keys("otc:*") == []
    redis_client.flushdb()
    assert client.post("/connect", data={"csrf_token": csrf_token(html)}).status_code == 302
    clock.now = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)      # 05:00 in Mexico City: closed
    resp = client.post("/connect", data={"csrf_token": csrf_token(html)})
    assert resp.status_code == 400 and "Vuelve a partir de las 06:00." in page(resp)


def test_a_refusal_by_the_access_point_is_explained_by_the_same_decision(client, db_factory, clock, redis_client,
                                                                         coova):
    arrive_and_register(client, coova.portal_redirect("notyet", coova.origin()))
    use(redis_client, only_user(db_factory).id, local(clock), day_seconds=7200, month_seconds=7200)
    html = page(client.get(coova.portal_redirect("failed", coova.origin())))
    assert "Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00." in html
    assert "revisa tu saldo" not in html


def test_the_status_page_never_contradicts_a_spent_monthly_pool(client, db_factory, clock, redis_client):
    assert register(client, page(client.get(coova_url()))).status_code == 302
    uid = only_user(db_factory).id
    with db_factory() as db:
        db.get(User, uid).policy = "ejido"       # 30 GB a month, no daily limit, cut off when spent
        db.commit()
    use(redis_client, uid, local(clock), month_bytes=29_000_000_000)
    html = page(client.get("/status"))
    assert re.findall(r'<dd class="meter">([^<]+)</dd>', html) == ["sin límite", "1.0 GB"]   # today: the month's rest
    use(redis_client, uid, local(clock), month_bytes=30_000_000_000)
    html = page(client.get("/status"))
    assert "Usaste tus 30 GB de este mes. Vuelve a partir del 1 de diciembre." in html
    assert "sin límite" not in html and "te queda" not in html


# -- errors beside their fields -----------------------------------------------------------------
def test_a_wrong_pin_is_said_beside_the_pin_field(client, db_factory):
    html = page(client.get(coova_url()))
    resp = client.post("/login", data={"csrf_token": csrf_token(html), "username": "maria", "pin": "0000"})
    assert resp.status_code == 400
    body = page(resp)
    assert re.search(r'<input type="password" id="pin" name="pin" autocomplete="current-password" maxlength="64" '
                     r'required aria-invalid="true" aria-describedby="pin-error">\s*'
                     r'<p class="error field-error" id="pin-error">Usuario o PIN incorrectos.</p>', body)
    assert 'value="maria"' in body                                        # the username stays
    assert body.index('action="/login"') < body.index('action="/register"')   # the form in question first
    assert 'role="alert"' not in body.split("<main", 1)[1].split('action="/login"')[0]


def test_a_registration_error_is_said_in_its_fieldset(client):
    html = page(client.get(coova_url()))
    resp = register(client, html, gender="")
    assert resp.status_code == 400
    assert re.search(r'<fieldset aria-describedby="gender-error">\s*<legend>Género</legend>\s*'
                     r'<p class="error field-error" id="gender-error">Elige una opción de género', page(resp))
    resp = register(client, html, privacy=False)
    assert re.search(r'<legend>Para conectarte</legend>\s*<p class="error field-error" id="consent-error">', page(resp))
    assert 'name="terms" value="yes" required checked' in page(resp)      # what was ticked stays ticked

