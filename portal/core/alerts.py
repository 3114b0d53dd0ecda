"""Alerts: confirmed changes become notices, notices become messages.

1. `notice_step`: a NAS whose confirmed state (up or down) differs from the last one told gets one
   notice, in the same transaction that records it as told — once per transition, also across a
   monitor killed and restarted. A new NAS that answers is nothing to tell. A NAS that changed state
   `flap_changes` times within `flap_window` is flapping: one notice, then silence until it settles,
   when its state then is told. Nothing is told about a site in a maintenance window; a change still
   standing when the window ends is told then.
2. `batch_step`: once the oldest untold notice is `alert_group_seconds` old, all notices go out
   together: one e-mail per staff member subscribed to any of their sites, and one webhook call.
   The sender (portal/monitor/notify.py) delivers them and records the outcome in `alerts`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DbSession

from policies.messages import gettext as _
from portal.core.maintenance import sites_in_maintenance
from portal.core.model import Alert, AlertNotice, AlertSubscription, Nas, NodeEvent, NodeState, Site, Staff
from portal.core.settings import Settings


def notice_step(db: DbSession, now: datetime, settings: Settings) -> int:
    """Turn untold confirmed changes into notices; return how many were made. Commits."""
    rows = db.execute(select(NodeState, Nas.name, Nas.site_id).join(Nas, Nas.id == NodeState.nas_id)
                      .where(NodeState.state.in_(("up", "down")),
                             (NodeState.notified.is_(None)) | (NodeState.notified != NodeState.state))).all()
    if not rows:
        return 0
    quiet = sites_in_maintenance(db, now)
    made = 0
    for state, name, site_id in rows:
        if state.notified is None and state.state == "up":
            state.notified = "up"                   # a new NAS that answers: nothing to tell
            continue
        if site_id in quiet:
            continue
        kind = "flapping" if _changes(db, state.nas_id, now, settings.flap_window) >= settings.flap_changes \
            else state.state
        if kind == state.notified:
            continue                                # flapping, and told so already
        db.add(AlertNotice(at=now, nas_id=state.nas_id, site_id=site_id, nas_name=name, kind=kind,
                           since=state.since))
        state.notified = kind
        made += 1
    db.commit()
    return made


def _changes(db: DbSession, nas_id: int, now: datetime, window: float) -> int:
    since = now - timedelta(seconds=window)
    return db.scalar(select(func.count()).select_from(NodeEvent)
                     .where(NodeEvent.nas_id == nas_id, NodeEvent.started_at >= since)) or 0


def batch_step(db: DbSession, now: datetime, settings: Settings) -> int:
    """Group the untold notices into alerts once the oldest is old enough; return the alerts made. Commits."""
    notices = list(db.scalars(select(AlertNotice).where(AlertNotice.alert_batch.is_(None))
                              .order_by(AlertNotice.at, AlertNotice.id)))
    if not notices or now - notices[0].at < timedelta(seconds=settings.alert_group_seconds):
        return 0
    batch = notices[0].id
    sites = dict(db.execute(select(Site.id, Site.name)).all())
    alerts = []
    if settings.alert_webhook_url:
        alerts.append(_alert(batch, "webhook", urlsplit(settings.alert_webhook_url).hostname or "?", notices, sites,
                             settings))
    if settings.smtp_host:
        for email, site_ids in _subscribers(db).items():
            mine = [n for n in notices if n.site_id in site_ids]
            if mine:
                alerts.append(_alert(batch, "email", email, mine, sites, settings))
    db.add_all(alerts)
    db.execute(update(AlertNotice).where(AlertNotice.id.in_([n.id for n in notices])).values(alert_batch=batch))
    db.commit()
    return len(alerts)


def _subscribers(db: DbSession) -> dict[str, set[int]]:
    """E-mail address -> the sites it follows (staff accounts that are not disabled)."""
    found: dict[str, set[int]] = {}
    rows = db.execute(select(Staff.email, AlertSubscription.site_id)
                      .join(AlertSubscription, AlertSubscription.staff_id == Staff.id)
                      .where(Staff.disabled.is_(False)))
    for email, site_id in rows:
        found.setdefault(email, set()).add(site_id)
    return found


def _alert(batch: int, channel: str, recipient: str, notices: list[AlertNotice], sites: dict[int, str],
           settings: Settings) -> Alert:
    subject, lines = message(notices, sites, settings.tz)
    payload = None
    if channel == "webhook":
        body = {"text": "\n".join([subject, *lines]), "source": "conecta",
                "events": [{"kind": n.kind, "nas": n.nas_name, "site": sites.get(n.site_id, ""),
                            "since": n.since.isoformat() + "Z"} for n in notices]}
        if settings.alert_webhook_chat_id:
            body["chat_id"] = settings.alert_webhook_chat_id
        payload = json.dumps(body, ensure_ascii=False)
    return Alert(batch=batch, channel=channel, recipient=recipient, subject=subject, body="\n".join(lines),
                 payload=payload, status="pending", attempts=0, next_attempt_at=notices[-1].at)


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def message(notices: list[AlertNotice], sites: dict[int, str], tz: ZoneInfo) -> tuple[str, list[str]]:
    """The subject and lines of one message about `notices` (Spanish, times in `tz`)."""
    words = {"down": _("Caído"), "up": _("Recuperado"), "flapping": _("Inestable")}
    lines = []
    for n in notices:
        place = f"{n.nas_name} ({sites.get(n.site_id, '?')})"
        if n.kind == "flapping":
            lines.append(_("%(word)s: %(place)s cambia de estado una y otra vez; sin más avisos hasta que se "
                           "estabilice.") % {"word": words["flapping"], "place": place})
        else:
            verb = _("desde") if n.kind == "down" else _("a las")
            lines.append(f"{words[n.kind]}: {place} {verb} {_local(n.since, tz)}")
    lines.append(_("Horas de %(tz)s.") % {"tz": tz.key})
    if len(notices) == 1:
        n = notices[0]
        return f"Conecta: {words[n.kind].lower()} {n.nas_name} ({sites.get(n.site_id, '?')})", lines
    plural = {"down": _("caídos"), "up": _("recuperados"), "flapping": _("inestables")}
    counts = {kind: sum(n.kind == kind for n in notices) for kind in words}
    parts = [f"{counts[k]} {words[k].lower() if counts[k] == 1 else plural[k]}" for k in words if counts[k]]
    subject = _("Conecta: %(parts)s (puntos de acceso)") % {"parts": ", ".join(parts)}
    return subject, lines


def site_down_since(db: DbSession, site_id: int) -> datetime | None:
    """When the earliest confirmed outage still open at a site began, or None."""
    return db.scalar(select(func.min(NodeState.since)).join(Nas, Nas.id == NodeState.nas_id)
                     .where(Nas.site_id == site_id, NodeState.state == "down"))
