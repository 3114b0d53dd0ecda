"""The headline figures of the console (portal/core/figures.py) on both engines: the share of women
suppressed only on its own two counts, community reports, plan pro-rated to date with a projection, and
the report periods."""

from __future__ import annotations

from datetime import date

from portal.core import exports, figures, reports, sites
from portal.core.model import UsageDaily, User

DAY = date(2026, 11, 10)


def _people(db, site_id: int, genders: dict[str, int], community: str | None, start: int) -> int:  # noqa: ANN001
    """Add people (users and one usage row each, 1 GB) at a site; return the next free id."""
    uid = start
    for gender, n in genders.items():
        for _ in range(n):
            db.add(User(id=uid, username=f"p{uid}", gender=gender, community=community))
            db.add(UsageDaily(day=DAY, user_id=uid, site_id=site_id, sessions=1, seconds=600, bytes_down=10**9,
                              bytes_up=0, gender=gender, age_band="18-29"))
            uid += 1
    return uid


def test_the_share_of_women_is_hidden_only_by_its_own_two_counts(db_factory, policies):
    with db_factory.begin() as db:
        a = sites.add_site(db, policies, "Parque A", "park", "parque", planned_gb_month=30)
        b = sites.add_site(db, policies, "Plaza B", "plaza", "parque")
        c = sites.add_site(db, policies, "Ejido C", "ejido", "ejido")
        nxt = _people(db, a.id, {"female": 5, "male": 4, "undisclosed": 1}, "Centro", 1)   # 1 undisclosed: no matter
        nxt = _people(db, b.id, {"female": 6, "male": 4}, "Colonia Obrera", nxt)          # 4 others: hidden
        _people(db, c.id, {"female": 4, "male": 9}, None, nxt)                           # 4 women: hidden
        db.add(UsageDaily(day=DAY, user_id=999, site_id=c.id, sessions=1, seconds=1, bytes_down=1, bytes_up=0,
                          gender="male", age_band="60+"))                                 # deleted their data
    with db_factory() as db:
        by_site = {s["site"]: s for s in figures.women_share(db, DAY, DAY, "site", 5)}
        by_kind = {s["site_kind"]: s["share"] for s in figures.women_share(db, DAY, DAY, "site_kind", 5)}
        by_community = {s["community"]: s for s in figures.women_share(db, DAY, DAY, "community", 5)}
        community = reports.usage(db, DAY, DAY, ["community"], 5)
        plan = {p["site"]: p for p in figures.planned_vs_actual(db, "2026-11", DAY)}
    assert by_site["Parque A"] == {"site": "Parque A", "women": 5, "rest": 5, "share": 50.0, "suppressed": False}
    assert by_site["Plaza B"]["share"] is None and by_site["Plaza B"]["women"] is None
    assert by_site["Ejido C"]["suppressed"] and by_site["Ejido C"]["rest"] is None
    # Parks and plazas together: 11 women, 9 others.
    assert by_kind == {"park": 50.0, "plaza": None, "ejido": None}
    assert by_community["Centro"]["share"] == 50.0 and by_community[""]["suppressed"]   # 4 women, 10 others
    cells = {r["community"]: r for r in community if r["row"] == "cell"}
    assert cells["Centro"]["users"] == 10 and cells["Colonia Obrera"]["users"] == 10
    assert cells[""]["users"] == 14                        # no community given, or data deleted
    assert community[-1]["row"] == "total" and community[-1]["users"] == 34
    csv = exports.to_csv(community, ["community"])
    assert "Sin comunidad registrada,14," in csv and csv.startswith("\ufeffComunidad o colonia,Personas,")
    # Day 10 of 30: a third of the 30 GB plan is due; 10 GB used is 100 % of it and 30 GB at that pace.
    assert plan["Parque A"]["planned_to_date_gb"] == 10.0 and plan["Parque A"]["actual_gb"] == 10.0
    assert plan["Parque A"]["percent"] == 100.0 and plan["Parque A"]["projected_gb"] == 30.0
    assert plan["Plaza B"]["planned_to_date_gb"] is None and plan["Plaza B"]["projected_gb"] == 30.0


def test_periods_and_the_last_complete_month():
    today = date(2026, 12, 2)
    assert reports.period("last-30-days", today) == (date(2026, 11, 3), today)
    assert reports.period("this-month", today) == (date(2026, 12, 1), today)
    assert reports.period("last-month", today) == (date(2026, 11, 1), date(2026, 11, 30))
    assert reports.period("this-year", today) == (date(2026, 1, 1), today)
    assert reports.default_period(today) == reports.period("last-30-days", today)
    assert reports.last_complete_month(date(2026, 1, 15)) == "2025-12"
    for bad in ("forever", "'; DROP TABLE users"):
        try:
            reports.period(bad, today)
        except reports.ReportError as exc:
            assert "periodo desconocido" in str(exc) and "unknown period" in exc.say("en")
        else:
            raise AssertionError(bad)


def test_exports_neutralise_formulas_in_names_and_read_as_words():
    rows = [{"site": "=cmd|' /C calc'!A0", "community": " @SUM(A1)", "gender": "female", "users": 9, "sessions": 1,
             "seconds": 7200, "bytes_down": 2 * 10**9, "bytes_up": 0, "suppressed": False, "row": "cell"}]
    text = exports.to_csv(rows, ["site", "community", "gender"])
    assert "\r\n'=cmd|' /C calc'!A0,' @SUM(A1),Mujer,9,1,2.0,7200,2.0,2000000000," in text
    from io import BytesIO

    from openpyxl import load_workbook
    sheet = load_workbook(BytesIO(exports.to_xlsx(rows, ["site", "community", "gender"]))).active
    assert [c.value for c in sheet[2]][:4] == ["'=cmd|' /C calc'!A0", "' @SUM(A1)", "Mujer", 9]
    assert sheet[2][0].data_type == "s" and sheet[2][5].number_format == "#,##0.0"
