"""Queries behind the staff console: the network now, the node board, and the program's figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import redis
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session as DbSession

from portal import reports
from portal.model import FaultReport, Nas, Session, Site, UsageDaily
from radius.nas import SEEN_KEY


@dataclass(frozen=True)
class Node:
    """One row of the node board."""

    id: int
    name: str
    site_id: int
    site: str
    vendor: str
    ip: str
    last_seen: datetime | None
    sessions_now: int
    open_faults: int
    up: bool


def node_board(db: DbSession, r: redis.Redis | None, interim_of: dict[str, int], multiple: float,
               now: datetime) -> list[Node]:
    """Every NAS with its last packet (Redis, else SQL), live sessions and open faults.

    A NAS is down when silent for longer than `multiple` interim intervals of its site's policy.
    """
    seen = {}
    if r is not None:
        try:
            seen = {int(k): datetime.utcfromtimestamp(float(v)) for k, v in r.hgetall(SEEN_KEY).items()}
        except (redis.RedisError, ValueError):
            seen = {}
    live = dict(db.execute(select(Session.nas_id, func.count()).where(Session.is_open.is_(True))
                           .group_by(Session.nas_id)).all())
    faults = dict(db.execute(select(FaultReport.nas_id, func.count()).where(FaultReport.status != "resolved")
                             .group_by(FaultReport.nas_id)).all())
    nodes = []
    rows = db.execute(select(Nas, Site.name, Site.policy).join(Site, Site.id == Nas.site_id)
                      .order_by(Site.name, Nas.name))
    for nas, site, policy in rows:
        limit = timedelta(seconds=interim_of.get(policy, 300) * multiple)
        last = max([t for t in (seen.get(nas.id), nas.last_seen) if t is not None], default=None)
        nodes.append(Node(nas.id, nas.name, nas.site_id, site, nas.vendor, nas.ip, last, live.get(nas.id, 0),
                          faults.get(nas.id, 0), last is not None and now - last <= limit))
    return nodes


def overview(db: DbSession, today: date) -> dict[str, int]:
    """People online now, and sessions, people and bytes today."""
    online = db.scalar(select(func.count(func.distinct(Session.user_id))).where(Session.is_open.is_(True))) or 0
    row = db.execute(select(func.count(func.distinct(UsageDaily.user_id)), func.sum(UsageDaily.sessions),
                            func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
                     .where(UsageDaily.day == today)).one()
    return {"online": online, "people_today": row[0] or 0, "sessions_today": int(row[1] or 0),
            "bytes_today": int(row[2] or 0)}


def planned_vs_actual(db: DbSession, month: str) -> list[dict]:
    """GB used per site in a month against its plan, as a percentage."""
    first, last = reports.month_bounds(month)
    used = dict(db.execute(select(UsageDaily.site_id, func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
                           .where(UsageDaily.day >= first, UsageDaily.day <= last)
                           .group_by(UsageDaily.site_id)).all())
    rows = []
    for site in db.scalars(select(Site).order_by(Site.name)):
        gb = int(used.get(site.id) or 0) / 1e9
        plan = site.planned_gb_month
        rows.append({"site": site.name, "kind": site.kind, "planned_gb": plan, "actual_gb": round(gb, 3),
                     "percent": round(100 * gb / plan, 1) if plan else None})
    return rows


def new_and_returning(db: DbSession, first: date, last: date, min_cell: int) -> dict:
    """People in the period whose first use ever falls in it (new) and the others (returning)."""
    first_use = (select(UsageDaily.user_id, func.min(UsageDaily.day).label("first"))
                 .group_by(UsageDaily.user_id).subquery())
    active = (select(UsageDaily.user_id).where(UsageDaily.day >= first, UsageDaily.day <= last).distinct()
              .subquery())
    new = db.scalar(select(func.count()).select_from(active).join(first_use, first_use.c.user_id == active.c.user_id)
                    .where(first_use.c.first >= first)) or 0
    total = db.scalar(select(func.count()).select_from(active)) or 0
    hide = min_cell and (new < min_cell or total - new < min_cell)
    return {"new": None if hide else new, "returning": None if hide else total - new, "suppressed": bool(hide)}


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


def women_share(rows: list[dict]) -> dict[str, float | None]:
    """Share of women among users per site, from a site × gender report (None where suppressed)."""
    totals: dict[str, list] = {}
    for row in rows:
        if row["row"] != "cell":
            continue
        entry = totals.setdefault(row["site"], [0, 0, False])
        if row["suppressed"]:
            entry[2] = True
            continue
        entry[1] += row["users"]
        if row["gender"] == "female":
            entry[0] += row["users"]
    return {site: (None if hidden or not total else round(100 * women / total, 1))
            for site, (women, total, hidden) in totals.items()}
