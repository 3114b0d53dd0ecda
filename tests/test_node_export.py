"""The node list exported with states (console and CLI), and the sites on a map drawn on the server with
links to OpenStreetMap — no third-party script."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from datetime import datetime

from sqlalchemy import update

from portal.core.model import Site
from portal.core.settings import settings_env
from tests.support.monitor import CONECTA, History, add_probed_nas
from tests.support.web import page, signed_in


def _fleet(db_factory, policies) -> dict[str, int]:
    """ap-ejido down since 17:30 local (23:30 UTC), ap-plaza up, ap-kiosco not probed; the ejido and the
    plaza have a location, the digital centre none."""
    ids = {"ap-ejido": add_probed_nas(db_factory, policies, "ap-ejido", "127.0.0.91"),
           "ap-plaza": add_probed_nas(db_factory, policies, "ap-plaza", "127.0.0.92", site="Plaza Principal",
                                      kind="plaza"),
           "ap-kiosco": add_probed_nas(db_factory, policies, "ap-kiosco", "127.0.0.93", probe="none",
                                       site="Centro Digital", kind="digital-center")}
    with db_factory.begin() as db:
        db.execute(update(Site).where(Site.name == "Ejido La Esperanza").values(lat=19.2921, lon=-99.6532))
        db.execute(update(Site).where(Site.name == "Plaza Principal").values(lat=19.4326, lon=-99.1332))
    h = History(db_factory, confirmations=1)
    for name in ("ap-ejido", "ap-plaza"):
        h.tracker.add(ids[name], 1, name, True, datetime(2026, 11, 25, 23, 0))
        h.tracker.observe(ids[name], True, datetime(2026, 11, 25, 23, 0), 1.25)
    h.tracker.add(ids["ap-kiosco"], 3, "ap-kiosco", False, datetime(2026, 11, 25, 23, 0))
    h.tracker.observe(ids["ap-ejido"], False, datetime(2026, 11, 25, 23, 30), detail="no echo reply")
    h.save(datetime(2026, 11, 25, 23, 30))
    return ids


def test_node_list_exports_in_the_console(app, db_factory, policies):
    _fleet(db_factory, policies)
    analyst = signed_in(app, db_factory, "analista@city.mx", "analyst")
    text = analyst.get("/staff/nodes/export.csv").get_data(as_text=True)
    assert text.startswith("\ufeffSitio,Punto de acceso,Estado,Desde,")          # Excel reads UTF-8 with the BOM
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [(r["Punto de acceso"], r["Estado"], r["Desde"], r["Detalle"]) for r in rows] == [
        ("ap-ejido", "caído", "2026-11-25T17:30:00-06:00", "no echo reply"),     # local, ISO 8601 with the offset
        ("ap-kiosco", "sin sondeo", "2026-11-25T17:00:00-06:00", ""),
        ("ap-plaza", "en servicio", "2026-11-25T17:00:00-06:00", "")]
    assert rows[2]["Ida y vuelta (ms)"] == "1.2" and rows[2]["Sondeo"] == "icmp"
    assert json.loads(analyst.get("/staff/nodes/export.json").data)[0]["state"] == "down"
    xlsx = analyst.get("/staff/nodes/export.xlsx")
    assert xlsx.data[:2] == b"PK" and "conecta-nodos-" in xlsx.headers["Content-Disposition"]
    assert analyst.get("/staff/nodes/export.pdf").status_code == 404


def test_the_map_is_drawn_on_the_server_with_links_to_openstreetmap(app, db_factory, policies):
    _fleet(db_factory, policies)
    analyst = signed_in(app, db_factory, "analista@city.mx", "analyst")
    html = page(analyst.get("/staff/map"))
    assert ('href="https://www.openstreetmap.org/?mlat=19.292100&amp;mlon=-99.653200#map=17/19.292100/-99.653200"'
            in html)
    assert "Centro Digital</td><td class=\"state-unprobed\">sin información</td><td>sin ubicación" in html
    assert "<script" not in html
    svg = analyst.get("/staff/map.svg")
    text = svg.get_data(as_text=True)
    # An image: pygal's inline config never runs there (and the CSP forbids it); nothing is fetched.
    assert svg.mimetype == "image/svg+xml" and not re.search(r"<script[^>]*src=", text)
    assert svg.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Ejido La Esperanza" in text and "Plaza Principal" in text and "Centro Digital" not in text
    assert text.count("falla conocida") >= 1


def test_an_empty_map_says_so_in_spanish(app, db_factory):
    analyst = signed_in(app, db_factory, "analista@city.mx", "analyst")
    text = analyst.get("/staff/map.svg").get_data(as_text=True)
    assert "Sin datos" in text and "No data" not in text


def test_conecta_report_nodes(settings, db_factory, policies):
    _fleet(db_factory, policies)
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run([str(CONECTA), "report", "nodes", "--format", "csv"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.removeprefix("\ufeff"))))
    assert [(r["Punto de acceso"], r["Estado"]) for r in rows] == [("ap-ejido", "caído"), ("ap-kiosco", "sin sondeo"),
                                                                   ("ap-plaza", "en servicio")]
