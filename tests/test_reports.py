"""Report figures against sums the test computes from accounting it sent through real RADIUS."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date

import pytest

from portal.core import exports, reports
from tests.support.builders import add_user, settle
from tests.support.radiusclient import Nas

GENDERS = ["female", "male", "female", "nonbinary", "female", "male", "undisclosed"]


def _send_usage(radius_server, dictionary, db_factory, policies, people: int) -> dict:
    """Each person: one session through RADIUS; returns expected totals per gender."""
    nas = Nas(radius_server, dictionary)
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i in range(people):
        gender = GENDERS[i % len(GENDERS)]
        add_user(db_factory, policies, f"p{i}", f"pass{i:04d}", gender=gender, age_band="18-29")
        reply = nas.auth(f"p{i}", f"pass{i:04d}", mac=f"AA-BB-CC-00-01-{i:02X}")
        seconds, down, up = 60 * (i + 1), 1000 * (i + 7), 10 * i
        nas.acct("Start", f"r{i}", f"p{i}", reply=reply, mac=f"AA-BB-CC-00-01-{i:02X}")
        nas.acct("Stop", f"r{i}", f"p{i}", seconds, up, down, reply=reply, mac=f"AA-BB-CC-00-01-{i:02X}")
        for key in (gender, "*"):
            row = expected[key]
            row["users"] += 1
            row["sessions"] += 1
            row["seconds"] += seconds
            row["bytes_down"] += down
            row["bytes_up"] += up
    settle(radius_server)
    return expected


def test_usage_by_gender_matches_what_was_sent(radius_server, dictionary, db_factory, policies, clock):
    expected = _send_usage(radius_server, dictionary, db_factory, policies, 14)
    day = clock().astimezone(radius_server.settings.tz).date()
    with db_factory() as db:
        rows = reports.usage(db, day.replace(day=1), day, ["site", "gender"], min_cell=0)
        total = reports.usage(db, day, day, [], min_cell=0)
    by_gender = {r["gender"]: r for r in rows if r["row"] == "cell"}
    assert set(by_gender) == {"female", "male", "nonbinary", "undisclosed"}
    for gender, row in by_gender.items():
        assert row["site"] == "Parque Central"
        assert {m: row[m] for m in reports.METRICS} == dict(expected[gender])
    assert rows[-1]["row"] == "total" and len(rows) == 5
    assert {m: rows[-1][m] for m in reports.METRICS} == dict(expected["*"])
    assert {m: total[0][m] for m in reports.METRICS} == dict(expected["*"])


@pytest.mark.parametrize(("people", "suppressed"), [(4, True), (5, False), (6, False)])
def test_small_cells_are_suppressed_below_k(people, suppressed, radius_server, dictionary, db_factory,
                                            policies, clock):
    nas = Nas(radius_server, dictionary)
    for i in range(people):
        add_user(db_factory, policies, f"v{i}", f"pass{i:04d}", gender="female")
        nas.acct("Stop", f"v{i}", f"v{i}", 60, 0, 1000, mac=f"AA-BB-CC-00-02-{i:02X}")
    settle(radius_server)
    day = clock().astimezone(radius_server.settings.tz).date()
    with db_factory() as db:
        row, total = reports.usage(db, day, day, ["gender"], min_cell=5)
    assert row["suppressed"] is suppressed and total["suppressed"] is suppressed
    assert total["row"] == "total"     # one cell: the total is that cell, hidden with it
    if suppressed:
        assert all(row[m] is None for m in reports.METRICS)
    else:
        assert (row["users"], row["seconds"], row["bytes_down"]) == (people, 60 * people, 1000 * people)


def test_cli_formats_and_bad_input(radius_server, dictionary, db_factory, policies, clock, settings, tmp_path):
    _send_usage(radius_server, dictionary, db_factory, policies, 7)
    day = clock().astimezone(radius_server.settings.tz).date().isoformat()
    env = {**os.environ, "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_DATA_DIR": str(settings.data_dir)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "portal", "report", "usage", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    out = run("--from", day, "--to", day, "--by", "gender", "--format", "csv", "--min-cell", "3")
    assert out.stdout.startswith("\ufeffGénero,Personas,Sesiones,Horas,Segundos,GB de bajada,Bytes de bajada,")
    rows = list(csv.DictReader(io.StringIO(out.stdout.removeprefix("\ufeff"))))
    assert [r["Género"] for r in rows] == ["Mujer", "Hombre", "No binario", "Prefiere no decir",
                                           "Celdas ocultas, juntas", "Total"]
    assert [r["Fila"] for r in rows] == ["Celda"] * 4 + ["Celdas ocultas, juntas", "Total"]
    assert rows[-1]["Personas"] == "7" and rows[-2]["Personas"] == ""
    assert rows[0]["Personas"] == "3" and rows[0]["Oculta (menos de k personas)"] == "no"
    assert rows[2]["Personas"] == "" and rows[2]["Oculta (menos de k personas)"] == "sí"   # one nonbinary person
    assert float(rows[-1]["Horas"]) == round(int(rows[-1]["Segundos"]) / 3600, 1)
    data = json.loads(run("--from", day, "--to", day, "--by", "gender,day", "--format", "json").stdout)
    cells = [r for r in data if r["row"] == "cell"]
    assert cells and all(r["suppressed"] for r in cells)                        # default K=5
    other, total = data[len(cells):]          # all seven people: shown together, adding up to the total
    assert other["sessions"] == total["sessions"] == 7 and total["users"] == 7 and other["users"] is None
    xlsx = tmp_path / "u.xlsx"
    assert run("--from", day, "--to", day, "--by", "site", "--format", "xlsx", "--output", str(xlsx),
               "--min-cell", "0").returncode == 0
    from openpyxl import load_workbook
    sheet = load_workbook(xlsx).active
    assert [c.value for c in sheet[1]][:2] == ["Sitio", "Personas"] and sheet[2][1].value == 7
    assert sheet[1][0].font.bold and sheet[2][3].number_format == "#,##0.0"          # hours
    for bad, message in ((("--from", "2026-02-30", "--to", day), "no es una fecha"),
                         (("--from", day, "--to", "2020-01-01"), "es anterior a la inicial"),
                         (("--from", "2019-01-01", "--to", day), "más de tres años"),
                         (("--from", "1999-12-31", "--to", day), "fuera del rango"),
                         (("--from", day, "--to", day, "--by", "site;DROP TABLE users"), "no se puede agrupar")):
        result = run(*bad)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_spreadsheet_formulas_are_neutralised():
    rows = [reports.suppress({"site": "=HYPERLINK(\"http://x\")", "users": 9, "sessions": 1, "seconds": 1,
                              "bytes_down": 1, "bytes_up": 1, "row": "cell"}, 5)]
    text = exports.to_csv(rows, ["site"])
    assert "'=HYPERLINK" in text
    assert reports.month_bounds("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))


def test_monthly_rollup_agrees_with_the_daily_one(radius_server, dictionary, db_factory, policies, clock):
    from datetime import timedelta
    _send_usage(radius_server, dictionary, db_factory, policies, 9)
    first, last = reports.month_bounds(clock().astimezone(radius_server.settings.tz).strftime("%Y-%m"))
    with db_factory() as db:
        monthly = reports.usage(db, first, last, ["site", "gender", "month"], min_cell=0)    # whole month
        daily = reports.usage(db, first - timedelta(days=1), last, ["site", "gender", "month"], min_cell=0)
    assert monthly == daily and sum(r["users"] for r in monthly if r["row"] == "cell") == 9


def test_hidden_cells_add_up_to_the_total(radius_server, dictionary, db_factory, policies, clock):
    expected = _send_usage(radius_server, dictionary, db_factory, policies, 14)   # 6 women, 4 men, 2 + 2
    day = clock().astimezone(radius_server.settings.tz).date()
    with db_factory() as db:
        rows = reports.usage(db, day, day, ["gender"], min_cell=5)
    shown = {r["gender"]: r for r in rows if r["row"] == "cell" and not r["suppressed"]}
    assert set(shown) == {"female"}
    other, total = rows[-2:]
    assert (other["row"], total["row"]) == ("other", "total")
    for metric in ("sessions", "seconds", "bytes_down", "bytes_up"):
        assert other[metric] == sum(expected[g][metric] for g in ("male", "nonbinary", "undisclosed"))
        assert shown["female"][metric] + other[metric] == total[metric] == expected["*"][metric]
    assert total["users"] == 14 and other["users"] is None


def test_one_hidden_cell_takes_the_next_smallest_with_it():
    cells = [{"users": n} for n in (10, 6, 3, 8)]
    assert reports.hidden_cells(cells, 5) == {2, 1}      # 3 alone could be worked out from the total
    assert reports.hidden_cells(cells, 3) == set()
    assert reports.hidden_cells([{"users": 1}, {"users": 2}, {"users": 9}], 5) == {0, 1, 2}   # 1 + 2 < 5
    assert reports.hidden_cells([{"users": 2}, {"users": 3}, {"users": 9}], 5) == {0, 1}


def test_cli_slow_lane_report(db_factory, settings):
    """`conecta report slow-lane`: the people who reached it, their sessions in it and its bytes, only over
    the rows of people who reached it, with the same suppression."""
    from portal.core.model import UsageDaily
    day = date(2026, 11, 20)
    with db_factory.begin() as db:
        for uid, gender, slow_sessions, slow_bytes in ((1, "female", 1, 300), (2, "female", 0, 0),
                                                       (3, "male", 2, 500), (4, "female", 0, 40)):
            db.add(UsageDaily(day=day, user_id=uid, site_id=1, sessions=3, seconds=60, bytes_down=10**6,
                              bytes_up=10, gender=gender, age_band="18-29", slow_sessions=slow_sessions,
                              slow_bytes=slow_bytes))
    env = {**os.environ, "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_DATA_DIR": str(settings.data_dir)}
    args = [sys.executable, "-m", "portal", "report", "slow-lane", "--from", "2026-11-20", "--to", "2026-11-20",
            "--by", "gender", "--format", "csv"]
    out = subprocess.run([*args, "--min-cell", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "\ufeffGénero,Personas,Sesiones,GB a velocidad reducida,Bytes a velocidad reducida,"
        "Oculta (menos de k personas),Fila",
        "Mujer,2,1,0.0,340,no,Celda", "Hombre,1,2,0.0,500,no,Celda", "Total,3,3,0.0,840,no,Total"]
    hidden = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert hidden.stdout.splitlines()[1:] == ["Mujer,,,,,sí,Celda", "Hombre,,,,,sí,Celda", "Total,,,,,sí,Total"]
