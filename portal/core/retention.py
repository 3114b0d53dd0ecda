"""`conecta purge`: personal data and device identifiers past retention go; aggregates stay.

usage_daily keeps per-day totals with a gender and age-band snapshot and an opaque person number,
which is all the reports need; raw accounting, session details, devices and inactive portal
registrations older than the cut-off are deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session as DbSession

from portal.core.model import AcctRecord, CoaRequest, Device, Disconnect, Session, UsageDaily, User


def purge(db: DbSession, cutoff: datetime) -> dict[str, int]:
    """Delete what is older than `cutoff` (naive UTC); return counts per kind. The caller commits."""
    counts = {}
    counts["accounting records"] = db.execute(delete(AcctRecord).where(AcctRecord.received_at < cutoff)).rowcount
    counts["disconnect records"] = db.execute(delete(Disconnect).where(Disconnect.requested_at < cutoff)).rowcount
    counts["speed change records"] = db.execute(delete(CoaRequest).where(CoaRequest.requested_at < cutoff)).rowcount
    counts["sessions"] = db.execute(delete(Session).where(Session.is_open.is_(False),
                                                          Session.updated_at < cutoff)).rowcount
    seen = Device.last_seen.is_not(None) & (Device.last_seen < cutoff)
    never = Device.last_seen.is_(None) & (Device.created_at < cutoff)
    counts["devices"] = db.execute(delete(Device).where(seen | never)).rowcount
    recent_use = exists().where(UsageDaily.user_id == User.id, UsageDaily.day >= cutoff.date())
    stale = select(User.id).where(User.source == "portal", User.created_at < cutoff, ~recent_use)
    ids = list(db.scalars(stale))
    if ids:
        db.execute(delete(Device).where(Device.user_id.in_(ids)))
        counts["portal registrations"] = db.execute(delete(User).where(User.id.in_(ids))).rowcount
    else:
        counts["portal registrations"] = 0
    return counts

