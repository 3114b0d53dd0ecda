"""The figures people read first, beside the usage tables of portal/core/reports.py: the share of women,
new and returning people, the month-over-month trend, planned against actual GB (pro-rated to date, with
a month-end projection) and sessions per hour of day.

A share is shown only when both counts it is made from reach k people (women and the rest; new and
returning): each of the two is then a cell that could have been published on its own.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core import reports
from portal.core.model import Session, Site, UsageDaily, User

SHARE_GROUPS = ("site", "site_kind", "month", "community")


def _group_column(db: DbSession, group: str):  # noqa: ANN202 - SQL expression
    return {"site": Site.name, "site_kind": Site.kind, "month": reports._month_expr(db),
            "community": reports.COMMUNITY}[group]


def women_share(db: DbSession, first: date, last: date, group: str, min_cell: int) -> list[dict]:
    """Per `group` (site, site_kind, month, community): women, the rest and the share of women in %,
    all None (suppressed) unless women and the rest are each at least `min_cell` distinct people."""
    if group not in SHARE_GROUPS:
        raise reports.ReportError(N_("no se puede agrupar por %(column)r (se puede por %(known)s)"),
                                  column=group[:40], known=", ".join(SHARE_GROUPS))
    column = _group_column(db, group)
    woman = case((UsageDaily.gender == "female", 1), else_=0)
    query = (select(column.label("g"), woman.label("w"), func.count(func.distinct(UsageDaily.user_id)))
             .where(UsageDaily.day >= first, UsageDaily.day <= last).group_by(column, woman).order_by(column))
    if group in ("site", "site_kind"):
        query = query.join(Site, Site.id == UsageDaily.site_id)
    if group == "community":
        query = query.outerjoin(User, User.id == UsageDaily.user_id)
    counts: dict = {}
    for g, w, n in db.execute(query):
        counts.setdefault(g, [0, 0])[0 if w else 1] += n
    return [_share(group, g, women, rest, min_cell) for g, (women, rest) in counts.items()]


def _share(group: str, value: object, women: int, rest: int, min_cell: int) -> dict:
    shown = women >= min_cell and rest >= min_cell
    return {group: value, "women": women if shown else None, "rest": rest if shown else None,
            "share": round(100 * women / (women + rest), 1) if shown else None, "suppressed": not shown}


def new_and_returning(db: DbSession, first: date, last: date, min_cell: int) -> dict:
    """People in the period whose first use ever falls in it (new) and the others (returning); both
    hidden unless each is at least `min_cell` people."""
    first_use = (select(UsageDaily.user_id, func.min(UsageDaily.day).label("first"))
                 .group_by(UsageDaily.user_id).subquery())
    active = (select(UsageDaily.user_id).where(UsageDaily.day >= first, UsageDaily.day <= last).distinct()
              .subquery())
    new = db.scalar(select(func.count()).select_from(active).join(first_use, first_use.c.user_id == active.c.user_id)
                    .where(first_use.c.first >= first)) or 0
    total = db.scalar(select(func.count()).select_from(active)) or 0
    hide = bool(min_cell) and (new < min_cell or total - new < min_cell)
    return {"new": None if hide else new, "returning": None if hide else total - new, "suppressed": hide}


def trend(db: DbSession, today: date, months: int, min_cell: int) -> list[dict]:
    """People, sessions, hours and GB per month for the last `months` months (this one so far), oldest
    first, with the share of women; small months suppressed."""
    first = today.replace(day=1)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    rows = [r for r in reports.usage(db, first, today, ["month"], min_cell) if r["row"] == "cell"]
    shares = {s["month"]: s["share"] for s in women_share(db, first, today, "month", min_cell)}
    return [{**r, "women_share": shares.get(r["month"])} for r in rows]


def planned_vs_actual(db: DbSession, month: str, today: date) -> list[dict]:
    """GB used per site in a month against its plan: the plan pro-rated to `today` (the whole plan for a
    past month), the percentage of that, and the month-end projection at the pace so far."""
    first, last = reports.month_bounds(month)
    days = (last - first).days + 1
    elapsed = max(0, min(days, (today - first).days + 1))
    used = dict(db.execute(select(UsageDaily.site_id, func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
                           .where(UsageDaily.day >= first, UsageDaily.day <= last)
                           .group_by(UsageDaily.site_id)).all())
    rows = []
    for site in db.scalars(select(Site).order_by(Site.name)):
        gb = int(used.get(site.id) or 0) / 1e9
        plan = site.planned_gb_month
        to_date = plan * elapsed / days if plan else None
        rows.append({"site": site.name, "kind": site.kind, "planned_gb": plan, "actual_gb": round(gb, 3),
                     "planned_to_date_gb": None if to_date is None else round(to_date, 2),
                     "percent": round(100 * gb / to_date, 1) if to_date else None,
                     "projected_gb": round(gb * days / elapsed, 2) if elapsed else None})
    return rows


def hour_profile(db: DbSession, first: date, last: date, utc_offset_hours: int) -> list[int]:
    """Sessions started per local hour of day (0–23) in the period (from session records in retention)."""
    start = datetime.combine(first, datetime.min.time()) - timedelta(hours=utc_offset_hours)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time()) - timedelta(hours=utc_offset_hours)
    if db.get_bind().dialect.name == "postgresql":
        hour = func.extract("hour", Session.started_at)
    else:
        hour = cast(func.strftime("%H", Session.started_at), Integer)
    counts = [0] * 24
    for h, n in db.execute(select(hour, func.count()).where(Session.started_at >= start, Session.started_at < end)
                           .group_by(hour)):
        counts[(int(h) + utc_offset_hours) % 24] += n
    return counts
