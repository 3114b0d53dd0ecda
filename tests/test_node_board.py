"""The node board tells the truth: probe settings (CLI and console), and what staff read for each
access point — probed by the real monitor against test hosts in network namespaces."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime

import pytest
from sqlalchemy import select

from portal.core.errors import InputError
from portal.core.model import AuditEntry, Nas, Session, utcnow
from portal.core.probes import ProbeSpec, parse_probe
from portal.core.settings import settings_env
from tests.support.monitor import CONECTA, History, MonitorThread, add_probed_nas, fast, state_of, wait_for
from tests.support.netns import TestHost, netns_unavailable
from tests.support.web import csrf_token, page, signed_in

NAS_IP = "127.0.0.9"


@pytest.mark.parametrize(("text", "spec"), [
    ("icmp", ProbeSpec("icmp")), ("ICMP", ProbeSpec("icmp")), ("none", ProbeSpec("none")),
    ("tcp:8080", ProbeSpec("tcp", port=8080)),
    ("http:http://127.0.0.9/status", ProbeSpec("http", url="http://127.0.0.9/status")),
    ("https://ap1.parque.example:8443/", ProbeSpec("http", url="https://ap1.parque.example:8443/")),
])
def test_probe_specs(text, spec):
    assert parse_probe(text, NAS_IP) == spec
    assert parse_probe(str(spec), NAS_IP) == spec              # the stored text reads back the same


@pytest.mark.parametrize(("text", "fragment"), [
    ("ping", "sonda desconocida"), ("tcp:0", "no es un número de puerto"), ("tcp:http", "no es un número de puerto"),
    ("tcp:70000", "no es un número de puerto"),
    ("http:http://10.1.2.3/", "no es la dirección de este NAS"), ("http:ftp://127.0.0.9/", "sonda desconocida"),
    ("http:http:///x", "no nombra ningún host"), ("http:http://127.0.0.9:99999/", "no es una URL"),
    ("icmp\nnone", "caracteres de control"), ("http:http://127.0.0.9/" + "a" * 300, "como mucho 250"),
])
def test_bad_probes_are_refused_with_the_reason(text, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_probe(text, NAS_IP)


def _conecta(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([str(CONECTA), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_nas_add_and_set_probe_on_the_command_line(settings, db_factory, policies):
    add_probed_nas(db_factory, policies, "ap-existente", "127.0.0.8")
    added = _conecta(settings, "nas", "add", "ap-kiosco", "--site", "Ejido La Esperanza", "--ip", NAS_IP,
                     "--secret", "7f3a9c2e5b8d1f4a6c0e", "--vendor", "mikrotik", "--probe", "tcp:8291")
    assert added.returncode == 0, added.stderr
    refused = _conecta(settings, "nas", "set", "ap-kiosco", "--probe", "http:http://10.9.9.9/")
    assert refused.returncode == 1 and "las sondas solo llegan al NAS" in refused.stderr
    assert "Traceback" not in refused.stderr
    changed = _conecta(settings, "nas", "set", "ap-kiosco", "--probe", "none")
    assert changed.returncode == 0 and "probe changed" in changed.stdout
    with db_factory() as db:
        probes = dict(db.execute(select(Nas.name, Nas.probe)).all())
    assert probes == {"ap-existente": "icmp", "ap-kiosco": "none"}    # ICMP unless told otherwise


def test_console_sets_a_probe_and_refuses_a_bad_one(app, db_factory, policies):
    nas_id = add_probed_nas(db_factory, policies, "ap-kiosco", NAS_IP)
    admin = signed_in(app, db_factory)
    assert "eco ICMP" in page(admin.get("/staff/nas"))
    html = page(admin.get(f"/staff/nas/{nas_id}"))      # the NAS's page edits everything `nas set` does
    assert 'value="icmp"' in html
    assert admin.post(f"/staff/nas/{nas_id}", data={"csrf_token": csrf_token(html),
                                                    "probe": "tcp:8291"}).status_code == 302
    bad = admin.post(f"/staff/nas/{nas_id}", data={"csrf_token": csrf_token(html), "probe": "tcp:0"})
    assert bad.status_code == 400 and "no es un número de puerto" in page(bad)
    with db_factory() as db:
        assert db.get(Nas, nas_id).probe == "tcp:8291"
        audited = db.scalar(select(AuditEntry.target).where(AuditEntry.action == "nas-edit"))
    assert audited == "ap-kiosco: probe=tcp:8291"
    assert "tcp:8291" in page(admin.get("/staff/nas"))


def _state_cells(html: str) -> list[tuple[str, str]]:
    """(NAS name, state text) for each row of the board, in order."""
    rows = re.findall(r'<tr class="state-\w+"><td class="state-\w+"[^>]*>(.*?)</td><td[^>]*>.*?</td>'
                      r'<td[^>]*>(.*?)</td>', html, re.S)
    return [(name, " ".join(state.split())) for state, name in rows]


def test_the_board_tells_the_truth(app, db_factory, policies, settings):
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    idle, busy, broken = TestHost(), TestHost(), TestHost()
    try:
        ids = {name: add_probed_nas(db_factory, policies, name, host.ip)
               for name, host in (("ap-idle", idle), ("ap-busy", busy), ("ap-broken", broken))}
        add_probed_nas(db_factory, policies, "ap-unprobed", NAS_IP, probe="none")
        with db_factory.begin() as db:         # someone is connected at ap-busy
            db.add(Session(nas_id=ids["ap-busy"], site_id=1, acct_session_id="s1", username="ana",
                           started_at=utcnow(), updated_at=utcnow(), is_open=True))
        admin = signed_in(app, db_factory)
        before = page(admin.get("/staff/"))
        assert "El monitor no está sondeando" in before
        assert ("ap-idle", "esperando el primer sondeo") in _state_cells(before)    # never "caído" untested
        broken.down()
        monitor = MonitorThread(fast(settings), db_factory).start()
        try:
            wait_for(lambda: [state_of(db_factory, ids[n]) for n in ("ap-idle", "ap-busy", "ap-broken")]
                     == ["up", "up", "down"])
            html = page(admin.get("/staff/?refresh=30"))
        finally:
            monitor.stop()
    finally:
        for host in (idle, busy, broken):
            host.close()
    cells = _state_cells(html)
    assert cells[0][0] == "ap-broken" and cells[0][1].startswith("caído desde ")     # down first
    assert dict(cells) == {"ap-broken": cells[0][1], "ap-idle": "en servicio · sin clientes",
                           "ap-busy": "en servicio", "ap-unprobed": "sin sondeo"}
    assert '<meta http-equiv="refresh" content="30">' in html                 # asked for: a wall screen
    assert 'http-equiv="refresh"' not in page(admin.get("/staff/"))            # not by default (WCAG 2.2.1)
    assert "El monitor no está sondeando" not in html and "no echo reply" in html
    assert "En servicio: 2 · sin respuesta: 0 · caídos: 1 · sin sondeo: 1" in html


def test_failures_not_yet_confirmed_read_sin_respuesta(app, db_factory, policies):
    nas_id = add_probed_nas(db_factory, policies, "ap-dudoso", NAS_IP)
    h = History(db_factory, confirmations=3)
    h.tracker.add(nas_id, 1, "ap-dudoso", True, datetime(2026, 11, 25, 23, 0))
    h.tracker.observe(nas_id, True, datetime(2026, 11, 25, 23, 0))
    h.tracker.observe(nas_id, False, datetime(2026, 11, 25, 23, 1), detail="no echo reply")
    h.save(datetime(2026, 11, 25, 23, 1))
    html = page(signed_in(app, db_factory).get("/staff/"))
    assert _state_cells(html) == [("ap-dudoso", "sin respuesta (1 de 3 sondeos fallidos)")]
