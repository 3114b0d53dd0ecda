"""Alerts: a real outage of a whole neighbourhood (test hosts in namespaces) gives one e-mail to the staff
who follow the site and one webhook call, and the same for the recovery; flapping and maintenance
windows keep quiet; a refusing SMTP server and a failing or silent webhook are retried, then recorded
as failed — all on a real SMTP server (aiosmtpd) and a real HTTP receiver."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal.core import alerts, maintenance, staffauth
from portal.core.model import Alert, AlertNotice, AlertSubscription, NodeState, Site
from portal.core.settings import settings_env
from portal.monitor.notify import Sender
from tests.support.httpreceiver import Receiver
from tests.support.monitor import CONECTA, History, MonitorThread, add_probed_nas, fast, state_of, wait_for
from tests.support.netns import TestHost, netns_unavailable
from tests.support.smtp import SmtpServer
from tests.support.web import csrf_token, page, signed_in


@pytest.fixture()
def smtp():
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture()
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


def _subscribe(db_factory, email: str, *site_names: str) -> None:
    with db_factory() as db:
        staff = staffauth.add_staff(db, email, "analyst", "correct horse battery staple")
        for name in site_names:
            db.add(AlertSubscription(staff_id=staff.id, site_id=db.scalar(select(Site.id).where(Site.name == name))))
        db.commit()


def test_a_neighbourhood_outage_is_one_message_per_recipient_and_so_is_its_end(settings, db_factory, policies,
                                                                              smtp, receiver, app):
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    hosts = [TestHost() for _ in range(3)]
    try:
        ids = [add_probed_nas(db_factory, policies, f"ap-colonia-{i}", h.ip) for i, h in enumerate(hosts)]
        add_probed_nas(db_factory, policies, "ap-plaza", "127.0.0.1", site="Plaza Principal", kind="plaza")
        _subscribe(db_factory, "jefa@municipio.mx", "Ejido La Esperanza")
        _subscribe(db_factory, "plaza@municipio.mx", "Plaza Principal")
        s = fast(settings, alert_group_seconds=1.5, smtp_host="127.0.0.1", smtp_port=smtp.port,
                 alert_webhook_url=receiver.url)
        monitor = MonitorThread(s, db_factory).start()
        try:
            wait_for(lambda: all(state_of(db_factory, i) == "up" for i in ids))
            for host in hosts:
                host.down()
            wait_for(lambda: len(smtp.messages) == 1 and len(receiver.posts()) == 1, timeout=15)
            for host in hosts:
                host.up()
            wait_for(lambda: len(smtp.messages) == 2 and len(receiver.posts()) == 2, timeout=15)
        finally:
            monitor.stop()
    finally:
        for host in hosts:
            host.close()
    down, up = smtp.messages
    assert down["To"] == "jefa@municipio.mx" and down["Subject"] == "Conecta: 3 caídos (puntos de acceso)"
    assert down.get_content().count("Caído: ap-colonia-") == 3 and "(Ejido La Esperanza) desde " in down.get_content()
    assert up.get_content().count("Recuperado: ap-colonia-") == 3
    first, second = receiver.posts()
    assert [e["kind"] for e in first["events"]] == ["down"] * 3 and first["text"].startswith("Conecta: 3 caídos")
    assert {e["nas"] for e in second["events"]} == {"ap-colonia-0", "ap-colonia-1", "ap-colonia-2"}
    with db_factory() as db:
        assert db.scalars(select(Alert.status)).all() == ["sent"] * 4
    console = page(signed_in(app, db_factory, "admin@city.mx").get("/staff/alerts"))
    assert console.count("enviada ") == 4 and "jefa@municipio.mx" in console and "127.0.0.1" in console


def test_flapping_is_told_once_and_its_end_once_more(settings, db_factory, policies):
    nas_id = add_probed_nas(db_factory, policies, "ap-flaky", "127.0.0.31")
    s = dataclasses.replace(settings, flap_changes=4, flap_window=600)
    h = History(db_factory, confirmations=1)
    t = datetime(2026, 11, 26, 12, 0)
    h.tracker.add(nas_id, 1, "ap-flaky", True, t)
    told = []
    for minute, ok in enumerate([True, False, True, False, True, False, True]):
        h.tracker.observe(nas_id, ok, t + timedelta(minutes=minute))
        h.save(t + timedelta(minutes=minute))
        with db_factory() as db:
            alerts.notice_step(db, t + timedelta(minutes=minute), s)
            told = [n.kind for n in db.scalars(select(AlertNotice).order_by(AlertNotice.id))]
    # up (nothing to tell for a new NAS), down, up, then flapping: one notice and silence.
    assert told == ["down", "up", "flapping"]
    with db_factory() as db:
        alerts.notice_step(db, t + timedelta(minutes=20), s)      # settled for longer than the window
        assert [n.kind for n in db.scalars(select(AlertNotice).order_by(AlertNotice.id))][-1] == "up"
        alerts.notice_step(db, t + timedelta(minutes=21), s)
        assert len(db.scalars(select(AlertNotice)).all()) == 4    # told once, not again


def test_a_maintenance_window_keeps_quiet_until_it_ends(settings, db_factory, policies):
    ids = [add_probed_nas(db_factory, policies, f"ap-{i}", f"127.0.0.4{i}") for i in range(2)]
    h = History(db_factory, confirmations=1)
    t = datetime(2026, 12, 4, 4, 0)                      # 22:00 local on the 3rd
    with db_factory() as db:
        maintenance.add_window(db, db.scalar(select(Site)), "2026-12-03 22:00/2h", settings.tz, "test")
        db.commit()
    for nas_id in ids:
        h.tracker.add(nas_id, 1, f"ap-{nas_id}", True, t - timedelta(minutes=5))
        h.tracker.observe(nas_id, True, t - timedelta(minutes=5))
    h.save(t - timedelta(minutes=5))
    for nas_id in ids:
        h.tracker.observe(nas_id, False, t + timedelta(minutes=10))   # the works begin
    h.tracker.observe(ids[1], True, t + timedelta(minutes=90))         # one is back before the end
    h.save(t + timedelta(minutes=90))
    with db_factory() as db:
        assert alerts.notice_step(db, t + timedelta(minutes=100), settings) == 0
        assert alerts.notice_step(db, t + timedelta(minutes=121), settings) == 1     # still down at the end
        notice = db.scalar(select(AlertNotice))
        assert (notice.nas_id, notice.kind) == (ids[0], "down")
        assert db.get(NodeState, ids[1]).notified == "up"


def test_refusing_smtp_and_a_failing_or_silent_webhook_are_retried_then_recorded(settings, db_factory, policies,
                                                                                 smtp, receiver):
    nas_id = add_probed_nas(db_factory, policies, "ap-1", "127.0.0.51")
    _subscribe(db_factory, "jefa@municipio.mx", "Ejido La Esperanza")
    s = dataclasses.replace(settings, alert_group_seconds=0, smtp_host="127.0.0.1", smtp_port=smtp.port,
                            alert_webhook_url=receiver.url, alert_webhook_chat_id="-100123")
    h = History(db_factory, confirmations=1)
    t = datetime(2026, 11, 26, 12, 0)
    h.tracker.add(nas_id, 1, "ap-1", True, t)
    h.tracker.observe(nas_id, False, t)
    h.save(t)
    with db_factory() as db:
        alerts.notice_step(db, t, s)
        assert alerts.batch_step(db, t, s) == 2
    smtp.refuse()
    receiver.mode = "error"
    sender = Sender(s, db_factory, lambda: True)
    sender.backoff, sender.timeout = (0, 0, 0), 0.5
    for _ in range(4):
        sender.send_due()
    with db_factory() as db:
        rows = {a.channel: a for a in db.scalars(select(Alert))}
    assert (rows["email"].status, rows["email"].attempts) == ("failed", 4)
    assert rows["email"].last_error == "SMTP 550: 5.1.1 mailbox unavailable"
    assert (rows["webhook"].status, rows["webhook"].last_error) == ("failed", "webhook: HTTP 500")
    assert len(receiver.requests) == 4 and smtp.messages == []
    assert receiver.posts()[0]["chat_id"] == "-100123"          # as Telegram's sendMessage wants it
    receiver.mode = "hang"                       # a webhook that never answers: the attempt times out
    with db_factory.begin() as db:
        db.get(Alert, rows["webhook"].id).status, db.get(Alert, rows["webhook"].id).attempts = "pending", 0
    sender.send_due()
    with db_factory() as db:
        assert db.get(Alert, rows["webhook"].id).last_error == "webhook: no answer in time"


def test_conecta_site_set_maintenance(settings, db_factory, policies):
    add_probed_nas(db_factory, policies, "ap-1", "127.0.0.61")
    env = {**os.environ, **settings_env(settings)}

    def site(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(CONECTA), "site", *args], env=env, capture_output=True, text=True, timeout=60)
    added = site("set", "Ejido La Esperanza", "--maintenance", "2099-12-03 22:00/2h")
    assert added.returncode == 0, added.stderr
    assert "maintenance 2099-12-03 22:00 to 2099-12-04 00:00 America/Mexico_City (no alerts)" in added.stdout
    assert "maintenance: 2099-12-03 22:00 to 2099-12-04 00:00" in site("show", "Ejido La Esperanza").stdout
    bad = site("set", "Ejido La Esperanza", "--maintenance", "mañana/2h")
    assert bad.returncode == 1 and "no tiene la forma '2026-12-03 22:00/2h'" in bad.stderr
    assert "1 maintenance window(s) removed" in site("set", "Ejido La Esperanza", "--clear-maintenance").stdout


def test_staff_choose_their_sites_and_admins_plan_maintenance_in_the_console(app, db_factory, policies):
    add_probed_nas(db_factory, policies, "ap-1", "127.0.0.71")
    add_probed_nas(db_factory, policies, "ap-2", "127.0.0.72", site="Plaza Principal", kind="plaza")
    analyst = signed_in(app, db_factory, "analista@city.mx", "analyst")
    html = page(analyst.get("/staff/alerts"))
    assert "El correo no está configurado" in html
    with db_factory() as db:
        plaza = db.scalar(select(Site.id).where(Site.name == "Plaza Principal"))
    assert analyst.post("/staff/alerts/subscriptions", data={"csrf_token": csrf_token(html),
                                                             "site": [str(plaza), "999"]}).status_code == 302
    assert f'value="{plaza}" checked' in page(analyst.get("/staff/alerts"))
    with db_factory() as db:
        assert db.scalars(select(AlertSubscription.site_id)).all() == [plaza]
    admin = signed_in(app, db_factory)
    site_page = page(admin.get(f"/staff/sites/{plaza}"))
    form = {"csrf_token": csrf_token(site_page), "start": "2099-12-03 22:00", "duration": "2h", "note": "poda"}
    assert admin.post(f"/staff/sites/{plaza}/maintenance", data=form).status_code == 302
    assert "2099-12-03 22:00 – 2099-12-04 00:00 poda" in page(admin.get(f"/staff/sites/{plaza}"))
    refused = admin.post(f"/staff/sites/{plaza}/maintenance", data={**form, "duration": "20d"})
    assert refused.status_code == 400 and "como mucho 14 días" in page(refused)
    assert analyst.post(f"/staff/sites/{plaza}/maintenance",
                        data={**form, "csrf_token": csrf_token(html)}).status_code == 403
