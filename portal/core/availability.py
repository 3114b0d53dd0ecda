"""Availability from the monitor's history: per NAS, site, local day and month, the seconds up and down
and the share up. One query layer for the console, `conecta report availability`, the API and exports.

Only time the monitor watched counts (periods `up` and `down`; not `unprobed`, nor gaps while no
monitor ran). A site's figure adds its access points' seconds: two access points, one down for an
hour, make the site 50% available for that hour. An outage counts in the day (or month) it began.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core.errors import InputError
from portal.core.model import NodeEvent, Site

COLUMNS = ("site", "nas", "day", "month")
FIGURES = ("availability", "up_seconds", "down_seconds", "downtime_minutes", "outages")


def parse_by(text: str) -> list[str]:
    """`site,day` -> ['site', 'day']; InputError on an unknown or repeated column."""
    by = [c.strip() for c in (text or "").split(",") if c.strip()]
    bad = [c for c in by if c not in COLUMNS]
    if bad or len(set(by)) != len(by):
        raise InputError(N_("--by acepta %(known)s (separados por comas, cada uno una vez); no %(text)r"),
                         known=", ".join(COLUMNS), text=(text or "")[:80])
    if "day" in by and "month" in by:
        raise InputError(N_("--by acepta day o month, no los dos"))
    return by


def _utc(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight starting `day`, as naive UTC."""
    return datetime.combine(day, time(), tz).astimezone(timezone.utc).replace(tzinfo=None)


def _local_day(when: datetime, tz: ZoneInfo) -> date:
    return when.replace(tzinfo=timezone.utc).astimezone(tz).date()


def _pieces(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[date, float]]:
    """[start, end) cut at local midnights: (local day, seconds) for each piece."""
    out = []
    while start < end:
        day = _local_day(start, tz)
        cut = min(end, _utc(day + timedelta(days=1), tz))
        out.append((day, (cut - start).total_seconds()))
        start = cut
    return out


def _key(by: list[str], site: str, nas: str, day: date) -> tuple:
    values = {"site": site, "nas": nas, "day": day.isoformat(), "month": day.strftime("%Y-%m")}
    return tuple(values[c] for c in by)


def availability(db: DbSession, first: date, last: date, by: list[str], tz: ZoneInfo, now: datetime) -> list[dict]:
    """Rows of the `by` columns with availability (% up of the watched time, None when none was watched),
    up and down seconds, downtime minutes and outages begun, for local days first..last."""
    if last < first:
        raise InputError(N_("--to es anterior a --from"))
    begin, end = _utc(first, tz), min(_utc(last + timedelta(days=1), tz), now)
    names = dict(db.execute(select(Site.id, Site.name)).all())
    rows = db.execute(select(NodeEvent).where(NodeEvent.state.in_(("up", "down")), NodeEvent.started_at < end,
                                              or_(NodeEvent.ended_at.is_(None), NodeEvent.ended_at > begin)))
    cells: dict[tuple, dict[str, float]] = defaultdict(lambda: {"up": 0.0, "down": 0.0, "outages": 0})
    for (event,) in rows:
        site, nas = names.get(event.site_id, f"#{event.site_id}"), event.nas_name
        s, e = max(event.started_at, begin), min(event.ended_at or now, end)
        for day, seconds in _pieces(s, e, tz):
            cells[_key(by, site, nas, day)][event.state] += seconds
        if event.state == "down" and begin <= event.started_at < end:
            cells[_key(by, site, nas, _local_day(event.started_at, tz))]["outages"] += 1
    return [_row(by, key, cell) for key, cell in sorted(cells.items())]


def _row(by: list[str], key: tuple, cell: dict[str, float]) -> dict:
    watched = cell["up"] + cell["down"]
    return {**dict(zip(by, key)),
            "availability": round(100 * cell["up"] / watched, 2) if watched else None,
            "up_seconds": round(cell["up"]), "down_seconds": round(cell["down"]),
            "downtime_minutes": round(cell["down"] / 60, 1), "outages": int(cell["outages"])}


def outages(db: DbSession, since: datetime, limit: int = 100) -> list[NodeEvent]:
    """The latest down periods that began after `since`, newest first (open ones have no end)."""
    return list(db.scalars(select(NodeEvent).where(NodeEvent.state == "down", NodeEvent.started_at >= since)
                           .order_by(NodeEvent.started_at.desc()).limit(limit)))
