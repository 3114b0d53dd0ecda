"""Maintenance windows per site: planned outages during which no alert is sent.

Written `2026-12-03 22:00/2h`: a local start in CONECTA_TIMEZONE and a duration (s, m, h, d).
A NAS still down when its window ends is alerted then.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from policies import PolicyError
from policies.messages import N_
from policies.units import parse_duration
from portal.core.errors import InputError, printable
from portal.core.model import MaintenanceWindow, Site

WINDOW = re.compile(r"\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*/\s*(\S+)\s*")
LONGEST = timedelta(days=14)


def parse_window(text: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """`2026-12-03 22:00/2h` -> (start, end) as naive UTC; InputError when malformed."""
    match = WINDOW.fullmatch(text or "")
    if not match:
        raise InputError(N_("el mantenimiento %(text)r no tiene la forma '2026-12-03 22:00/2h' "
                            "(inicio local/duración)"), text=(text or "")[:80])
    try:
        local = datetime.fromisoformat(f"{match[1]} {match[2]:0>5}").replace(tzinfo=tz)
        seconds = parse_duration(match[3])
    except (ValueError, PolicyError):
        raise InputError(N_("mantenimiento %(text)r: la fecha, la hora o la duración no existen"),
                         text=text[:80]) from None
    if not 0 < seconds <= LONGEST.total_seconds():
        raise InputError(N_("una ventana de mantenimiento dura más de 0 y como mucho 14 días"))
    start = local.astimezone(timezone.utc).replace(tzinfo=None)
    return start, start + timedelta(seconds=seconds)


def add_window(db: DbSession, site: Site, text: str, tz: ZoneInfo, by: str, note: str = "") -> MaintenanceWindow:
    """Add a window to a site; the caller commits."""
    if len(note) > 200 or not printable(note):
        raise InputError(N_("una nota de mantenimiento tiene como mucho 200 caracteres imprimibles"))
    start, end = parse_window(text, tz)
    window = MaintenanceWindow(site_id=site.id, starts_at=start, ends_at=end, note=note, created_by=by)
    db.add(window)
    db.flush()
    return window


def clear_windows(db: DbSession, site: Site, now: datetime) -> int:
    """Remove a site's current and future windows; the number removed. The caller commits."""
    return db.execute(delete(MaintenanceWindow).where(MaintenanceWindow.site_id == site.id,
                                                      MaintenanceWindow.ends_at > now)).rowcount


def site_windows(db: DbSession, site_id: int, now: datetime) -> list[MaintenanceWindow]:
    """A site's current and future windows, soonest first."""
    return list(db.scalars(select(MaintenanceWindow).where(MaintenanceWindow.site_id == site_id,
                                                           MaintenanceWindow.ends_at > now)
                           .order_by(MaintenanceWindow.starts_at)))


def sites_in_maintenance(db: DbSession, now: datetime) -> set[int]:
    """The sites with a window open at `now`."""
    return set(db.scalars(select(MaintenanceWindow.site_id).where(MaintenanceWindow.starts_at <= now,
                                                                  MaintenanceWindow.ends_at > now)))


def describe(window: MaintenanceWindow, tz: ZoneInfo) -> str:
    """'2026-12-03 22:00 to 2026-12-04 00:00 America/Mexico_City' (and the note)."""
    def local(when: datetime) -> str:
        return when.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return f"{local(window.starts_at)} to {local(window.ends_at)} {tz.key} {window.note}".rstrip()
