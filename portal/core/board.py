"""The network now, for the staff console: the node board and today's figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from portal.core.model import FaultReport, Nas, Session, Site, UsageDaily

SEEN_KEY = "nas:seen"    # Redis hash: NAS id -> epoch of its last valid packet (written by the RADIUS daemon)


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
