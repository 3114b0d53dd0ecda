"""The citizens' side of node health: /estado lists each site in service or with a known fault since
HH:MM (no access point names, no addresses), and a fault report from a site known to be down is
answered "ya lo sabemos"."""

from __future__ import annotations

import re
from datetime import datetime

from tests.support.monitor import History, add_probed_nas
from tests.support.portal import arrive_and_register, coova_url
from tests.support.web import csrf_token, page

# The test clock reads 2026-11-26 00:00 UTC, 18:00 on the 25th in Mexico City: 17:30 local is 23:30 UTC.
DOWN_AT = datetime(2026, 11, 25, 23, 30)


def _history(db_factory, fleet_ids, plaza_id: int) -> None:
    """Parque Central's CoovaChilli down since 17:30 local, its MikroTik up; the plaza's access point up."""
    h = History(db_factory, confirmations=1)
    for nas_id in (fleet_ids["coova"], fleet_ids["mikrotik"], plaza_id):
        h.tracker.add(nas_id, 1, "ap", True, datetime(2026, 11, 25, 23, 0))
        h.tracker.observe(nas_id, True, datetime(2026, 11, 25, 23, 0))
    h.tracker.observe(fleet_ids["coova"], False, DOWN_AT)
    h.save(DOWN_AT)


def test_estado_names_sites_only(client, db_factory, policies, fleet_ids):
    plaza = add_probed_nas(db_factory, policies, "ap-plaza-1", "127.0.0.81", site="Plaza Principal", kind="plaza")
    add_probed_nas(db_factory, policies, "ap-kiosco", "127.0.0.82", site="Centro Digital", kind="digital-center")
    _history(db_factory, fleet_ids, plaza)
    html = page(client.get("/estado"))
    found = re.findall(r'<li class="site-\w+">(.*?)</li>', html, re.S)
    items = [" ".join(re.sub(r"<[^>]+>", "", li).split()) for li in found]
    assert items == ["Parque Central: falla conocida desde las 17:30", "Centro Digital: sin información",
                     "Plaza Principal: en servicio"]
    assert "ap-" not in html and not re.search(r"\b127\.0\.0\.\d+\b", html)
    assert '<meta http-equiv="refresh" content="60">' in html
    assert 'href="/estado"' in page(client.get(coova_url()))                  # linked from the splash footer
    english = page(client.get("/estado?lang=en"))
    assert "Parque Central</strong>: known fault since 17:30" in english


def test_a_fault_report_at_a_site_known_to_be_down_says_we_know(client, db_factory, policies, fleet_ids):
    arrive_and_register(client, coova_url())
    status = page(client.get("/status"))
    assert "Ya sabemos" not in status
    report = client.post("/fault", data={"csrf_token": csrf_token(status), "category": "no-signal", "text": ""})
    assert report.headers["Location"].endswith("sent=1")                      # nothing known: just thanks
    assert "Gracias. Recibimos tu reporte." in page(client.get("/status?sent=1"))
    _history(db_factory, fleet_ids, add_probed_nas(db_factory, policies, "ap-plaza-1", "127.0.0.81",
                                                   site="Plaza Principal", kind="plaza"))
    status = page(client.get("/status"))
    assert "Ya sabemos de una falla en este sitio desde las 17:30." in status
    report = client.post("/fault", data={"csrf_token": csrf_token(status), "category": "no-signal", "text": ""})
    assert report.headers["Location"].endswith("sent=known")
    answer = page(client.get(report.headers["Location"]))
    assert "Ya lo sabemos: hay una falla en este sitio desde las 17:30" in answer
