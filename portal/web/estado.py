"""/estado: the public service page — each site in service or with a known fault since HH:MM. It names
sites only: no access points, no addresses."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, render_template

from portal.core import board
from portal.web.extensions import db, now, settings

bp = Blueprint("estado", __name__)


def since_text(when: datetime) -> str:
    """A stored time as the city's clock shows it: 'HH:MM' today, else 'YYYY-MM-DD HH:MM'."""
    tz = settings().tz
    local = when.replace(tzinfo=timezone.utc).astimezone(tz)
    return local.strftime("%H:%M") if local.date() == now().astimezone(tz).date() else local.strftime("%Y-%m-%d %H:%M")


@bp.get("/estado")
def estado() -> str:
    """The service, site by site (reloads itself every minute)."""
    health = board.monitor_health(db.session, now().replace(tzinfo=None))
    return render_template("estado.html", sites=board.public_status(db.session), since_text=since_text,
                           fresh=health.alive)
