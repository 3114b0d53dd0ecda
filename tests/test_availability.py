"""Availability from the monitor's history, cut at local midnights: the query layer, a monitor restarted
after a gap, `conecta report availability`, the API, the console page and its exports."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from datetime import date, datetime, timedelta, timezone

import pytest

from portal.core import availability
from portal.core.errors import InputError
from portal.core.settings import settings_env
from tests.support.monitor import CONECTA, History, add_probed_nas
from tests.support.web import signed_in

# Mexico City is UTC-6 in November: local 22:00 on the 25th is 04:00 UTC on the 26th.
LOCAL = timedelta(hours=6)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local November time as the naive UTC the database holds."""
    return datetime(2026, 11, day, hour, minute) + LOCAL


NOW = at(26, 2)


@pytest.fixture()
def history(db_factory, policies):
    """ap-ejido: up at 22:00 on the 25th, fails from 23:30, down (3 failures), back at 00:30.
    ap-kiosco (same site) is not probed. ap-plaza (another site) is up at 22:00, last probed at 22:10,
    and the monitor is away until 01:00: its period ends at its last probe."""
    ids = {name: add_probed_nas(db_factory, policies, name, ip, probe, site=site)
           for name, ip, probe, site in (("ap-ejido", "127.0.0.21", "icmp", "Ejido La Esperanza"),
                                         ("ap-kiosco", "127.0.0.22", "none", "Ejido La Esperanza"),
                                         ("ap-plaza", "127.0.0.23", "icmp", "Plaza Principal"))}
    h = History(db_factory)
    for name, nas_id in ids.items():
        h.tracker.add(nas_id, 1 if name != "ap-plaza" else 2, name, name != "ap-kiosco", at(25, 21, 59))
    h.tracker.observe(ids["ap-ejido"], True, at(25, 22), 1.0)
    h.tracker.observe(ids["ap-plaza"], True, at(25, 22), 1.0)
    h.tracker.observe(ids["ap-plaza"], True, at(25, 22, 10), 1.0)
    h.save(at(25, 22, 10))
    for minute in (30, 31, 32):
        h.tracker.observe(ids["ap-ejido"], False, at(25, 23, minute), detail="no echo reply")
    h.save(at(25, 23, 32))
    h.tracker.observe(ids["ap-ejido"], False, at(26, 0, 25), detail="no echo reply")
    h.save(at(26, 0, 25))
    h.restart(at(26, 0, 29), gap=timedelta(minutes=5))    # ap-ejido was probed in time: only ap-plaza is cut
    h.tracker.observe(ids["ap-ejido"], True, at(26, 0, 30), 1.0)
    h.save(at(26, 0, 30))
    return ids


def test_availability_by_nas_and_day_cut_at_local_midnight(db_factory, settings, history):
    with db_factory() as db:
        rows = availability.availability(db, date(2026, 11, 25), date(2026, 11, 26), ["nas", "day"], settings.tz, NOW)
    assert rows == [
        {"nas": "ap-ejido", "day": "2026-11-25", "availability": 75.0, "up_seconds": 5400, "down_seconds": 1800,
         "downtime_minutes": 30.0, "outages": 1},
        {"nas": "ap-ejido", "day": "2026-11-26", "availability": 75.0, "up_seconds": 5400, "down_seconds": 1800,
         "downtime_minutes": 30.0, "outages": 0},
        {"nas": "ap-plaza", "day": "2026-11-25", "availability": 100.0, "up_seconds": 600, "down_seconds": 0,
         "downtime_minutes": 0.0, "outages": 0},
    ]


def test_availability_by_site_and_month_and_the_bad_inputs(db_factory, settings, history):
    with db_factory() as db:
        by_site = availability.availability(db, date(2026, 11, 1), date(2026, 11, 30), ["site", "month"],
                                            settings.tz, NOW)
        only_26 = availability.availability(db, date(2026, 11, 26), date(2026, 11, 26), [], settings.tz, NOW)
    assert [(r["site"], r["month"], r["availability"], r["downtime_minutes"], r["outages"]) for r in by_site] == [
        ("Ejido La Esperanza", "2026-11", 75.0, 60.0, 1), ("Plaza Principal", "2026-11", 100.0, 0.0, 0)]
    assert only_26 == [{"availability": 75.0, "up_seconds": 5400, "down_seconds": 1800, "downtime_minutes": 30.0,
                        "outages": 0}]
    for bad in ("site,gender", "day,month", "nas,nas"):
        with pytest.raises(InputError, match="--by"):
            availability.parse_by(bad)


def test_conecta_report_availability(settings, history, tmp_path):
    env = {**os.environ, **settings_env(settings)}

    def report(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(CONECTA), "report", "availability", "--from", "2026-11-25", "--to", "2026-11-26",
                               *args], env=env, capture_output=True, text=True, timeout=60)
    as_csv = report("--by", "site", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    # The command's clock is the real one, later than the 26th: ap-ejido stayed up to its end.
    assert list(csv.DictReader(io.StringIO(as_csv.stdout.removeprefix("\ufeff"))))[0] == {
        "Sitio": "Ejido La Esperanza", "Disponibilidad (%)": "96.15", "Segundos en servicio": "90000",
        "Segundos caído": "3600", "Minutos caído": "60.0", "Caídas": "1"}
    table = report("--by", "nas")
    assert table.stdout.splitlines()[0].split("  ")[:2] == ["Punto de acceso", "Disponibilidad (%)"]
    assert "ap-ejido" in table.stdout and "ap-kiosco" not in table.stdout      # not probed: not watched
    assert report("--by", "gender").returncode == 1
    assert report("--format", "xlsx").returncode == 1                          # needs --output
    out = tmp_path / "a.xlsx"
    assert report("--format", "xlsx", "--output", str(out)).returncode == 0 and out.read_bytes()[:2] == b"PK"


def test_console_page_exports_and_api(app, db_factory, history, clock):
    clock.now = NOW.replace(tzinfo=timezone.utc)
    analyst = signed_in(app, db_factory, "analista@city.mx", "analyst")
    query = "from=2026-11-25&to=2026-11-26&by=nas"
    html = analyst.get(f"/staff/availability?{query}").get_data(as_text=True)
    assert "ap-ejido</td><td>75.00 %</td><td>60.0</td><td>1</td>" in html
    exported = analyst.get(f"/staff/availability/export.csv?{query}")
    assert exported.headers["Content-Disposition"].endswith(".csv")
    assert exported.get_data(as_text=True).splitlines()[1].startswith("ap-ejido,75.0,")
    assert exported.get_data(as_text=True).startswith("\ufeffPunto de acceso,Disponibilidad (%),")
    assert analyst.get(f"/staff/availability/export.xlsx?{query}").data[:2] == b"PK"
    api = analyst.get(f"/api/v1/availability?{query}")
    assert api.status_code == 200 and json.loads(api.data)[0]["nas"] == "ap-ejido"
    assert analyst.get("/api/v1/availability?by=gender").status_code == 400
    assert app.test_client().get(f"/api/v1/availability?{query}").status_code == 401
    assert analyst.get("/staff/availability?from=ayer").status_code == 400
