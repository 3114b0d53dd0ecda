"""The network now, for the staff console: the node board and today's figures.

Whether an access point works is what the monitor's probes say (portal/core/nodestate.py); RADIUS
traffic is shown beside it and is no verdict: an access point with nobody connected sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from portal.core.model import FaultReport, MonitorStatus, Nas, NodeState, Session, Site, UsageDaily

SEEN_KEY = "nas:seen"    # Redis hash: NAS id -> epoch of its last valid packet (written by the RADIUS daemon)
ORDER = {"down": 0, "failing": 1, "pending": 2, "unprobed": 3, "up": 4}   # what needs eyes first


@dataclass(frozen=True)
class Node:
    """One row of the node board."""

    id: int
    name: str
    site_id: int
    site: str
    vendor: str
    ip: str
    probe: str
    state: str                      # pending | up | failing | down | unprobed
    state_since: datetime | None
    failures: int
    latency_ms: float | None
    detail: str | None
    last_probe: datetime | None
    last_seen: datetime | None      # the last RADIUS packet
    sessions_now: int
    open_faults: int
    radius_quiet: bool              # no packet for the site policy's interim interval × CONECTA_NODE_DOWN_AFTER

    @property
    def up(self) -> bool:
        """True when the probes say it answers."""
        return self.state == "up"


@dataclass(frozen=True)
class MonitorHealth:
    """Whether a monitor is at work: its last heartbeat, and the interval it probes at."""

    alive: bool
    heartbeat: datetime | None
    interval: float | None


def monitor_health(db: DbSession, now: datetime) -> MonitorHealth:
    """A monitor is alive when its heartbeat (once a second while it works) is under 30 s old."""
    row = db.get(MonitorStatus, 1)
    if row is None or row.heartbeat is None:
        return MonitorHealth(False, None, None)
    return MonitorHealth(now - row.heartbeat < timedelta(seconds=30), row.heartbeat, row.interval)


def _last_packets(r: redis.Redis | None) -> dict[int, datetime]:
    if r is None:
        return {}
    try:
        return {int(k): datetime.utcfromtimestamp(float(v)) for k, v in r.hgetall(SEEN_KEY).items()}
    except (redis.RedisError, ValueError):
        return {}


def node_board(db: DbSession, r: redis.Redis | None, interim_of: dict[str, int], multiple: float,
               now: datetime) -> list[Node]:
    """Every NAS with its probed state, last packet (Redis, else SQL), live sessions and open faults;
    down and failing ones first."""
    seen = _last_packets(r)
    live = dict(db.execute(select(Session.nas_id, func.count()).where(Session.is_open.is_(True))
                           .group_by(Session.nas_id)).all())
    faults = dict(db.execute(select(FaultReport.nas_id, func.count()).where(FaultReport.status != "resolved")
                             .group_by(FaultReport.nas_id)).all())
    states = {s.nas_id: s for s in db.scalars(select(NodeState))}
    nodes = []
    rows = db.execute(select(Nas, Site.name, Site.policy).join(Site, Site.id == Nas.site_id))
    for nas, site, policy in rows:
        quiet = timedelta(seconds=interim_of.get(policy, 300) * multiple)
        last = max([t for t in (seen.get(nas.id), nas.last_seen) if t is not None], default=None)
        st = states.get(nas.id)
        state = st.state if st else ("unprobed" if nas.probe == "none" else "pending")
        nodes.append(Node(nas.id, nas.name, nas.site_id, site, nas.vendor, nas.ip, nas.probe, state,
                          st.since if st else None, st.failures if st else 0, st.latency_ms if st else None,
                          st.detail if st else None, st.last_probe_at if st else None, last,
                          live.get(nas.id, 0), faults.get(nas.id, 0), last is None or now - last > quiet))
    return sorted(nodes, key=lambda n: (ORDER.get(n.state, 9), n.site, n.name))


def overview(db: DbSession, today: date) -> dict[str, int]:
    """People online now, and sessions, people and bytes today."""
    online = db.scalar(select(func.count(func.distinct(Session.user_id))).where(Session.is_open.is_(True))) or 0
    row = db.execute(select(func.count(func.distinct(UsageDaily.user_id)), func.sum(UsageDaily.sessions),
                            func.sum(UsageDaily.bytes_down + UsageDaily.bytes_up))
                     .where(UsageDaily.day == today)).one()
    return {"online": online, "people_today": row[0] or 0, "sessions_today": int(row[1] or 0),
            "bytes_today": int(row[2] or 0)}


@dataclass(frozen=True)
class SiteStatus:
    """A site as citizens see it on /estado: in service, a known fault since when, or unknown."""

    name: str
    state: str                      # ok | fault | unknown
    since: datetime | None


def public_status(db: DbSession) -> list[SiteStatus]:
    """Every site: `fault` when one of its access points is confirmed down (since the earliest such
    outage), `ok` when one answers, else `unknown` (no probe, or none yet). No NAS names, no addresses."""
    found: dict[int, list[tuple[str, datetime]]] = {}
    for site_id, state, since in db.execute(select(Nas.site_id, NodeState.state, NodeState.since)
                                            .join(NodeState, NodeState.nas_id == Nas.id)):
        found.setdefault(site_id, []).append((state, since))
    out = []
    for site_id, name in db.execute(select(Site.id, Site.name).order_by(Site.name)):
        states = found.get(site_id, [])
        down = [since for state, since in states if state == "down"]
        if down:
            out.append(SiteStatus(name, "fault", min(down)))
        else:
            out.append(SiteStatus(name, "ok" if any(s in ("up", "failing") for s, _ in states) else "unknown", None))
    return sorted(out, key=lambda s: (s.state != "fault", s.name))


NODE_COLUMNS = ["site", "nas", "state", "since", "last_probe", "latency_ms", "probe", "detail", "last_radius_packet",
                "sessions_now", "open_faults"]


def node_rows(nodes: list[Node], tz: ZoneInfo) -> list[dict]:
    """The board as rows for CSV, XLSX and JSON: state codes, times local to `tz` in ISO 8601 with the offset."""
    def local(when: datetime | None) -> str | None:
        return when.replace(tzinfo=timezone.utc).astimezone(tz).isoformat(timespec="seconds") if when else None
    return [{"site": n.site, "nas": n.name, "state": n.state, "since": local(n.state_since),
             "last_probe": local(n.last_probe), "latency_ms": None if n.latency_ms is None else round(n.latency_ms, 1),
             "probe": n.probe, "detail": n.detail, "last_radius_packet": local(n.last_seen),
             "sessions_now": n.sessions_now, "open_faults": n.open_faults} for n in nodes]


@dataclass(frozen=True)
class SitePoint:
    """A site on the map."""

    name: str
    state: str                      # ok | fault | unknown, as on /estado
    since: datetime | None
    lat: float | None
    lon: float | None

    @property
    def osm(self) -> str | None:
        """A link to the place on OpenStreetMap (none without a location)."""
        if self.lat is None or self.lon is None:
            return None
        return f"https://www.openstreetmap.org/?mlat={self.lat:.6f}&mlon={self.lon:.6f}#map=17/{self.lat:.6f}/{self.lon:.6f}"


def site_points(db: DbSession) -> list[SitePoint]:
    """Every site with its state and location (lat/lon may be missing)."""
    where = {name: (lat, lon) for name, lat, lon in db.execute(select(Site.name, Site.lat, Site.lon))}
    return [SitePoint(s.name, s.state, s.since, *where.get(s.name, (None, None))) for s in public_status(db)]
